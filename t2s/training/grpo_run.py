"""Reinforcement learning after SFT: TRL's `GRPOTrainer` with execution accuracy as the reward.

Training prompts are the canonical prompts of SFT (prompt-only records); each completion is scored by running it in
the metric's sandbox against the gold result (`t2s.training.rewards`). With `sft_adapter` the SFT LoRA weights keep
training; the output is that adapter, on the same base, with its run record and model card.
"""

from __future__ import annotations

from pathlib import Path

from trl import GRPOConfig, GRPOTrainer

from t2s.decoding.settings import GenerationSettings
from t2s.runtime import UserError
from t2s.training import run_setup
from t2s.training.callbacks import PeakMemoryCallback, ReleaseMemoryCallback
from t2s.training.loss_positions import project_loss_positions_only_on_cpu
from t2s.training.prompt_filter import keep_informative
from t2s.training.rewards import ExecutionReward
from t2s.training.rollout import ConstrainedRollout, RolloutLog, constraints_for, sampling_label
from t2s.training.run_report import FinishedRun, finish_run, report_grpo_setup
from t2s.training.training_arguments import GRPOArguments, ModelArguments

DATACLASSES = (GRPOArguments, GRPOConfig, ModelArguments)


def check_constrained_sampling(training_args) -> None:
    """Refuse what t2s's constrained sampler would not apply, rather than ignore it: it samples through transformers
    with the temperature, top-p and top-k of the recipe, and nothing else."""
    if training_args.use_vllm:
        raise UserError(
            "constrained_sampling draws completions through transformers with t2s's grammar, not through vLLM: "
            "set use_vllm: false, or constrained_sampling: false to sample from vLLM unconstrained"
        )
    set_here = {
        "min_p": getattr(training_args, "min_p", None) is not None,
        "repetition_penalty": getattr(training_args, "repetition_penalty", 1.0) != 1.0,
        "generation_kwargs": bool(getattr(training_args, "generation_kwargs", None)),
        "use_transformers_paged": bool(getattr(training_args, "use_transformers_paged", False)),
    }
    ignored = [name for name, is_set in set_here.items() if is_set]
    if ignored:
        raise UserError(
            f"constrained_sampling samples with temperature, top_p and top_k only; {', '.join(ignored)} would be "
            "ignored: remove them from the recipe, or set constrained_sampling: false"
        )


def train_grpo(
    script_args: GRPOArguments, training_args: GRPOConfig, model_args: ModelArguments, recipe: str | None = None
):
    if script_args.constrained_sampling:
        check_constrained_sampling(training_args)
    start = run_setup.start_run(script_args, training_args)

    policy = run_setup.load_starting_model(model_args, script_args.sft_adapter, "sft_adapter")
    training_args.model_init_kwargs = policy.model_init_kwargs
    project_loss_positions_only_on_cpu(training_args)  # as TRL does on GPUs: same log-probs, less work
    tokenizer = run_setup.training_tokenizer(policy.tokenizer_source)

    train, evals = run_setup.load_splits(script_args)
    train = train.remove_columns(["completion"])  # prompt-only: the gold SQL reaches the reward as gold_sql
    reward = ExecutionReward(script_args.reward_partial_credit)
    prompt_filter = None
    if script_args.overwrite_output_dir and training_args.process_index == 0:
        # afresh: an earlier run's pre-scores are not read, nor its rollouts mixed with this run's
        out = Path(training_args.output_dir)
        for path in [out / "prescores.jsonl", out / "prescores.settings.json", *out.glob("rollouts*.jsonl")]:
            path.unlink(missing_ok=True)
    if script_args.prescore_samples:
        sampler = policy.model
        if isinstance(sampler, str):  # a new adapter on the base: sample from the base itself
            from transformers import AutoModelForCausalLM

            init = {k: v for k, v in (policy.model_init_kwargs or {}).items() if v is not None}
            sampler = AutoModelForCausalLM.from_pretrained(sampler, **init)
        train, summary = keep_informative(
            sampler,
            tokenizer,
            train,
            reward,
            GenerationSettings(
                max_new_tokens=training_args.max_completion_length,
                batch_size=max(1, (training_args.generation_batch_size or 64) // script_args.prescore_samples),
                temperature=training_args.temperature,
                top_p=training_args.top_p,
                top_k=training_args.top_k,
                num_candidates=script_args.prescore_samples,
            ),
            training_args.output_dir,
            *(constraints_for(list(train), script_args.scoped_columns) if script_args.constrained_sampling else ()),
            sampling=sampling_label(script_args.constrained_sampling, script_args.scoped_columns),
            may_sample=training_args.world_size == 1,
        )
        prompt_filter = summary.describe()
        print(f"Pre-scoring: {prompt_filter}")
        if script_args.prescore_only:
            print(f"Pre-scores written to {training_args.output_dir}/prescores.jsonl; stopped (prescore_only).")
            return None
        if not len(train):
            raise UserError("no training question is informative (every one got equal rewards): nothing to train on")
    reward.record = RolloutLog(training_args.output_dir, training_args.process_index, training_args.world_size)
    rollout = (
        ConstrainedRollout([train, evals], scoped_columns=script_args.scoped_columns)
        if script_args.constrained_sampling
        else None
    )
    trainer = GRPOTrainer(
        model=policy.model,
        rollout_func=rollout,
        reward_funcs=[reward],
        args=training_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=policy.peft_config,
        callbacks=[PeakMemoryCallback()]
        + ([ReleaseMemoryCallback(script_args.release_memory_steps)] if script_args.release_memory_steps else []),
    )
    report_grpo_setup(trainer, train, model_args, script_args, policy.quantization_config)

    elapsed = run_setup.train_timed(trainer, start.resume)
    trainer.save_model(training_args.output_dir)  # the adapter only (PEFT), plus the tokenizer
    trainer.save_state()  # trainer_state.json: every logged step (rewards, zero-std share, step times)
    # Each process generated and scored its own completions: the counts are summed over processes (gather_object is
    # collective, so every process takes part before the main one writes).
    from accelerate.utils import gather_object

    scored_by_process = gather_object([reward.scored])
    skipped = sum(gather_object([sum(reward.gold_failures.values())]))
    if skipped and trainer.accelerator.is_main_process:
        print(
            f"{skipped} completions of {len(reward.gold_failures)} questions got no reward: their gold query failed "
            "on its database (the warnings above name them)."
        )

    extra = {
        "sft_adapter": script_args.sft_adapter,
        "reward": f"execution: 1.0 correct, {reward.partial_credit} runs but differs, 0.0 error/timeout/rejected",
        "prompt_filter": prompt_filter,
        "sampling": sampling_label(script_args.constrained_sampling, script_args.scoped_columns),
        "completions_without_reward": skipped,  # their gold query failed (t2s.training.rewards)
        "completions_scored_by_process": scored_by_process,
        "grpo": {
            k: getattr(training_args, k)
            for k in (
                "num_generations",
                "generation_batch_size",
                "max_completion_length",
                "temperature",
                "beta",
                "loss_type",
                "learning_rate",
            )
        },
    }
    done = FinishedRun(
        trainer, script_args, model_args, recipe, train, evals, elapsed, {}, policy.quantization_config, start.resume
    )
    run_setup.publish_run(trainer, start, lambda: finish_run(done, stage="grpo", extra=extra))
    return trainer
