"""Supervised fine-tuning: TRL's `SFTTrainer` on canonical prompt/completion records, LoRA/QLoRA from the recipe.

Records are prompt/completion pairs, so TRL trains on the SQL tokens and the EOS only. Before the trainer exists the
run checks what it can (Hub access, early-stopping settings, a resume point); at the end it writes the run record and
the model card beside the adapter, and pushes once if the recipe asks.
"""

from __future__ import annotations

from transformers import EarlyStoppingCallback
from trl import SFTConfig, SFTTrainer

from t2s.runtime import UserError
from t2s.training.callbacks import PeakMemoryCallback, ReleaseMemoryCallback, SQLSamplesCallback
from t2s.training.checkpointing import checkpoint_long_batches
from t2s.training.lora_casts import skip_lora_input_casts_under_autocast
from t2s.training.loss_positions import project_loss_positions_only_on_cpu
from t2s.training.run_report import FinishedRun, finish_run, report_setup
from t2s.training.run_setup import (
    drop_long_examples,
    load_splits,
    load_starting_model,
    longest_allowed,
    publish_run,
    start_run,
    train_timed,
    training_tokenizer,
)
from t2s.training.training_arguments import ModelArguments, SFTArguments

DATACLASSES = (SFTArguments, SFTConfig, ModelArguments)


def train_sft(
    script_args: SFTArguments, training_args: SFTConfig, model_args: ModelArguments, recipe: str | None = None
):
    if script_args.early_stopping_patience and not training_args.load_best_model_at_end:
        raise UserError(
            "early_stopping_patience needs load_best_model_at_end: true, metric_for_best_model: eval_loss and "
            "matching eval/save strategies in the recipe"
        )
    if script_args.activation_checkpointing_above_tokens and training_args.activation_checkpointing:
        raise UserError(
            "activation_checkpointing_above_tokens checkpoints the long batches only, but the recipe checkpoints every "
            "batch (activation_checkpointing is true, TRL's default): set activation_checkpointing: false as well"
        )
    start = start_run(script_args, training_args)

    starting = load_starting_model(model_args, script_args.init_adapter, "init_adapter")
    training_args.model_init_kwargs, quantization_config = starting.model_init_kwargs, starting.quantization_config
    project_loss_positions_only_on_cpu(training_args)  # as TRL does on GPUs: same loss, less work
    tokenizer = training_tokenizer(starting.tokenizer_source)

    train, evals = load_splits(script_args)
    limit = longest_allowed(script_args, training_args)
    train, dropped = drop_long_examples(train, tokenizer, limit)
    if dropped:
        print(f"Dropped {dropped} training examples longer than {limit} tokens.")
    if training_args.padding_free and not training_args.packing:
        # TRL refuses max_length with padding-free batches (it cannot enforce it); every example now fits it.
        training_args.max_length = None
    samples = SQLSamplesCallback(
        evals,
        tokenizer,
        num_samples=script_args.log_samples,
        num_exec=script_args.eval_execution_accuracy_samples,
        max_new_tokens=script_args.generation_max_new_tokens,
    )
    callbacks = [samples, PeakMemoryCallback()]
    if script_args.release_memory_steps:
        callbacks.append(ReleaseMemoryCallback(script_args.release_memory_steps))
    if script_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=script_args.early_stopping_patience))
    trainer = SFTTrainer(
        model=starting.model,
        args=training_args,
        train_dataset=train.select_columns(["prompt", "completion"]),
        eval_dataset=evals.select_columns(["prompt", "completion"]),
        processing_class=tokenizer,
        peft_config=starting.peft_config,
        callbacks=callbacks,
    )
    samples.trainer = trainer
    skip_lora_input_casts_under_autocast(trainer.model)  # exact: autocast casts the LoRA inputs back anyway
    if script_args.activation_checkpointing_above_tokens:
        checkpoint_long_batches(trainer.model, script_args.activation_checkpointing_above_tokens)
    report_setup(
        trainer,
        train,
        evals,
        model_args,
        quantization_config,
        script_args.activation_checkpointing_above_tokens,
        starts_from=script_args.init_adapter,
    )

    elapsed = train_timed(trainer, start.resume)
    # With load_best_model_at_end the best checkpoint is back in place and its eval loss is known.
    best = trainer.state.best_metric
    metrics = (
        {"eval_loss": best}
        if best is not None and training_args.metric_for_best_model == "eval_loss"
        else trainer.evaluate()
    )
    trainer.save_model(training_args.output_dir)  # the adapter only (PEFT), plus the tokenizer

    done = FinishedRun(
        trainer, script_args, model_args, recipe, train, evals, elapsed, metrics, quantization_config, start.resume
    )
    extra = {"init_adapter": script_args.init_adapter} if script_args.init_adapter else None
    publish_run(trainer, start, lambda: finish_run(done, extra=extra))
    return trainer
