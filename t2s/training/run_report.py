"""What a training run says before it starts and leaves behind when it ends.

Before: model, device, the precision and quantisation backend actually in force (a CPU run that quietly dropped a
GPU feature must never be read as if it had used it), data, padding, batch, and how many examples are longer than
`max_length` (TRL truncates them; t2s says so). After: the recipe and effective arguments, the run record
(`t2s_run.json`) and the model card, beside the adapter.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from t2s.data.run_record import RunRecord, save_run
from t2s.data.sources import dataset_kind, dataset_reference
from t2s.decoding.embedded import embedded_model, is_embedded
from t2s.publish.card import write_model_card
from t2s.runtime import allocator
from t2s.training.callbacks import run_peak_memory
from t2s.training.rollout import sampling_label

console = Console()
HISTORY_KEYS = (
    "loss",
    "memory_gib",
    "peak_memory_gib",
    "eval_loss",
    "eval_execution_accuracy",
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "rollout/seconds",
    "completions/mean_length",
    "completions/clipped_ratio",
)


def precision_label(args, weights_dtype: str | None = None) -> str:
    """The compute precision, and the base weights' dtype when the recipe loads them in a half type."""
    if args.fp16:
        label = "fp16 mixed precision"
    elif args.bf16:
        label = "bf16 autocast on CPU" if args.use_cpu or not torch.cuda.is_available() else "bf16 mixed precision"
    else:
        label = "fp32"
    if weights_dtype in ("bfloat16", "float16"):
        label += f", {'bf16' if weights_dtype == 'bfloat16' else 'fp16'} base weights"
    return label


def padding_label(args) -> str:
    if not hasattr(args, "packing"):  # GRPO: batches of generated completions, padded by the trainer
        return "completions padded per batch"
    if args.packing:
        return f"packing ({args.packing_strategy})"
    if args.padding_free:
        return "padding-free (sequences concatenated, position ids reset)"
    strategy = getattr(args, "train_sampling_strategy", "random")
    multiple = getattr(args, "pad_to_multiple_of", None)
    to = f" to a multiple of {multiple} tokens" if multiple else ""
    return f"dynamic per-batch padding{to}, sampler: {strategy}"


def trainable_share(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _common_rows(trainer, model_args) -> dict:
    """The rows every run's setup table starts with: what model, where, in what precision, how much of it trains."""
    trainable, total = trainable_share(trainer.model)
    return {
        "model": model_args.model_name_or_path,
        "device": f"{trainer.args.device} × {trainer.accelerator.num_processes} process(es)",
        "parallelism": parallelism_label(trainer),
        "precision": precision_label(trainer.args, model_args.dtype),
        "memory allocator": allocator(),
        "quantisation": "4-bit nf4 (QLoRA)"
        if model_args.load_in_4bit
        else ("8-bit" if model_args.load_in_8bit else "none"),
        "trainable parameters": f"{trainable:,} of {total:,} ({trainable / total:.2%})",
    }


def _print_setup(title: str, rows: dict, quantization_config) -> None:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)
    if quantization_config is not None and not torch.cuda.is_available():
        console.print(
            "[yellow]4-bit/8-bit quantisation is running on the CPU backend of bitsandbytes: slow, for checks only.[/]"
        )


def report_setup(
    trainer, train, evals, model_args, quantization_config, checkpoint_above: int = 0, starts_from: str | None = None
) -> None:
    if not trainer.accelerator.is_main_process:
        return
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    max_length = trainer.args.max_length
    too_long = sum(n > max_length for n in lengths) if max_length else 0
    rows = {
        **_common_rows(trainer, model_args),
        "starts from": starts_from or "the base model (a fresh LoRA)",
        "train": f"{len(train):,} examples — {train.info.description}",
        "eval": f"{len(evals):,} examples — {evals.info.description}",
        "tokens per example": f"mean {sum(lengths) / max(len(lengths), 1):.0f}, max {max(lengths, default=0)}",
        "padding": padding_label(trainer.args),
        "activation checkpointing": "every batch"
        if trainer.args.activation_checkpointing
        else (f"batches over {checkpoint_above:,} tokens" if checkpoint_above else "off"),
        "effective batch": trainer.args.per_device_train_batch_size
        * trainer.args.gradient_accumulation_steps
        * trainer.accelerator.num_processes,
    }
    _print_setup("t2s SFT run", rows, quantization_config)
    if trainer.args.device.type == "cpu" and rows["memory allocator"] == "glibc":
        console.print(
            "[yellow]glibc's malloc: a long CPU run slows down and grows as its heap fragments. Run it under "
            'scripts/with_jemalloc.sh (docs/training.md, "Memory allocator").[/]'
        )
    if too_long:
        console.print(
            f"[yellow]{too_long} of {len(lengths)} training examples exceed max_length={max_length} tokens and are "
            "truncated by TRL (their SQL is cut). Raise max_length to keep them whole.[/]"
        )


def report_grpo_setup(trainer, train, model_args, script_args, quantization_config) -> None:
    """What a GRPO run will do, before its first generation round."""
    if not trainer.accelerator.is_main_process:
        return
    args = trainer.args
    prompts_per_step = args.per_device_train_batch_size * trainer.accelerator.num_processes // args.num_generations
    rows = {
        **_common_rows(trainer, model_args),
        "starts from": script_args.sft_adapter or "the base model (a fresh LoRA)",
        "train prompts": f"{len(train):,} — {train.info.description}",
        "completions": f"{args.num_generations} per prompt, ≤ {args.max_completion_length} tokens, "
        f"temperature {args.temperature}, "
        + ("vLLM" if args.use_vllm else "transformers generate")
        + (f", {sampling_label(True, script_args.scoped_columns)}" if script_args.constrained_sampling else ""),
        "per optimizer step": f"{prompts_per_step} prompt(s) × {args.gradient_accumulation_steps} accumulation",
        "generation round": f"{args.generation_batch_size} completions, serves {args.steps_per_generation} "
        f"micro-batches ({args.steps_per_generation / args.gradient_accumulation_steps:g} optimizer step(s))",
        "loss": f"{args.loss_type}, beta {args.beta}, lr {args.learning_rate}",
    }
    _print_setup("t2s GRPO run", rows, quantization_config)


def _base_hub_id(name: str) -> str:
    if is_embedded(name):
        return embedded_model(name).hub_id
    return name


@dataclass
class FinishedRun:
    """What a finished SFT or GRPO run hands to `finish_run`."""

    trainer: Any
    script_args: Any  # DataArguments or GRPOArguments
    model_args: Any  # ModelArguments
    recipe: str | None
    train: Any  # the training split (a datasets.Dataset: its protocol in info.description)
    evals: Any  # the evaluation split
    elapsed: Any  # t2s.training.callbacks.TrainingTime: this process's seconds of training, and the earlier stretches'
    metrics: dict  # the final evaluation's (eval_loss)
    quantization_config: Any
    resumed_from: str | None = None


def finish_run(done: FinishedRun, *, stage: str = "sft", extra: dict | None = None) -> None:
    """Write the recipe, effective arguments, run record and model card beside the adapter.

    `stage` is "sft" or "grpo"; `extra` adds stage-specific fields to the record (GRPO: the adapter it continued
    from, the reward, the prompt filter).
    """
    trainer, script_args, model_args, recipe = done.trainer, done.script_args, done.model_args, done.recipe
    train, evals, elapsed, metrics = done.train, done.evals, done.elapsed, done.metrics
    quantization_config, resumed_from = done.quantization_config, done.resumed_from
    out = Path(trainer.args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if recipe:
        shutil.copyfile(recipe, out / "t2s_recipe.yaml")
    effective = {
        "script": vars(script_args),
        "model": vars(model_args),
        "training": json.loads(trainer.args.to_json_string()),
    }
    (out / "t2s_args.json").write_text(json.dumps(effective, indent=2, default=str) + "\n")

    # The adapter config records the base model's *resolved* path (a cache folder for the embedded
    # model). Record a name PEFT's own loaders accept instead (`AutoPeftModelForCausalLM`, the Hub):
    # the Hub id the embedded model is a quantised copy of. t2s itself loads the embedded weights the
    # adapter was trained on, from `base_model` in t2s_run.json (see `t2s.decoding.models.adapter_base`).
    adapter_config = out / "adapter_config.json"
    if adapter_config.exists():
        config = json.loads(adapter_config.read_text())
        config["base_model_name_or_path"] = _base_hub_id(model_args.model_name_or_path)
        adapter_config.write_text(json.dumps(config, indent=2) + "\n")

    peft = (
        f"LoRA r={model_args.lora_r}, alpha={model_args.lora_alpha}, dropout={model_args.lora_dropout}, "
        f"targets {', '.join(model_args.lora_target_modules or ['default'])}"
        + (f", top {model_args.lora_top_layers} layers" if model_args.lora_top_layers else "")
        if model_args.use_peft
        else "full fine-tuning"
    )
    peak = run_peak_memory(trainer)
    run = RunRecord(
        stage=stage,
        base_model=model_args.model_name_or_path,
        base_model_hub_id=_base_hub_id(model_args.model_name_or_path),
        license=embedded_model(model_args.model_name_or_path).license
        if is_embedded(model_args.model_name_or_path)
        else None,
        hub_model_id=trainer.args.hub_model_id,
        recipe=recipe,
        train_protocol=train.info.description,
        train_dataset=_dataset_reference(script_args),
        eval_protocol=evals.info.description,
        train_examples=len(train),
        eval_examples=len(evals),
        schema_format=script_args.schema_format,
        **linking_record(script_args),
        peft=peft,
        quantization=quantization_config.to_dict() if quantization_config is not None else None,
        precision=precision_label(trainer.args, model_args.dtype),
        padding=padding_label(trainer.args),
        allocator=allocator(),
        global_step=trainer.state.global_step,
        resumed_from=resumed_from,
        epochs=round(trainer.state.epoch or 0, 3),
        training_time_s=round(elapsed.total_s if elapsed.total_s is not None else elapsed.this_process_s, 1),
        training_time_from_step=checkpoint_step(resumed_from) if elapsed.total_s is None else None,
        peak_memory=peak,  # resident, of this process (Linux): a resumed run's starts at its checkpoint
        hardware=_hardware(trainer),
        parallelism=parallelism_label(trainer),
        eval_loss=round(metrics["eval_loss"], 4) if "eval_loss" in metrics else None,
        loss_history=[
            {k: v for k, v in entry.items() if k == "step" or k in HISTORY_KEYS}
            for entry in trainer.state.log_history
            if any(k in entry for k in HISTORY_KEYS)
        ],
        prompt_example=evals[0]["prompt"] if len(evals) else "",
        **(extra or {}),
    )
    save_run(out, run)
    write_model_card(out)
    console.print(
        f"[green]Saved the adapter, tokenizer, recipe and model card to {out}[/] "
        f"({elapsed.this_process_s / 60:.1f} min"
        + (f", peak memory {peak['gib']} GiB ({peak['during']}, step {peak['step']})" if peak else "")
        + (f", final eval loss {run.eval_loss})" if run.eval_loss is not None else ")")
    )


def checkpoint_step(checkpoint: str) -> int | None:
    """The step a checkpoint folder was saved at (its trainer_state.json)."""
    state = Path(checkpoint) / "trainer_state.json"
    return json.loads(state.read_text()).get("global_step") if state.is_file() else None


def _dataset_reference(script_args) -> str:
    return dataset_reference(
        script_args.dataset_name, dataset_kind(script_args.dataset_name, script_args.dataset_kind)
    )


def parallelism_label(trainer) -> str:
    """How the processes shared the work, as accelerate set it up from the launch config (accelerate_configs/): data
    parallel, FSDP (with how many modules fully_shard wrapped, once training has wrapped them) or DeepSpeed ZeRO."""
    from accelerate.utils import DistributedType

    accelerator = trainer.accelerator
    n, kind = accelerator.num_processes, accelerator.distributed_type
    if kind == DistributedType.FSDP:
        version = getattr(accelerator.state.fsdp_plugin, "fsdp_version", 1)
        label = f"FSDP{version} over {n} process(es)"
        if version == 2:
            from torch.distributed.fsdp import FSDPModule

            wrapped = sum(isinstance(m, FSDPModule) for m in (trainer.model_wrapped or trainer.model).modules())
            label += f", {wrapped} modules sharded" if wrapped else ""
        return label
    if kind == DistributedType.DEEPSPEED:
        return f"DeepSpeed ZeRO-{accelerator.state.deepspeed_plugin.zero_stage} over {n} process(es)"
    if n > 1:
        return f"data parallel over {n} process(es) ({accelerator.state.backend})"
    return "one process"


def _hardware(trainer) -> str:
    if torch.cuda.is_available():
        return f"{trainer.accelerator.num_processes} × {torch.cuda.get_device_name(0)}"
    import os

    return f"CPU ({platform.machine()}, {os.cpu_count()} cores) × {trainer.accelerator.num_processes} process(es)"


def linking_record(args) -> dict:
    """Schema and value linking, recorded only when on (a prompt built with it must be evaluated with it)."""
    out = {}
    if getattr(args, "link_values", False):
        out["link_values"] = True
    if getattr(args, "prune_tables", 0):
        out["prune_tables"] = args.prune_tables
    if getattr(args, "schema_max_chars", 0):
        out["schema_max_chars"] = args.schema_max_chars
    return out
