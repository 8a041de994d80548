"""Fine-tune a causal LM to write SQL (WikiSQL, Spider, your own databases) with LoRA/QLoRA and TRL's SFTTrainer.

    accelerate launch --config_file accelerate_configs/cpu.yaml t2s/sft.py recipes/smollm2_cpu.yaml
    accelerate launch --config_file accelerate_configs/cpu.yaml t2s/sft.py recipes/smollm2_spider_cpu.yaml
    accelerate launch --config_file accelerate_configs/single_gpu_fp16.yaml t2s/sft.py recipes/mistral_lora.yaml
    python t2s/sft.py recipes/smollm2_cpu.yaml --max_steps 20 --output_dir outputs/try   # any field overrides

Records are prompt/completion pairs, so TRL trains on the SQL tokens and the EOS only.
"""

import t2s.quiet  # noqa: F401  (first: before bitsandbytes is imported)

import shutil
import sys
import time
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import AutoTokenizer, EarlyStoppingCallback, set_seed
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config, get_quantization_config

from t2s.callbacks import SQLSamplesCallback
from t2s.configs import DataArguments
from t2s.data import load_text2sql
from t2s.device import check_device_support, check_optional_kernels
from t2s.embedded import is_embedded, resolve_model_name
from t2s.errors import UserError, run_command
from t2s.hub import check_hub_access, push_adapter
from t2s.recipe import parse_recipe, split_recipe_argument
from t2s.run_record import finish_run, report_setup

DATACLASSES = (DataArguments, SFTConfig, ModelConfig)


def load_splits(args: DataArguments):
    common = dict(
        dataset_kind_=args.dataset_kind,
        schema_format=args.schema_format,
        num_sample_rows=args.num_sample_rows,
        revision=args.dataset_revision,
        data_files=args.data_files(),
        heldout_fraction=args.heldout_fraction,
        holdout_seed=args.holdout_seed,
        seed=args.data_seed_subset,
        db_dir=args.db_dir,
        on_error=args.on_error,
        **({"check_gold": True} if args.check_gold else {}),
    )
    train_split, eval_split = args.dataset_train_split, args.dataset_eval_split
    train_part, eval_part = ("train", "heldout") if args.heldout_tables else (None, None)
    if args.heldout_tables:
        eval_split = train_split
    train = load_text2sql(
        args.dataset_name,
        train_split,
        table_split=train_part,
        limit=args.train_limit,
        fraction=args.train_fraction,
        **common,
        **({} if args.require_database else {"require_database": False}),
    )
    evals = load_text2sql(args.dataset_name, eval_split, table_split=eval_part, limit=args.eval_limit, **common)
    return train, evals


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
        for old in out.glob("checkpoint-*") if out.is_dir() else ():
            shutil.rmtree(old)
        return None
    if last is not None:
        print(f"Resuming from {last} (output_dir holds an earlier run; --overwrite_output_dir true starts afresh).")
        return last
    if (out / "adapter_config.json").exists():
        raise UserError(
            f"{out} already holds a trained adapter and no checkpoint to resume from; choose another output_dir, "
            "or pass --overwrite_output_dir true to replace it"
        )
    return None


def main(script_args: DataArguments, training_args: SFTConfig, model_args: ModelConfig, recipe: str | None = None):
    if script_args.early_stopping_patience and not training_args.load_best_model_at_end:
        raise ValueError(
            "early_stopping_patience needs load_best_model_at_end: true, metric_for_best_model: eval_loss and "
            "matching eval/save strategies in the recipe"
        )
    check_hub_access(training_args.push_to_hub, training_args.hub_model_id)
    resume = resume_point(
        training_args.output_dir, training_args.resume_from_checkpoint, script_args.overwrite_output_dir
    )
    push, training_args.push_to_hub = training_args.push_to_hub, False  # we push once, with our own model card
    set_seed(training_args.seed)

    model_path = resolve_model_name(model_args.model_name_or_path)
    quantization_config = get_quantization_config(model_args)
    training_args.model_init_kwargs = {
        "revision": None if is_embedded(model_args.model_name_or_path) else model_args.model_revision,
        "dtype": model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype),
        "attn_implementation": model_args.attn_implementation,
        "quantization_config": quantization_config,
        # Quantised weights are placed at load time: on this process's GPU, or on the CPU (bitsandbytes' CPU
        # backend, slow; report_setup says so) where there is none.
        "device_map": {"": str(PartialState().device)} if quantization_config is not None else None,
    }
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    train, evals = load_splits(script_args)
    train, dropped = drop_long_examples(train, tokenizer, script_args.drop_longer_than)
    if dropped:
        print(f"Dropped {dropped} training examples longer than {script_args.drop_longer_than} tokens.")
    samples = SQLSamplesCallback(
        evals,
        tokenizer,
        num_samples=script_args.log_samples,
        num_exec=script_args.eval_execution_accuracy_samples,
        max_new_tokens=script_args.generation_max_new_tokens,
    )
    callbacks = [samples]
    if script_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=script_args.early_stopping_patience))
    trainer = SFTTrainer(
        model=model_path,
        args=training_args,
        train_dataset=train.select_columns(["prompt", "completion"]),
        eval_dataset=evals.select_columns(["prompt", "completion"]),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    samples.trainer = trainer
    report_setup(trainer, train, evals, model_args, quantization_config)

    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    elapsed = time.perf_counter() - start
    # With load_best_model_at_end the best checkpoint is back in place and its eval loss is known.
    best = trainer.state.best_metric
    metrics = (
        {"eval_loss": best}
        if best is not None and training_args.metric_for_best_model == "eval_loss"
        else trainer.evaluate()
    )
    trainer.save_model(training_args.output_dir)  # the adapter only (PEFT), plus the tokenizer

    if trainer.accelerator.is_main_process:
        finish_run(trainer, script_args, model_args, recipe, train, evals, elapsed, metrics, quantization_config)
        if push:
            push_adapter(training_args.output_dir, training_args.hub_model_id, private=training_args.hub_private_repo)
    return trainer


def preflight(settings: dict, recipe: str | None) -> None:
    check_device_support(settings, recipe)
    check_optional_kernels(settings)


def cli(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    recipe, _ = split_recipe_argument(argv)
    wants_help = any(a in ("-h", "--help") for a in argv)  # help needs no device check
    script_args, training_args, model_args = parse_recipe(DATACLASSES, argv, check=None if wants_help else preflight)
    return main(script_args, training_args, model_args, recipe)


if __name__ == "__main__":
    run_command(cli)
