"""What a training run settles before the trainer exists: its data splits, which examples fit, where it starts.

Kept out of `t2s/sft.py` so that the script stays a screenful; `t2s/grpo.py` and other trainers can share them.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2s.runtime import UserError
from t2s.training.training_arguments import DataArguments

if TYPE_CHECKING:
    from t2s.training.callbacks import TrainingTime


def check_launch(training_args) -> None:
    """Refuse a launch that would not run as configured, before anything loads.

    Every process `accelerate launch` (torchrun) started must join one process group: on a machine without CUDA,
    accelerate joins them only when the recipe sets `use_cpu: true`, and otherwise each trains alone and writes the
    same output folder. accelerate (1.16) shards with FSDP or DeepSpeed on GPU processes only: on the CPU it would
    train unsharded copies under a sharded config's name. Both would look like a successful run."""
    import os

    import torch

    from t2s.decoding.sharding import launched_processes

    launched = launched_processes()
    if launched <= 1:
        return
    on_cpu = not torch.cuda.is_available() or getattr(training_args, "use_cpu", False)
    if on_cpu:
        for flag, config in (("ACCELERATE_USE_FSDP", "fsdp.yaml"), ("ACCELERATE_USE_DEEPSPEED", "zero3.yaml")):
            if os.environ.get(flag, "false").lower() == "true":
                raise UserError(
                    f"{config} shards the model over GPU processes, and accelerate runs it on GPUs only: on CPU "
                    "processes (no CUDA, or use_cpu: true) each would train an unsharded copy. On CPU processes use "
                    "accelerate_configs/multi_cpu.yaml (data parallel over gloo, use_cpu: true); docs/training.md"
                )
    joined = training_args.distributed_state.num_processes
    if joined != launched:
        raise UserError(
            f"{launched} processes were launched (WORLD_SIZE) but accelerate joined {joined}: each would train alone "
            "and write the same output_dir. Without CUDA, set use_cpu: true in the recipe (or --use_cpu true) with "
            "accelerate_configs/multi_cpu.yaml"
        )


def model_init_kwargs(model_args) -> tuple[dict, object]:
    """(from_pretrained kwargs of the recipe's model, its quantisation config or None), as both trainers load it."""
    import torch
    from accelerate import PartialState
    from trl import get_quantization_config

    from t2s.decoding.embedded import is_embedded

    quantization_config = get_quantization_config(model_args)
    kwargs = {
        "revision": None if is_embedded(model_args.model_name_or_path) else model_args.model_revision,
        "dtype": model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype),
        "attn_implementation": model_args.attn_implementation,
        "quantization_config": quantization_config,
        # Quantised weights are placed at load time: on this process's GPU, or on the CPU (bitsandbytes' CPU
        # backend, slow; the run's setup report says so) where there is none.
        "device_map": {"": str(PartialState().device)} if quantization_config is not None else None,
    }
    return kwargs, quantization_config


def peft_config(model_args, model_path: str):
    """TRL's LoRA config for the recipe, covering only the top `lora_top_layers` decoder layers when it is set."""
    from trl import get_peft_config

    top = model_args.lora_top_layers
    if top is None:
        return get_peft_config(model_args)
    if not model_args.use_peft:
        raise UserError(
            "lora_top_layers shapes a LoRA adapter, but use_peft is false: set use_peft: true or remove it"
        )
    config = get_peft_config(model_args)
    if isinstance(config.target_modules, str):
        raise UserError(
            f"lora_top_layers needs lora_target_modules as a list of module names (e.g. [q_proj, v_proj]), not "
            f"{config.target_modules!r}: PEFT cannot pick layers by number when the targets are 'all-linear' or a regex"
        )
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(model_path)
    layers = getattr(model_config.get_text_config(), "num_hidden_layers", None)
    if layers is None:
        raise UserError(
            f"lora_top_layers: {model_args.model_name_or_path}'s config has no num_hidden_layers, so t2s cannot tell "
            "which layers are the top ones; remove lora_top_layers"
        )
    if top > layers:
        raise UserError(
            f"lora_top_layers={top}, but {model_args.model_name_or_path} has {layers} decoder layers: set it to "
            f"{layers} or fewer (or remove it for every layer)"
        )
    return dataclasses.replace(config, layers_to_transform=list(range(layers - top, layers)))


def load_splits(args: DataArguments):
    """(training records, evaluation records) as the recipe names them; with heldout_tables both from one split."""
    train_split, eval_split = args.dataset_train_split, args.dataset_eval_split
    train_part, eval_part = ("train", "heldout") if args.heldout_tables else (None, None)
    if args.heldout_tables:
        eval_split = train_split
    train = args.load(
        train_split,
        table_split=train_part,
        limit=args.train_limit,
        fraction=args.train_fraction,
        **({} if args.require_database else {"require_database": False}),
    )
    evals = args.load(eval_split, table_split=eval_part, limit=args.eval_limit)
    return train, evals


def longest_allowed(script_args, training_args) -> int | None:
    """The most tokens a training example may have: `drop_longer_than`, and with padding-free batches (where TRL
    cannot enforce `max_length` and refuses it) also `max_length`: longer examples are dropped and counted, not cut."""
    limits = [script_args.drop_longer_than]
    if getattr(training_args, "padding_free", False) and not getattr(training_args, "packing", False):
        limits.append(training_args.max_length)
    limits = [n for n in limits if n]
    return min(limits) if limits else None


def drop_long_examples(dataset, tokenizer, max_tokens: int | None):
    """Training examples that fit `max_tokens` (prompt + SQL + EOS, tokenized as TRL does), and how many did not."""
    if not max_tokens:
        return dataset, 0
    lengths = [
        len(tokenizer(text=p)["input_ids"]) + len(tokenizer(text=c, add_special_tokens=False)["input_ids"]) + 1
        for p, c in zip(dataset["prompt"], dataset["completion"])
    ]
    keep = [i for i, n in enumerate(lengths) if n <= max_tokens]
    kept = dataset.select(keep)
    kept.info.description = (
        f"{dataset.info.description}; {len(keep)} kept of at most {max_tokens} tokens"
        if len(keep) < len(dataset)
        else dataset.info.description
    )
    return kept, len(dataset) - len(keep)


def _checkpoint_step(path: str) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1])


def _finished_step(out: Path) -> int | None:
    """The step a completed run in `out` ended at (its run record is written only when training ends)."""
    from t2s.data.run_record import has_run, load_run

    run = load_run(out) if has_run(out) else None
    return run.global_step if run is not None else None


def resume_point(output_dir: str, resume_from_checkpoint: str | None, overwrite: bool) -> str | None:
    """Where training starts: a named checkpoint, else the last one in output_dir, else nowhere (fresh).

    Never silently restarts over an earlier run's checkpoints, never silently overwrites a finished adapter.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if resume_from_checkpoint:
        if not (Path(resume_from_checkpoint) / "trainer_state.json").exists():
            raise UserError(f"resume_from_checkpoint={resume_from_checkpoint} is not a checkpoint folder")
        return resume_from_checkpoint
    out = Path(output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if overwrite:
        from accelerate import PartialState

        state = PartialState()
        if state.is_main_process:  # one writer when several processes train
            for old in out.glob("checkpoint-*") if out.is_dir() else ():
                shutil.rmtree(old)
        state.wait_for_everyone()
        return None
    finished = _finished_step(out)
    if last is not None and finished is not None and _checkpoint_step(last) < finished:
        raise UserError(
            f"{out} holds a finished run (step {finished}) whose last checkpoint is older ({last}): it cannot be "
            "continued. Choose another output_dir, or pass --overwrite_output_dir true to train again from scratch"
        )
    if last is not None:
        print(f"Resuming from {last} (output_dir holds an earlier run; --overwrite_output_dir true starts afresh).")
        return last
    if (out / "adapter_config.json").exists():
        raise UserError(
            f"{out} already holds a trained adapter and no checkpoint to resume from; choose another output_dir, "
            "or pass --overwrite_output_dir true to replace it"
        )
    return None


def planned_steps(trainer) -> int:
    """The optimizer step a run configured like `trainer` ends at: `max_steps`, else epochs × steps per epoch."""
    import math

    args = trainer.args
    if args.max_steps and args.max_steps > 0:
        return args.max_steps
    per_epoch = max(len(trainer.get_train_dataloader()) // args.gradient_accumulation_steps, 1)
    return math.ceil(args.num_train_epochs * per_epoch)


def check_continuation(trainer, resume: str | None) -> None:
    """A finished run in output_dir is continued only when this configuration ends later than it did.

    Training a finished run to a larger `max_steps` (or more epochs) resumes from its last checkpoint, as an
    interrupted run would. With nothing left to train it is refused: transformers would otherwise train one step past
    the end and overwrite the adapter and its recorded scores.
    """
    out = Path(trainer.args.output_dir)
    finished = _finished_step(out)
    if resume is None or finished is None or _checkpoint_step(resume) < finished:
        return
    planned = planned_steps(trainer)
    if planned <= finished:
        raise UserError(
            f"{out} holds a finished run (step {finished}), and this configuration ends at step {planned}: nothing "
            "left to train. To continue it, raise --max_steps (or --num_train_epochs); to train again from scratch, "
            "pass --overwrite_output_dir true; or choose another output_dir"
        )
    print(f"Continuing the finished run in {out} from step {finished} to step {planned}.")


@dataclass(frozen=True)
class RunStart:
    """What `start_run` decided before anything loaded."""

    resume: str | None  # the checkpoint to resume from
    push: bool  # push to the Hub once the run is finished (the trainer itself never pushes)


def start_run(script_args, training_args) -> RunStart:
    """What every training run does before it loads a model: the process prepared (message filters, allocator), the
    launch and Hub access checked, the checkpoint to resume from found, the trainer's own pushing turned off (t2s
    pushes once, with its own model card) and the seed set."""
    from transformers import set_seed

    from t2s.publish.hub import check_hub_access
    from t2s.runtime import prepare_process

    prepare_process()  # the message filters and allocator choice of a t2s process (t2s/runtime.py)
    check_launch(training_args)
    check_hub_access(training_args.push_to_hub, training_args.hub_model_id)
    resume = resume_point(
        training_args.output_dir, training_args.resume_from_checkpoint, script_args.overwrite_output_dir
    )
    push, training_args.push_to_hub = training_args.push_to_hub, False
    set_seed(training_args.seed)
    return RunStart(resume, push)


@dataclass
class StartingModel:
    """What a run trains: a new adapter on the base (`model` is the base's path and `peft_config` the adapter's), or
    an existing adapter continued (`model` is the loaded PeftModel, no new `peft_config`)."""

    model: Any
    peft_config: Any
    model_init_kwargs: dict | None
    quantization_config: Any
    tokenizer_source: str


def load_starting_model(model_args, adapter: str | None, field: str) -> StartingModel:
    """The model a run starts from: a fresh LoRA on `model_name_or_path`, or `adapter` (a folder or Hub id; the recipe
    field `field` names it) whose LoRA weights keep training on their own base."""
    from t2s.decoding.embedded import resolve_model_name
    from t2s.decoding.models import adapter_base, has_tokenizer

    if adapter:
        if model_args.lora_top_layers is not None:
            raise UserError(
                f"lora_top_layers shapes a new adapter, but the run continues {field} {adapter}, whose layers are "
                "fixed: remove lora_top_layers"
            )
        base = adapter_base(adapter)
        named = model_args.model_name_or_path
        if named and resolve_model_name(named) != resolve_model_name(base):
            raise UserError(
                f"{field} {adapter} was trained on {base}, but the recipe's model_name_or_path is {named}: set "
                "model_name_or_path to the adapter's base (or leave it out)"
            )
        model_args.model_name_or_path = base
    if not model_args.model_name_or_path:
        raise UserError(f"model_name_or_path is required (or {field}, whose base model is then used)")
    path = resolve_model_name(model_args.model_name_or_path)
    init, quantization_config = model_init_kwargs(model_args)
    if not adapter:
        return StartingModel(path, peft_config(model_args, path), init, quantization_config, path)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, **{k: v for k, v in init.items() if v is not None})
    # is_trainable: the adapter's LoRA weights are what trains (GRPO keeps a frozen copy as reference if beta > 0)
    model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    return StartingModel(model, None, None, quantization_config, adapter if has_tokenizer(adapter) else path)


def training_tokenizer(source: str):
    """The tokenizer a run trains with, given a pad token when the model has none (its EOS), and the canonical prompt
    as its chat template, which the adapter folder then carries (training reads prompts as plain text)."""
    from transformers import AutoTokenizer

    from t2s.data.prompt import with_prompt_template

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return with_prompt_template(tokenizer)


def train_timed(trainer, resume: str | None) -> TrainingTime:
    """Train (after checking a resumed run can continue) and return the run's training time: this process's, and the
    earlier stretches' that the resumed checkpoint recorded."""
    from t2s.training.callbacks import TrainingClockCallback, TrainingTime, checkpoint_training_time

    check_continuation(trainer, resume)
    clock = TrainingClockCallback(checkpoint_training_time(resume))
    trainer.add_callback(clock)
    trainer.train(resume_from_checkpoint=resume)
    return TrainingTime(clock.elapsed(), clock.earlier_s)


def publish_run(trainer, start: RunStart, write_records) -> None:
    """On the main process only: write the run's records (`write_records()`: recipe, run record, card), then push
    the folder once if the recipe asked to."""
    if not trainer.accelerator.is_main_process:
        return
    write_records()
    if start.push:
        from t2s.publish.hub import push_folder

        args = trainer.args
        push_folder(args.output_dir, args.hub_model_id, private=args.hub_private_repo)
