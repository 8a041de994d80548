"""Padding-free batches on CPU: TRL's collator concatenates the examples of a batch into one row with position ids
that restart at each example. transformers 5.24 builds the attention mask from those position ids for sdpa and
eager attention too, so no example attends to another: per-example losses and gradients equal those of the padded
batch. This is what lets the CPU recipes use `padding_free: true` (measured speed: docs/benchmarks.md)."""

import pytest
import torch

from .tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_pf") / "model", seed=11)


def _examples(vocab: int):
    generator = torch.Generator().manual_seed(0)
    out = []
    for length, prompt in ((7, 4), (19, 12), (12, 5)):  # different lengths, prompt tokens masked as TRL masks them
        ids = torch.randint(3, vocab, (length,), generator=generator).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def _per_example_losses_and_grads(model, batch, rows_of):
    """Summed token losses of each example, and the gradient of their total, from one forward/backward."""
    model.zero_grad()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits
    labels = batch["labels"]
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="none"
    ).view(labels.shape[0], -1)
    per_example = [token_loss[row, span].sum() for row, span in rows_of(batch)]
    torch.stack(per_example).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return torch.stack(per_example).detach(), grads


def _padded_rows(batch):
    return [(i, slice(None)) for i in range(batch["input_ids"].shape[0])]


def _packed_rows(batch):
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [batch["position_ids"].shape[1]]
    # token losses are shifted by one: the loss of example k sits at [start_k, start_{k+1} - 1)
    return [(0, slice(a, b - 1)) for a, b in zip(starts[:-1], starts[1:])]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_losses_and_gradients_equal_the_padded_ones(tiny_path, attn):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32, attn_implementation=attn)
    model.train()
    torch.manual_seed(0)  # dropout is 0 in the tiny config; seeded anyway
    examples = _examples(model.config.vocab_size)
    pad = model.config.pad_token_id
    padded = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=False)(examples)
    packed = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=True)(examples)
    assert (
        packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples)) and "attention_mask" not in packed
    )

    loss_padded, grads_padded = _per_example_losses_and_grads(model, padded, _padded_rows)
    loss_packed, grads_packed = _per_example_losses_and_grads(model, packed, _packed_rows)
    torch.testing.assert_close(loss_packed, loss_padded, rtol=1e-5, atol=1e-5)
    assert grads_padded.keys() == grads_packed.keys() and grads_padded
    for name, grad in grads_padded.items():
        torch.testing.assert_close(grads_packed[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    # The comparison has teeth: the same concatenated row without restarting positions lets every example attend to
    # the ones before it, and the losses change.
    leaky = {**packed, "position_ids": torch.arange(packed["input_ids"].shape[1])[None]}
    loss_leaky, _ = _per_example_losses_and_grads(model, leaky, lambda b: _packed_rows(packed))
    assert torch.allclose(loss_leaky[0], loss_padded[0], rtol=1e-5)  # the first example has nothing before it
    assert not torch.allclose(loss_leaky[1:], loss_padded[1:], rtol=1e-3)
