"""`activation_checkpointing_above_tokens`: the long training batches recompute their activations in the backward
pass, the others keep them; the gradients are the same either way."""

import json

import pytest
import torch

from .conftest import ROOT


def _lora_model(path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"])
    model = get_peft_model(model, config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; make every LoRA weight matter to the gradient
    return model.train()


def _attention_calls(model) -> list:
    """Calls of the first layer's attention: its hooks run again when a checkpointed layer is recomputed."""
    calls = []
    layer = model.get_base_model().model.layers[0]
    layer.self_attn.register_forward_hook(lambda *args: calls.append(1))
    return calls


def _step(model, ids):
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_long_batches_are_recomputed_short_ones_are_not_and_gradients_agree(tiny_model):
    from t2s.training.checkpointing import checkpoint_long_batches

    plain, switched = _lora_model(tiny_model), _lora_model(tiny_model)
    layers = checkpoint_long_batches(switched, above_tokens=30)
    assert len(layers) == switched.config.num_hidden_layers
    calls = _attention_calls(switched)
    generator = torch.Generator().manual_seed(0)
    short = torch.randint(3, switched.config.vocab_size, (2, 15), generator=generator)  # 30 tokens: not above
    long = torch.randint(3, switched.config.vocab_size, (2, 16), generator=generator)  # 32 tokens

    for ids, expected_calls in ((short, 1), (long, 2), (short, 1)):
        calls.clear()
        got, want = _step(switched, ids), _step(plain, ids)
        assert len(calls) == expected_calls  # forward, and for the long batch the recompute in backward
        assert got.keys() == want.keys() and len(got) == 3 * 2 * switched.config.num_hidden_layers
        for name in got:
            assert torch.allclose(got[name], want[name], atol=1e-6), name

    calls.clear()
    with torch.no_grad():  # evaluation: nothing to recompute
        switched(input_ids=long)
    switched.eval()
    switched(input_ids=long).logits.sum().backward()  # eval mode, gradients on: still no checkpointing
    assert len(calls) == 2


def test_it_refuses_a_model_that_already_checkpoints_every_batch(tiny_model):
    from t2s.runtime import UserError
    from t2s.training.checkpointing import checkpoint_long_batches

    model = _lora_model(tiny_model)
    model.get_base_model().activation_checkpointing_enable()
    with pytest.raises(UserError, match="activation_checkpointing: true"):
        checkpoint_long_batches(model, above_tokens=100)


def test_a_recipe_run_checkpoints_its_long_batches(tiny_model, tmp_path, capsys):
    from t2s.runtime import UserError
    from t2s.sft import cli

    out = tmp_path / "run"
    recipe = ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml"
    args = [str(recipe), "--model_name_or_path", str(tiny_model), "--output_dir", str(out), "--max_steps", "2"]
    with pytest.raises(UserError, match="set activation_checkpointing: false"):  # TRL checkpoints every batch
        cli([*args, "--activation_checkpointing_above_tokens", "64"])
    args += ["--activation_checkpointing", "false", "--eval_strategy", "no"]
    trainer = cli([*args, "--activation_checkpointing_above_tokens", "64"])
    assert "batches over 64 tokens" in capsys.readouterr().out
    layers = trainer.model.get_base_model().model.layers
    assert not any(layer.gradient_checkpointing for layer in layers)  # off outside a long training batch
    assert trainer.model._forward_pre_hooks  # the switch, set before every forward pass
    recorded = json.loads((out / "t2s_args.json").read_text())["script"]
    assert recorded["activation_checkpointing_above_tokens"] == 64
