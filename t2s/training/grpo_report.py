"""What a GRPO run did, step by step: reward, share of groups without signal, completion length, time.

    t2s grpo-report outputs/smollm2-135m-wikisql-grpo --png docs/grpo_wikisql_curve.png

Reads the run's `trainer_state.json` (every logged step; else its last checkpoint's), or a console log (`--log`). TRL logs
rewards on the step that generated them (one generation round serves `steps_per_generation` steps), and a
`step_time` on every step. The run's rollout log (`rollouts.jsonl`, every scored completion) gives the spread of
rewards within each group and the share of groups, and of questions, that gave no signal.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
from collections import Counter
from pathlib import Path

from rich.console import Console

from t2s.runtime import UserError

console = Console()
_LOG_DICT = re.compile(r"\{'loss'[^{}]*\}")


def read_history(run_dir: str | Path, log: str | Path | None = None) -> list[dict]:
    """The trainer's log history: from trainer_state.json, else from dicts printed in a console log."""
    run_dir = Path(run_dir)
    checkpoints = sorted(run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))
    states = [p for p in [run_dir / "trainer_state.json", *reversed(checkpoints)] if p.exists()]
    if log is None and states:
        return [e for e in json.loads(states[0].read_text())["log_history"] if "loss" in e]
    if log is None:
        raise FileNotFoundError(
            f"{run_dir} has no trainer_state.json (nor a checkpoint's); pass its console log with --log"
        )
    text = Path(log).read_text(errors="replace").replace("\r", "\n")
    entries = []
    for match in _LOG_DICT.finditer(text):
        entry = {k: float(v) for k, v in ast.literal_eval(match.group(0)).items()}
        entries.append(entry)
    for i, entry in enumerate(entries, 1):
        entry.setdefault("step", i)
    return entries


def read_rollouts(run_dir: str | Path) -> list[dict]:
    """The run's scored completions (`t2s.training.rollout.RolloutLog`), every process's file; for each step, the
    lines of the last start of the run that wrote it (a resumed run redoes the steps after its last checkpoint)."""
    kept = []
    for path in sorted(Path(run_dir).glob("rollouts*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        last_start = {line["step"]: line["start"] for line in lines}
        kept += [line for line in lines if line["start"] == last_start[line["step"]]]
    return kept


def group_summary(rollouts: list[dict]) -> dict:
    """Where GRPO's signal came from: each group is one question's completions in one round; a group whose rewards
    are all equal gives no gradient (all right, all runnable but wrong, or all failing)."""
    groups: dict[tuple, list[float]] = {}
    for line in rollouts:
        if line["reward"] is not None:
            groups.setdefault((line["step"], line["example_id"]), []).append(line["reward"])
    if not groups:
        return {}
    equal = [g for g in groups.values() if len(set(g)) == 1]
    questions: dict[str, list[bool]] = {}
    for (_, example_id), rewards in groups.items():
        questions.setdefault(example_id, []).append(len(set(rewards)) > 1)
    return {
        "groups": len(groups),
        "completions_per_group": statistics.fmean(len(g) for g in groups.values()),
        "share_without_signal": len(equal) / len(groups),
        "all_right": sum(g[0] == 1.0 for g in equal) / len(groups),
        "all_wrong_but_run": sum(0.0 < g[0] < 1.0 for g in equal) / len(groups),
        "all_failing": sum(g[0] == 0.0 for g in equal) / len(groups),
        "mean_group_reward_std": statistics.fmean(statistics.pstdev(g) for g in groups.values()),
        "share_of_right_completions": statistics.fmean(r == 1.0 for g in groups.values() for r in g),
        "questions": len(questions),
        "questions_never_with_signal": sum(not any(v) for v in questions.values()) / len(questions),
    }


def summarise(history: list[dict], completions_per_round: int) -> dict:
    rounds = [e for e in history if "reward" in e]
    times = [e["step_time"] for e in history if "step_time" in e]
    tokens = sum(e["completions/mean_length"] * completions_per_round for e in rounds)
    half = len(rounds) // 2
    return {
        "steps": len(history),
        "generation_rounds": len(rounds),
        "seconds_per_step": statistics.fmean(times) if times else None,
        "total_seconds": sum(times),
        "sampling_seconds": sum(e.get("rollout/seconds", 0.0) for e in history) or None,  # constrained sampling
        "generated_tokens": round(tokens),
        "generated_tokens_per_second": tokens / sum(times) if times else None,
        "reward_first_half": statistics.fmean(e["reward"] for e in rounds[:half]) if half else None,
        "reward_second_half": statistics.fmean(e["reward"] for e in rounds[half:]) if rounds else None,
        "frac_reward_zero_std_mean": statistics.fmean(e["frac_reward_zero_std"] for e in rounds) if rounds else None,
        "mean_completion_tokens": statistics.fmean(e["completions/mean_length"] for e in rounds) if rounds else None,
    }


def plot(history: list[dict], png: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [e for e in history if "reward" in e]
    steps = [e["step"] for e in rounds]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    ax1.plot(steps, [e["reward"] for e in rounds], marker="o", label="mean reward of the round's completions")
    ax1.set_ylabel("reward (1 / 0.1 / 0)")
    ax1.set_ylim(0, 1)
    ax1.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(steps, [e["frac_reward_zero_std"] for e in rounds], marker="s", color="tab:red")
    ax2.set_ylabel("groups with equal rewards")
    ax2.set_xlabel("optimizer step (one generation round per point)")
    ax2.set_ylim(-0.02, 1)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    """`t2s grpo-report RUN_DIR [--log LOG] [--png PNG]`: the summary as JSON, and the curve when asked."""
    import argparse

    parser = argparse.ArgumentParser(description="Reward curve, zero-std share and group spread of a GRPO run.")
    parser.add_argument("run_dir", help="the GRPO output folder (finished, or under way with its checkpoints)")
    parser.add_argument("--log", default=None, help="the run's console log, when trainer_state.json is missing")
    parser.add_argument("--png", default=None, help="where to draw the reward curve")
    args = parser.parse_args(argv)
    from t2s.data.run_record import has_run, load_run

    rollouts = read_rollouts(args.run_dir)
    run = load_run(args.run_dir) if has_run(args.run_dir) else None
    if run is not None:
        per_round = (run.grpo or {})["generation_batch_size"]
    elif rollouts:  # a run still under way: its rounds' sizes are in its rollout log
        per_round = statistics.median(Counter(line["step"] for line in rollouts).values())
    else:
        raise UserError(
            f"{args.run_dir}: no t2s_run.json and no rollouts.jsonl; give the output folder of a t2s grpo run"
        )
    history = read_history(args.run_dir, args.log)
    summary = summarise(history, per_round)
    summary["groups"] = group_summary(rollouts)
    console = Console()
    console.print_json(json.dumps(summary))
    if args.png:
        start = (run.sft_adapter if run else None) or "the SFT adapter"
        plot(history, args.png, f"GRPO from {start}, {summary['steps']} steps: each point is one generation round")
        console.print(f"[green]Wrote {args.png}[/]")
    return summary
