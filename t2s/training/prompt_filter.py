"""Keep GRPO's training prompts informative: drop the questions the starting model always or never gets right.

GRPO's advantage is a completion's reward minus its group's mean: a group whose completions all get the same reward
contributes no gradient (TRL logs the share as `frac_reward_zero_std`), yet costs a full generation round. Before
training, each candidate question is answered `num_samples` times by the starting model, sampling as GRPO will
(same temperature, top-p, top-k), and scored with the training reward; questions whose samples all score the same
are dropped. The pre-scores are written to `prescores.jsonl` in the output folder, so the filter can be audited and
its "before" zero-std share compared with the one TRL logs during training. They are written chunk by chunk and
reused by a later start of the same run (same settings), so pre-scoring survives an interruption and a resumed run
trains on the questions it started with.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from t2s.decoding.predict import generate_with_progress
from t2s.decoding.settings import GenerationSettings
from t2s.runtime import UserError


@dataclass
class PrescoreSummary:
    candidates: int
    kept: int
    zero_std_share: float  # of the candidates: the share whose samples all got the same reward
    mean_reward: float
    seconds: float
    reused: int = 0  # questions whose pre-scores an earlier start of the run had written

    def describe(self) -> str:
        reused = f", {self.reused} read from an earlier start" if self.reused else ""
        return (
            f"{self.kept} of {self.candidates} questions kept: their {self.zero_std_share:.0%} with equal rewards "
            f"across samples dropped (mean pre-score reward {self.mean_reward:.3f}, {self.seconds:.0f} s{reused})"
        )


PRESCORE_CHUNK = 16  # questions per chunk: each chunk's pre-scores are on disk before the next is sampled


def prescore(
    model, tokenizer, dataset, reward, settings: GenerationSettings, grammars=None, scopes=None, label=None
) -> list[list[float]]:
    """`settings.num_candidates` sampled completions per question, each scored by `reward` (a t2s reward); with
    `grammars` (and `scopes`), one per question, sampled under them as constrained GRPO samples."""
    candidates = generate_with_progress(
        model,
        tokenizer,
        list(dataset["prompt"]),
        settings,
        label or "Pre-scoring training questions",
        grammars,
        scopes,
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


def prescore_settings(settings: GenerationSettings, reward, sampling: str) -> dict:
    """What pre-scores depend on; pre-scores made with other settings are not reused."""
    return {
        "samples": settings.num_candidates,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "max_new_tokens": settings.max_new_tokens,
        "sampling": sampling,
        "partial_credit": getattr(reward, "partial_credit", None),
    }


def earlier_prescores(out: Path, wanted: dict) -> dict[str, list]:
    """The pre-scores an earlier start of this run left in `out` (by example id), if made with `wanted` settings;
    a run stopped while pre-scoring thus goes on where it stopped, and a resumed run trains on the same questions."""
    scores_file, settings_file = out / "prescores.jsonl", out / "prescores.settings.json"
    if not scores_file.exists():
        return {}
    found = json.loads(settings_file.read_text()) if settings_file.exists() else None
    if found != wanted:
        raise UserError(
            f"{scores_file} holds pre-scores made with other settings ({found}, not {wanted}): use another "
            "output_dir, or delete that file to pre-score again"
        )
    text = scores_file.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not text.endswith("\n"):  # a start stopped while writing its last line: that question is redone
        lines = lines[:-1]
        scores_file.write_text("".join(line + "\n" for line in lines))
    records = [json.loads(line) for line in lines]
    return {record["example_id"]: record["rewards"] for record in records}


def keep_informative(
    model,
    tokenizer,
    dataset,
    reward,
    settings: GenerationSettings,
    output_dir: str | Path,
    grammars=None,
    scopes=None,
    sampling: str = "unconstrained",
    may_sample: bool = True,
):
    """(the informative questions, a summary). Every question's pre-scores go to output_dir/prescores.jsonl, chunk by
    chunk as they are made; those an earlier start of the run wrote are reused (`earlier_prescores`). `grammars`
    and `scopes`: as `prescore`'s; `sampling` names them in the settings the pre-scores were made with. Without
    `may_sample` (one of several processes, which would each draw their own samples and keep other questions) only
    complete earlier pre-scores are read."""
    import time

    if settings.num_candidates < 2:
        raise ValueError("pre-scoring needs at least 2 samples per question to see whether their rewards differ")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = prescore_settings(settings, reward, sampling)
    known = earlier_prescores(out, wanted)
    (out / "prescores.settings.json").write_text(json.dumps(wanted, indent=1) + "\n")
    ids = list(dataset["example_id"])
    todo = [i for i, example_id in enumerate(ids) if example_id not in known]
    if todo and not may_sample:
        raise UserError(
            f"{len(todo)} of {len(ids)} questions have no pre-scores in {out / 'prescores.jsonl'}, and pre-scoring "
            "runs in one process: pre-score first with one process (this command without --num_processes, with "
            "--prescore_only true), then launch on several processes with the same output_dir"
        )
    start = time.perf_counter()
    with (out / "prescores.jsonl").open("a") as f:
        for c in range(0, len(todo), PRESCORE_CHUNK):
            chunk = todo[c : c + PRESCORE_CHUNK]
            scores = prescore(
                model,
                tokenizer,
                dataset.select(chunk),
                reward,
                settings,
                [grammars[i] for i in chunk] if grammars is not None else None,
                [scopes[i] for i in chunk] if scopes is not None else None,
                label=f"Pre-scoring training questions {c + len(chunk)}/{len(todo)}",
            )
            for i, rewards in zip(chunk, scores, strict=True):
                known[ids[i]] = rewards
                f.write(json.dumps({"example_id": ids[i], "rewards": rewards, "kept": is_informative(rewards)}) + "\n")
            f.flush()
    seconds = time.perf_counter() - start
    scores = [known[example_id] for example_id in ids]
    keep = [i for i, rewards in enumerate(scores) if is_informative(rewards)]
    flat = [r for rewards in scores for r in rewards if r is not None]
    summary = PrescoreSummary(
        candidates=len(scores),
        kept=len(keep),
        zero_std_share=1 - len(keep) / len(scores) if scores else 0.0,
        mean_reward=statistics.fmean(flat) if flat else 0.0,
        seconds=seconds,
        reused=len(ids) - len(todo),
    )
    kept = dataset.select(keep)
    kept.info.description = (
        f"{dataset.info.description}; {len(keep)} kept whose {settings.num_candidates} pre-scoring samples "
        "got different rewards"
    )
    return kept, summary
