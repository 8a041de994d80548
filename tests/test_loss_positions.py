"""Projecting only the labelled positions on the CPU gives TRL's loss, gradients and metrics, and projects fewer rows."""

import pytest
import torch

import t2s.training.loss_positions
from t2s.training.loss_positions import project_loss_positions_only_on_cpu


def _batch(vocab: int):
    """Three padded examples whose prompt positions carry no label, as TRL's completion-only collator builds them."""
    generator = torch.Generator().manual_seed(0)
    rows, labels = [], []
    for length, prompt in ((9, 6), (20, 15), (14, 9)):
        ids = torch.randint(3, vocab, (length,), generator=generator).tolist()
        rows.append(ids + [0] * (20 - length))
        labels.append([-100] * prompt + ids[prompt:] + [-100] * (20 - length))
    mask = [[1] * (len(r) - r.count(0)) + [0] * r.count(0) for r in rows]
    return torch.tensor(rows), torch.tensor(mask), torch.tensor(labels)


def _trl_as_shipped(monkeypatch):
    """TRL's own device test, whatever earlier tests (training runs in this process) did; restored afterwards."""
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    monkeypatch.setattr(trl_utils, "_use_triton", _use_triton)


def _run(model, batch, projected_rows):
    """The fused head's outputs, the LoRA gradients, and how many rows the last call projected."""
    model.zero_grad()
    ids, mask, labels = batch
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    fields = (out.loss.detach(), out.log_probs.detach(), out.entropy.detach(), out.is_top1)
    return fields, grads, projected_rows[-1]


def test_same_loss_gradients_entropy_and_accuracy_from_fewer_projected_rows(tiny_model, monkeypatch):
    import trl.trainer.utils as trl_utils
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    batch = _batch(model.config.vocab_size)

    projected_rows = []
    real = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(
        trl_utils._ChunkedLogProbFunction,
        "apply",
        lambda hidden, *args: projected_rows.append(hidden.shape[0]) or real(hidden, *args),
    )
    _trl_as_shipped(monkeypatch)
    every_position, grads_all, rows_all = _run(model, batch, projected_rows)
    assert project_loss_positions_only_on_cpu(type("Args", (), {"torch_compile": False})())
    labelled, grads_labelled, rows_labelled = _run(model, batch, projected_rows)

    assert rows_all == 3 * 19  # every position but the last of each row
    assert rows_labelled == (9 - 6) + (20 - 15) + (14 - 9)  # the positions that predict an SQL token
    for a, b in zip(every_position, labelled):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert grads_all.keys() == grads_labelled.keys() and len(grads_all) == 8  # LoRA A and B of q, v in 2 layers
    for name in grads_all:
        torch.testing.assert_close(grads_all[name], grads_labelled[name], rtol=1e-5, atol=1e-7)


def test_left_alone_when_the_run_compiles_the_model(monkeypatch):
    import trl.trainer.utils as trl_utils

    _trl_as_shipped(monkeypatch)
    before = trl_utils._use_triton
    assert not project_loss_positions_only_on_cpu(type("Args", (), {"torch_compile": True})())
    assert trl_utils._use_triton is before and not before(torch.device("cpu"))
    assert project_loss_positions_only_on_cpu(type("Args", (), {"torch_compile": False})())
    assert trl_utils._use_triton(torch.device("cpu"))
    assert project_loss_positions_only_on_cpu(type("Args", (), {})())  # applied once, idempotent
    assert t2s.training.loss_positions.trl_utils is trl_utils


@pytest.mark.parametrize("device", ["cuda", "xpu"])
def test_triton_devices_keep_trl_answer(monkeypatch, device):
    import trl.trainer.utils as trl_utils

    monkeypatch.setattr(trl_utils, "_use_triton", lambda d: d.type == "cuda")
    project_loss_positions_only_on_cpu(type("Args", (), {"torch_compile": False})())
    assert trl_utils._use_triton(torch.device(device)) == (device == "cuda")
