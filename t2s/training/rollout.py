"""GRPO's completions drawn under the schema grammar, optionally with column scoping: a TRL `rollout_func`.

On a CPU each completion costs real time, and a completion that cannot parse or names a column its table lacks
only teaches "not this". Sampled under the grammar the model will be decoded with (`t2s.decoding.constrained`),
every completion is a query over the question's own schema, and the reward tells right results from wrong ones.

What the loss sees: TRL scores each sampled token with the policy's log-probability over the whole vocabulary, not
over the tokens the mask left; so the gradient raises or lowers the sampled tokens as plain GRPO would, and the
masked tokens' mass is not taught away (the mask keeps removing it at decoding time). `docs/training.md` says more.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from t2s.decoding.generation import sample_completion_ids
from t2s.decoding.settings import GenerationSettings


class ConstrainedRollout:
    """TRL's `rollout_func(prompts, trainer)`: one completion per prompt of the slice (TRL repeats each prompt
    `num_generations` times), sampled with the trainer's temperature, top-p, top-k and `max_completion_length`,
    each under its question's grammar; returns `prompt_ids` (tokenized as TRL tokenizes prompts),
    `completion_ids` (`sample_completion_ids`) and no sampling log-probabilities."""

    def __init__(self, datasets: Iterable[Any], *, scoped_columns: bool) -> None:
        self.scoped_columns = scoped_columns
        self._by_prompt: dict[str, tuple[str, Any]] = {}
        for dataset in datasets:
            if dataset is None:
                continue
            examples = list(dataset)
            grammars, scopes = constraints_for(examples, scoped_columns)
            for i, example in enumerate(examples):
                self._by_prompt.setdefault(example["prompt"], (grammars[i], scopes[i] if scopes else None))

    def constraint(self, prompt: str) -> tuple[str, Any]:
        try:
            return self._by_prompt[prompt]
        except KeyError:
            raise KeyError(
                f"no grammar for a prompt outside the training and evaluation data: {prompt[:80]!r}…"
            ) from None

    def __call__(self, prompts: Sequence[str], trainer) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        args = trainer.args
        tokenizer = trainer.processing_class
        constraints = [self.constraint(p) for p in prompts]
        settings = GenerationSettings(
            max_new_tokens=args.max_completion_length,
            batch_size=len(prompts),  # the whole slice at once, as TRL's own generate path does
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
        )
        start = time.perf_counter()
        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
        ) as model:
            completion_ids = sample_completion_ids(
                model,
                tokenizer,
                list(prompts),
                settings,
                grammars=[g for g, _ in constraints],
                scopes=[s for _, s in constraints] if self.scoped_columns else None,
            )
        log_metric = getattr(trainer, "_log_metric", None)  # TRL's per-step metrics (logged with the step's others)
        if log_metric is not None:
            log_metric("rollout/seconds", time.perf_counter() - start)
        prompt_ids = [tokenizer(text=p)["input_ids"] for p in prompts]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def sampling_label(constrained: bool, scoped_columns: bool) -> str:
    """How GRPO drew its completions, as the run record and card name it."""
    if not constrained:
        return "unconstrained"
    return "column-scoped constrained" if scoped_columns else "constrained"


def constraints_for(examples: Sequence[Mapping[str, Any]], scoped_columns: bool) -> tuple[list[str], list | None]:
    """Grammars (and scopes) for pre-scoring's samples, one per example, as the rollout will draw them."""
    from t2s.decoding.constrained import grammar_for, scope_for

    grammars = [grammar_for(ex) for ex in examples]
    return grammars, ([scope_for(ex) for ex in examples] if scoped_columns else None)


class RolloutLog:
    """Every scored completion of a GRPO run, one JSON line each: the optimizer step its round serves first, the
    question, the reward and the SQL read from it. TRL logs only each round's means; from these lines
    `t2s grpo-report` computes each group's reward spread and which questions never give a signal.

    One file per process (`rollouts.jsonl`, or `rollouts.<rank>.jsonl` with several), appended to and flushed per
    round. Each start of the run writes its own `start` token: a resumed run redoes the steps after its last
    checkpoint, and the report keeps, for each step, the lines of the last start that wrote it.
    """

    def __init__(self, output_dir: str | Path, rank: int = 0, processes: int = 1) -> None:
        name = "rollouts.jsonl" if processes == 1 else f"rollouts.{rank}.jsonl"
        self.path = Path(output_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = secrets.token_hex(4)

    def __call__(self, state, example_ids, completions, rewards) -> None:
        from t2s.training.rewards import completion_text

        step = (state.global_step if state is not None else 0) + 1
        ids = example_ids if example_ids is not None else [None] * len(rewards)
        with self.path.open("a") as f:
            for example_id, completion, reward in zip(ids, completions, rewards, strict=True):
                line = {"start": self.start, "step": step, "example_id": example_id, "reward": reward,
                        "sql": completion_text(completion)}  # fmt: skip
                f.write(json.dumps(line) + "\n")
