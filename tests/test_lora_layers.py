"""`lora_top_layers`: LoRA on the top decoder layers only, and the backward pass that stops at the lowest of them."""

import json

import pytest
import torch

from t2s.runtime import UserError
from t2s.training.run_setup import peft_config
from t2s.training.training_arguments import ModelArguments

from .test_sft import TINY_RECIPE


def _args(tiny_model, **fields):
    return ModelArguments(
        model_name_or_path=str(tiny_model),
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj", "gate_proj"],
        **fields,
    )


def _backward_reaches(model, input_ids) -> list[int]:
    """The decoder layers (by index) whose backward pass ran for one training step of `model`."""
    reached = []
    layers = model.get_base_model().model.layers
    hooks = [
        layer.register_full_backward_hook(lambda module, gin, gout, i=i: reached.append(i))
        for i, layer in enumerate(layers)
    ]
    try:
        model(input_ids=input_ids, labels=input_ids).loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    return sorted(reached)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # layer 0's input never needs a gradient
def test_top_layers_get_lora_and_the_backward_pass_stops_below_them(tiny_model):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    reached = {}
    for top in (None, 1):
        config = peft_config(_args(tiny_model, lora_top_layers=top), str(tiny_model))
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config)
        adapted = {
            int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_" in name
        }
        reached[top] = (adapted, _backward_reaches(model, ids))
    assert reached[None] == ({0, 1}, [0, 1])
    assert reached[1] == ({1}, [1])  # the frozen layer below the adapter is never differentiated


def test_too_many_top_layers_names_the_model_s_layer_count(tiny_model):
    with pytest.raises(UserError, match=r"lora_top_layers=3, but .* has 2 decoder layers"):
        peft_config(_args(tiny_model, lora_top_layers=3), str(tiny_model))
    with pytest.raises(ValueError, match="lora_top_layers=0 must be"):
        _args(tiny_model, lora_top_layers=0)
    all_linear = _args(tiny_model, lora_top_layers=1)
    all_linear.lora_target_modules = "all-linear"
    with pytest.raises(UserError, match="lora_top_layers needs lora_target_modules as a list"):
        peft_config(all_linear, str(tiny_model))
    with pytest.raises(UserError, match="use_peft is false"):
        peft_config(ModelArguments(model_name_or_path=str(tiny_model), lora_top_layers=1), str(tiny_model))


def test_continuing_an_adapter_refuses_new_layers(tiny_model, tmp_path):
    from t2s.training.run_setup import load_starting_model

    with pytest.raises(UserError, match="continues sft_adapter .* remove lora_top_layers"):
        load_starting_model(_args(tiny_model, lora_top_layers=1), str(tmp_path / "never-read"), "sft_adapter")


def test_sft_run_trains_only_the_top_layers_and_records_them(tiny_model, tmp_path):
    from t2s.sft import cli

    out = tmp_path / "top"
    cli(
        [
            str(TINY_RECIPE),
            "--model_name_or_path",
            str(tiny_model),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--eval_strategy",
            "no",
            "--lora_top_layers",
            "1",
        ]
    )
    assert json.loads((out / "adapter_config.json").read_text())["layers_to_transform"] == [1]
    assert json.loads((out / "t2s_run.json").read_text())["peft"].endswith(", top 1 layers")
    from safetensors.torch import load_file

    names = load_file(out / "adapter_model.safetensors")
    assert names and all(".layers.1." in name for name in names)
