"""The final before/after table of `make demo`, printed and written as `<demo dir>/results.md`.

python -m t2s.demo_summary outputs/demo [--total_seconds N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def summarise_demo(out: Path, total_seconds: int | None = None) -> str:
    zero, tuned, eg = (_load(out / name / "metrics.json") for name in ("zero_shot", "finetuned", "finetuned_eg"))
    before_after = _load(out / "compare_zero_shot_finetuned.json")
    greedy_eg = _load(out / "compare_greedy_eg.json")
    run = _load(out / "adapter" / "t2s_run.json")

    table = Table(title=f"t2s demo — {tuned['protocol']}; schema only in the prompt")
    for column in ("model", "decoding", "execution accuracy", "without empty-gold", "generation time"):
        table.add_column(column)
    rows = [
        ("SmolLM2-135M-Instruct, zero-shot", zero),
        ("+ LoRA (recipes/smollm2_cpu.yaml)", tuned),
        ("+ LoRA, execution-guided", eg),
    ]
    for name, m in rows:
        table.add_row(
            name,
            m["decoding"].split(";")[0],
            f"{m['execution_accuracy']:.1%}",
            f"{m['execution_accuracy_nonempty_gold']:.1%}",
            _time(m, m is eg),
        )
    console = Console()
    console.print(table)
    console.print(
        f"zero-shot → fine-tuned: fixed {before_after['fixed']}, broken {before_after['broken']}, "
        f"McNemar p = {before_after['mcnemar_p']:.2g}; greedy → execution-guided: fixed {greedy_eg['fixed']}, "
        f"broken {greedy_eg['broken']}, p = {greedy_eg['mcnemar_p']:.2g}"
    )

    lines = [
        "# t2s demo results",
        "",
        f"Protocol: **{tuned['protocol']}**; schema only in the prompt (`{tuned['schema_format']}`: column names and "
        "types, no table content, as the WikiSQL leaderboard requires); execution accuracy with empty-gold examples "
        "included (official protocol) and without them. Not a WikiSQL test score: the test split is not used, and the "
        "model trains on dev questions from the other tables.",
        "",
        "| model | decoding | execution accuracy | without empty-gold | outcomes | generation time |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in m["outcomes"].items() if v)
        gen = _time(m, m is eg)
        lines.append(
            f"| {name} | {m['decoding']} | **{m['execution_accuracy']:.1%}** | {m['execution_accuracy_nonempty_gold']:.1%} "
            f"| {outcomes} | {gen} |"
        )
    lines += [
        "",
        f"- Zero-shot → fine-tuned (paired, {before_after['n']} questions): fixed {before_after['fixed']}, broken "
        f"{before_after['broken']}, McNemar exact p = {before_after['mcnemar_p']:.2g}.",
        f"- Greedy → execution-guided: fixed {greedy_eg['fixed']}, broken {greedy_eg['broken']}, McNemar exact p = "
        f"{greedy_eg['mcnemar_p']:.2g}. Beam search ran on {eg.get('eg_searched', '?')} questions whose greedy query "
        f"failed or returned nothing; it replaced the greedy query on {eg.get('eg_replaced_greedy', '?')}.",
        f"- Training: {run['train_examples']} questions ({run['train_protocol']}), {run['peft']}, {run['precision']}, "
        f"{run['global_step']} steps, {run['training_time_s'] / 60:.1f} min on {run['hardware']}; best eval loss "
        f"{run['eval_loss']} on {run['eval_examples']} held-out questions.",
    ]
    if total_seconds:
        lines.append(
            f"- Whole demo (conversion, baseline, training, evaluations, analysis): {total_seconds / 60:.0f} min."
        )
    history = [e for e in run.get("loss_history", []) if "eval_loss" in e]
    if history:
        lines.append(
            "- Eval loss on held-out tables by step: "
            + ", ".join(f"{e['step']}: {e['eval_loss']:.3f}" for e in history)
            + "."
        )
    lines += ["", "Error analysis of the fine-tuned model (greedy): `finetuned/analysis.md`.", ""]
    text = "\n".join(lines)
    (out / "results.md").write_text(text)
    return text


def _time(metrics: dict, extra: bool) -> str:
    """Generation time; execution-guided runs reuse the greedy predictions, so theirs is time on top of greedy."""
    seconds = metrics.get("generation_seconds")
    if seconds is None:
        return ""
    return (
        f"+{seconds:.0f} s (beam search on {metrics.get('eg_searched', '?')} questions)"
        if extra
        else f"{seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--total_seconds", type=int, default=None)
    args = parser.parse_args()
    summarise_demo(args.out, args.total_seconds)


if __name__ == "__main__":
    main()
