"""Keep GRPO's training prompts informative: drop the questions the starting model always or never gets right.

GRPO's advantage is a completion's reward minus its group's mean: a group whose completions all get the same reward
contributes no gradient (TRL logs the share as `frac_reward_zero_std`), yet costs a full generation round. Before
training, each candidate question is answered `num_samples` times by the starting model, sampling as GRPO will
(same temperature, top-p, top-k), and scored with the training reward; questions whose samples all score the same
are dropped. The pre-scores are written to `prescores.jsonl` in the output folder, so the filter can be audited and
its "before" zero-std share compared with the one TRL logs during training.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from t2s.decoding.predict import generate_with_progress
from t2s.decoding.settings import GenerationSettings


@dataclass
class PrescoreSummary:
    candidates: int
    kept: int
    zero_std_share: float  # of the candidates: the share whose samples all got the same reward
    mean_reward: float
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.kept} of {self.candidates} questions kept: their {self.zero_std_share:.0%} with equal rewards "
            f"across samples dropped (mean pre-score reward {self.mean_reward:.3f}, {self.seconds:.0f} s)"
        )


def prescore(model, tokenizer, dataset, reward, settings: GenerationSettings) -> list[list[float]]:
    """`settings.num_candidates` sampled completions per question, each scored by `reward` (a t2s reward)."""
    candidates = generate_with_progress(
        model, tokenizer, list(dataset["prompt"]), settings, "Pre-scoring training questions"
    )
    records = list(dataset)
    return [
        [
            reward.score_one(sql, ex["gold_sql"], ex.get("table"), ex.get("db_path"), semantics=ex.get("semantics"))
            for sql in samples
        ]
        for ex, samples in zip(records, candidates, strict=True)
    ]


def is_informative(rewards: list[float | None]) -> bool:
    """Rewards that differ; a question whose gold query fails (no reward, None) never is."""
    return None not in rewards and len(set(rewards)) > 1


def keep_informative(model, tokenizer, dataset, reward, settings: GenerationSettings, output_dir: str | Path):
    """(the informative questions, a summary); writes every question's pre-scores to output_dir/prescores.jsonl."""
    import time

    if settings.num_candidates < 2:
        raise ValueError("pre-scoring needs at least 2 samples per question to see whether their rewards differ")
    start = time.perf_counter()
    scores = prescore(model, tokenizer, dataset, reward, settings)
    seconds = time.perf_counter() - start
    keep = [i for i, rewards in enumerate(scores) if is_informative(rewards)]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept_set = set(keep)
    with (out / "prescores.jsonl").open("w") as f:
        for i, (example_id, rewards) in enumerate(zip(dataset["example_id"], scores, strict=True)):
            f.write(json.dumps({"example_id": example_id, "rewards": rewards, "kept": i in kept_set}) + "\n")
    flat = [r for rewards in scores for r in rewards if r is not None]
    summary = PrescoreSummary(
        candidates=len(scores),
        kept=len(keep),
        zero_std_share=1 - len(keep) / len(scores) if scores else 0.0,
        mean_reward=statistics.fmean(flat) if flat else 0.0,
        seconds=seconds,
    )
    kept = dataset.select(keep)
    kept.info.description = (
        f"{dataset.info.description}; {len(keep)} kept whose {settings.num_candidates} pre-scoring samples "
        "got different rewards"
    )
    return kept, summary
