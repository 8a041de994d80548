"""Under autocast the LoRA input cast is skipped: same gradients bit for bit, less kept for the backward pass, and
outside autocast (generation during training) the cast is back, so a bf16 base with fp32 LoRA weights still runs."""

import torch


def _model(path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)  # as the full CPU recipes load it
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"])
    model = get_peft_model(model, config)
    for name, p in model.named_parameters():
        if p.requires_grad:
            p.data = p.data.float()  # PEFT's fp32 adapter weights
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
    return model.train()


def _step(model, ids):
    """One autocast forward and backward: the LoRA gradients and the bytes autograd saved for the backward pass."""
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    model.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return grads, sum(saved.values())


def test_autocast_steps_skip_the_cast_with_identical_gradients_and_less_saved(tiny_model):
    from t2s.training.lora_casts import skip_lora_input_casts_under_autocast

    plain, skipping = _model(tiny_model), _model(tiny_model)
    assert skip_lora_input_casts_under_autocast(skipping) == 3 * skipping.config.num_hidden_layers
    ids = torch.randint(3, skipping.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    want, saved_plain = _step(plain, ids)
    got, saved_skipping = _step(skipping, ids)
    assert got.keys() == want.keys() and got
    for name in got:
        assert torch.equal(got[name], want[name]), name
    assert saved_skipping < saved_plain  # the second bf16 copy of each LoRA input is gone

    # outside autocast the cast is back: fp32 LoRA weights on bf16 inputs would not multiply without it
    with torch.no_grad():
        logits = skipping(input_ids=ids).logits
    layers = [m for m in skipping.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert layers and all(m.cast_input_dtype_enabled for m in layers)
    assert torch.isfinite(logits).all()


def test_a_model_without_lora_layers_is_left_alone(tiny_model):
    from transformers import AutoModelForCausalLM

    from t2s.training.lora_casts import skip_lora_input_casts_under_autocast

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert skip_lora_input_casts_under_autocast(model) == 0
    assert not any(module._forward_pre_hooks for module in model.modules())


def test_a_bf16_recipe_run_trains_without_the_cast_and_generates_with_it(tiny_model, tmp_path, monkeypatch):
    """accelerate enters autocast inside the model's forward: each LoRA layer still sees it, and the evaluation's
    generation (no autocast) still casts."""
    import peft.tuners.lora.layer as lora_layer

    from t2s.sft import cli

    from .conftest import ROOT

    calls = []
    forward = lora_layer.Linear.forward

    def recording(self, x, *args, **kwargs):
        calls.append((torch.is_autocast_enabled("cpu"), self.cast_input_dtype_enabled))
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(lora_layer.Linear, "forward", recording)
    # what is tested is bf16 autocast itself: run it even on a CPU without bf16 kernels (slow only at full size)
    monkeypatch.setattr("t2s.training.device.cpu_has_bf16_matmul", lambda: True)
    recipe = str(ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml")
    out = str(tmp_path / "run")
    cli([recipe, "--model_name_or_path", str(tiny_model), "--output_dir", out, "--max_steps", "1"]
        + ["--bf16", "true", "--dtype", "bfloat16", "--use_cpu", "true"])  # fmt: skip
    assert (True, False) in calls and (False, True) in calls  # training without the cast, generation with it
    assert all(autocast != cast for autocast, cast in calls)
