"""The training script on a tiny random model: labels, end-to-end run, adapter reload, recipes, launchers, guards."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from t2s.training.device import DeviceSupportError, gpu_requirements
from t2s.training.recipe import RecipeError

from .conftest import ROOT

TINY_RECIPE = ROOT / "tests" / "fixtures" / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """One run of the script from the tiny recipe, with a command-line override."""
    from t2s.sft import cli

    out = tmp_path_factory.mktemp("run") / "adapter"
    trainer = cli(
        [str(TINY_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(out), "--max_steps", "3"]
    )
    return trainer, out


def test_collated_labels_cover_exactly_the_sql_and_eos(trained):
    trainer, _ = trained
    tokenizer = trainer.processing_class
    features = [trainer.train_dataset[i] for i in range(4)]
    assert len({len(f["input_ids"]) for f in features}) > 1, "need examples of different lengths to see padding"
    batch = trainer.data_collator([{k: f[k] for k in ("input_ids", "labels")} for f in features])
    for row, feature in enumerate(features):
        input_ids, labels, attention = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        kept = labels != -100
        assert not (kept & (attention == 0)).any()  # padding is never trained on
        assert (attention == 0).sum() == batch["input_ids"].shape[1] - len(feature["input_ids"])
        prompt_ids = tokenizer(feature["prompt"])["input_ids"]
        full_ids = tokenizer(feature["prompt"] + feature["completion"])["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids
        # exactly the completion: the gold SQL followed by EOS
        assert input_ids[kept].tolist() == full_ids[len(prompt_ids) :]
        assert labels[kept].tolist() == full_ids[len(prompt_ids) :]
        target = tokenizer.decode(input_ids[kept])
        assert target.startswith("SELECT ") and target.endswith(tokenizer.eos_token)
        assert not target.removesuffix(tokenizer.eos_token).endswith(tokenizer.eos_token)
        # and every prompt token is masked
        first = int(kept.nonzero()[0])
        assert tokenizer.decode(input_ids[:first][attention[:first] == 1]) == feature["prompt"]


def test_training_prompt_tokens_equal_inference_prompt_tokens(trained):
    from t2s.decoding.settings import prepare_tokenizer

    trainer, _ = trained
    tokenizer = prepare_tokenizer(trainer.processing_class)
    features = [trainer.train_dataset[i] for i in range(3)]
    batch = tokenizer([f["prompt"] for f in features], return_tensors="pt", padding=True)  # as generate_sql does
    for row, f in enumerate(features):
        trained_prompt = [t for t, label in zip(f["input_ids"], f["labels"]) if label == -100]
        at_inference = batch["input_ids"][row][batch["attention_mask"][row] == 1].tolist()
        assert at_inference == trained_prompt


def test_run_writes_adapter_only_and_it_reloads_with_the_same_logits(trained, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, out = trained
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "t2s_recipe.yaml",
        "README.md",
    } <= names
    assert not names & {"model.safetensors", "pytorch_model.bin"}
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    assert trainer.state.global_step == 3  # the CLI override beat the recipe's max_steps: 4

    ids = trainer.processing_class("SELECT", return_tensors="pt")["input_ids"]
    trained_model = trainer.model.eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        assert torch.allclose(trained_model(ids).logits, reloaded(ids).logits, atol=1e-6)
        # and the adapter changed something: LoRA B starts at zero, so equal logits would mean no training
        plain = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        assert not torch.allclose(plain(ids).logits, reloaded(ids).logits)


def test_run_logs_samples_and_execution_accuracy(trained):
    trainer, out = trained
    records = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    assert records and all(len(r["samples"]) == 2 and "execution_accuracy" in r for r in records)
    assert any("eval_execution_accuracy" in entry for entry in trainer.state.log_history)
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["train_examples"] == 22 and run["global_step"] == 3 and run["precision"] == "fp32"
    from t2s.runtime import allocator

    assert run["allocator"] == allocator()  # the malloc this process runs on, as the run's speed depends on it
    # the highest resident memory, which step or evaluation reached it, what was held at the start: a torch process
    # holds well over 100 MB
    peak = run["peak_memory"]
    assert peak["during"] in ("training step", "evaluation") and 1 <= peak["step"] <= 3
    assert 0.1 < peak["at_start_gib"] <= peak["gib"]
    losses = [entry for entry in run["loss_history"] if "loss" in entry]
    assert len(losses) == 3 and all(0.1 < entry["memory_gib"] <= entry["peak_memory_gib"] for entry in losses)
    assert max(entry["peak_memory_gib"] for entry in losses) <= peak["gib"] + 0.01
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "LoRA r=4" in card
    assert (
        f"| peak memory | {peak['gib']} GiB resident, reached in a {peak['during']} at step {peak['step']} |" in card
    )


def _run_script(args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)


def test_gpu_recipe_on_cpu_fails_before_loading_anything():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    out = _run_script([sys.executable, "t2s/sft.py", "recipes/mistral_lora.yaml"])
    assert out.returncode == 2 and "Traceback" not in out.stderr  # a user error: the message, no traceback
    message = " ".join(out.stderr.split())
    assert "needs a CUDA GPU" in message
    assert "fp16 mixed precision" in message and "flash_attention_2" in message
    assert "Loading weights" not in out.stderr


def test_bf16_on_a_cpu_without_bf16_kernels_is_refused_with_the_way_out(monkeypatch, tmp_path, tiny_model):
    """A bf16 CPU recipe on a CPU whose bf16 matmul is a scalar loop (AVX2) would look hung: it stops before loading
    anything and says to train in fp32; in fp32, or on a CPU with the kernels, the same settings pass."""
    from t2s.sft import cli
    from t2s.training.device import DeviceSupportError, check_cpu_bf16

    recipe = ROOT / "recipes/smollm2-135m/spider/sft_full_cpu.yaml"
    monkeypatch.setattr("t2s.training.device.cpu_has_bf16_matmul", lambda: False)
    with pytest.raises(DeviceSupportError) as refused:
        cli([str(recipe), "--model_name_or_path", str(tiny_model), "--output_dir", str(tmp_path / "r")])
    message = " ".join(str(refused.value).split())
    assert "bf16 autocast (bf16: true); bf16 base weights (dtype: bfloat16)" in message
    assert "no bf16 matrix kernels" in message and "add --bf16 false --dtype float32" in message
    assert not (tmp_path / "r").exists()
    bf16 = {"bf16": "true", "use_cpu": "true", "dtype": "bfloat16"}
    check_cpu_bf16({**bf16, "bf16": "false", "dtype": "float32"}, str(recipe))  # the way out
    monkeypatch.setattr("t2s.training.device.cpu_has_bf16_matmul", lambda: True)
    check_cpu_bf16(bf16, str(recipe))  # a CPU with the kernels trains the recipe as written


@pytest.mark.parametrize(
    "recipe", sorted(str(p.relative_to(ROOT / "recipes")) for p in (ROOT / "recipes").rglob("*.yaml"))
)
def test_every_recipe_passes_the_recipe_check(recipe):
    """Every shipped recipe parses with its script's dataclasses (GRPO recipes: t2s/grpo.py; the others: t2s/sft.py):
    no unknown key, no wrong type (GPU precision overridden to parse it on a CPU)."""
    import yaml

    from t2s.training import grpo_run as grpo
    from t2s.training import sft_run as sft
    from t2s.training.recipe import parse_recipe

    path = ROOT / "recipes" / recipe
    argv = [str(path)]
    if gpu_requirements(yaml.safe_load(path.read_text())) and not torch.cuda.is_available():
        argv += ["--bf16", "false", "--fp16", "false"]
    dataclasses = grpo.DATACLASSES if "grpo" in recipe else sft.DATACLASSES
    script_args, training_args, model_args = parse_recipe(dataclasses, argv)
    assert script_args.dataset_name and model_args.model_name_or_path and training_args.output_dir


def test_gpu_requirements_read_the_effective_settings():
    import yaml

    mistral = yaml.safe_load((ROOT / "recipes" / "mistral_lora.yaml").read_text())
    assert len(gpu_requirements(mistral)) == 3  # fp16, flash attention, 4-bit with fp16 compute
    qwen = yaml.safe_load((ROOT / "recipes" / "qwen2.5-coder-7b" / "spider" / "sft_qlora.yaml").read_text())
    assert len(gpu_requirements(qwen)) == 3  # bf16 on a GPU, flash attention, 4-bit with bf16 compute
    grpo = yaml.safe_load((ROOT / "recipes" / "qwen2.5-coder-7b" / "spider" / "grpo.yaml").read_text())
    assert len(gpu_requirements(grpo)) == 3  # bf16 on a GPU, flash attention, vLLM
    for path in (ROOT / "recipes" / "smollm2-135m").rglob("*_cpu.yaml"):
        cpu = yaml.safe_load(path.read_text())
        assert gpu_requirements(cpu) == []
    assert gpu_requirements({}) != []  # SFTConfig's implicit bf16
    assert gpu_requirements({"bf16": True, "use_cpu": True}) == []


def test_cpu_run_never_silently_uses_a_gpu_feature(tiny_model, tmp_path, monkeypatch):
    from t2s.sft import cli

    monkeypatch.setattr("t2s.training.device.cuda_available", lambda: False)
    with pytest.raises(DeviceSupportError, match="fp16"):
        cli(
            [
                str(TINY_RECIPE),
                "--model_name_or_path",
                str(tiny_model),
                "--output_dir",
                str(tmp_path),
                "--fp16",
                "true",
            ]
        )


@pytest.mark.parametrize(
    "extra,message",
    [
        ("lora_alpah: 16\n", r"unknown key 'lora_alpah' \(did you mean 'lora_alpha'\?\)"),
        ("lora_r: 8.5\n", r"'lora_r' must be int, got 8.5"),
        ("learning_rate: fast\n", r"'learning_rate' must be float, got 'fast'"),
        ("use_peft: maybe\n", r"'use_peft' must be bool"),
    ],
)
def test_malformed_recipes_name_the_key(tmp_path, extra, message):
    from t2s.sft import cli

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(TINY_RECIPE.read_text() + extra)
    with pytest.raises(RecipeError, match=message) as err:
        cli([str(recipe), "--model_name_or_path", "unused", "--output_dir", str(tmp_path / "o")])
    assert str(recipe) in str(err.value)


def test_recipe_without_dataset_says_so(tmp_path, tiny_model):
    from t2s.sft import cli

    recipe = tmp_path / "nodata.yaml"
    recipe.write_text("\n".join(x for x in TINY_RECIPE.read_text().splitlines() if not x.startswith("dataset_name")))
    with pytest.raises(RecipeError, match="dataset_name is required"):
        cli([str(recipe), "--model_name_or_path", str(tiny_model), "--output_dir", str(tmp_path / "o")])


def test_config_flag_form_is_accepted_too(tiny_model, tmp_path):
    from t2s.training.recipe import parse_recipe
    from t2s.training.sft_run import DATACLASSES

    script, training, model = parse_recipe(
        DATACLASSES,
        [
            "--config",
            str(TINY_RECIPE),
            "--model_name_or_path",
            str(tiny_model),
            "--output_dir",
            str(tmp_path),
            "--lora_r",
            "2",
        ],
    )
    assert model.lora_r == 2 and script.dataset_name == "tests/fixtures/wikisql" and training.max_steps == 4


def test_push_to_hub_without_hub_fails_before_training(tiny_model, tmp_path, monkeypatch):
    from t2s.publish.hub import HubAccessError
    from t2s.sft import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [str(TINY_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(tmp_path / "o")]
    with pytest.raises(HubAccessError, match="Nothing was trained or pushed"):
        cli([*args, "--push_to_hub", "true", "--hub_model_id", "me/t2s-test"])
    assert not (tmp_path / "o").exists()


def test_two_process_cpu_launch_shards_data_and_only_main_writes(tiny_model, tmp_path):
    import socket

    with socket.socket() as s:  # a free port: a fixed one can still be in TIME_WAIT from an earlier run
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    result = _run_script(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            "accelerate_configs/multi_cpu.yaml",
            "--num_processes",
            "2",
            "--main_process_port",
            str(port),
            "t2s/sft.py",
            str(TINY_RECIPE),
            "--model_name_or_path",
            str(tiny_model),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--eval_steps",
            "1",
            "--per_device_train_batch_size",
            "2",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "× 2 process(es)" in result.stdout and re.search(r"effective batch +│ 4 ", result.stdout)
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["global_step"] == 2 and "2 process(es)" in run["hardware"]
    # one writer: each evaluation appended exactly one record
    records = (out / "eval_samples.jsonl").read_text().splitlines()
    assert len(records) == 3  # steps 1 and 2, and the final evaluation
    assert result.stdout.count("Saved the adapter") == 1


def test_padding_free_run_drops_what_max_length_would_cut_and_trains(tiny_model, tmp_path, capsys):
    """TRL refuses max_length with padding-free batches; t2s drops longer examples (counted) and lifts it."""
    from t2s.sft import cli

    out = tmp_path / "pf"
    args = [str(TINY_RECIPE), "--model_name_or_path", str(tiny_model), "--output_dir", str(out), "--max_steps", "2"]
    trainer = cli([*args, "--padding_free", "true", "--max_length", "120", "--eval_strategy", "no"])
    assert "Dropped" in capsys.readouterr().out
    run = json.loads((out / "t2s_run.json").read_text())
    assert run["padding"].startswith("padding-free") and run["global_step"] == 2
    assert 0 < run["train_examples"] < 22  # the fixture's longer prompts were dropped, not cut
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert max(lengths) <= 120


def test_padding_label_names_the_multiple_batches_are_padded_to():
    from types import SimpleNamespace

    from t2s.training.run_report import padding_label

    args = dict(packing=False, padding_free=False, train_sampling_strategy="group_by_length")
    assert padding_label(SimpleNamespace(**args, pad_to_multiple_of=64)) == (
        "dynamic per-batch padding to a multiple of 64 tokens, sampler: group_by_length"
    )
    assert padding_label(SimpleNamespace(**args, pad_to_multiple_of=None)).startswith("dynamic per-batch padding,")


def test_the_adapter_folder_chat_template_gives_the_trained_prompt(trained, fixture_dev):
    """The adapter's tokenizer carries the canonical prompt as its chat template (SmolLM2's own ChatML would render
    prompts the adapter never saw), and a merged export keeps it."""
    from transformers import AutoTokenizer

    from t2s.data.prompt import QUESTION_MARKER

    _, out = trained
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = fixture_dev[0]["prompt"]
    schema = prompt.split("### Database Schema:\n", 1)[1].split("\n\n" + QUESTION_MARKER, 1)[0]
    messages = [{"role": "system", "content": schema}, {"role": "user", "content": fixture_dev[0]["question"] + " "}]
    assert (
        tokenizer.apply_chat_template(messages, tokenize=False) == prompt
    )  # the question trimmed as fill_prompt does
