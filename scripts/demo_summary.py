"""The final before/after table of `make demo` (WikiSQL) and `make demo-spider`, printed and written as `<demo dir>/results.md`.

    python scripts/demo_summary.py outputs/demo [--total_seconds N]

A script of the demos, not of the library: it knows the demos' folder layout and their `make` targets.

The dataset is read from the metrics: a Spider evaluation carries accuracy by hardness, which gets its own table.

Execution-guided decoding is optional (`DEMO_EG=1 make demo`, or `make demo-eg` / `make demo-spider-eg` afterwards):
its row and its comparison appear when `finetuned_eg/` exists. The demo's own duration is kept in
`<demo dir>/demo_seconds` so that a later execution-guided run can still report it.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from t2s.data.run_record import load_run


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def summarise_demo(out: Path, total_seconds: int | None = None) -> str:
    zero, tuned = (_load(out / name / "metrics.json") for name in ("zero_shot", "finetuned"))
    before_after = _load(out / "compare_zero_shot_finetuned.json")
    run = load_run(out / "adapter")
    has_eg = (out / "finetuned_eg" / "metrics.json").exists() and (out / "compare_greedy_eg.json").exists()
    eg = _load(out / "finetuned_eg" / "metrics.json") if has_eg else None
    greedy_eg = _load(out / "compare_greedy_eg.json") if has_eg else None
    seconds_file = out / "demo_seconds"
    if total_seconds:
        seconds_file.write_text(f"{total_seconds}\n")
    elif seconds_file.exists():
        total_seconds = int(seconds_file.read_text())

    spider = "by_hardness" in tuned
    # a Spider demo of another base than the default one names it (`make demo-spider DEMO_MODEL=gemma3-270m`)
    base = Path(run.recipe or "").parts[1:2]
    model_flag = f" DEMO_MODEL={base[0]}" if spider and base and base[0] != "smollm2-135m" else ""
    eg_command = f"make demo-spider-eg{model_flag}" if spider else "make demo-eg"
    recipe = run.recipe or "the recipe"
    table = Table(title=f"t2s demo — {tuned['protocol']}; schema only in the prompt")
    for column in ("model", "decoding", "execution accuracy", "without empty-gold", "generation time"):
        table.add_column(column)
    rows = [
        (f"{zero['model']}, zero-shot", zero),
        (f"+ LoRA ({recipe})", tuned),
    ]
    if has_eg:
        rows.append(("+ LoRA, execution-guided", eg))
    row_lines = []
    for name, m in rows:
        gen = _time(m, has_eg and m is eg)
        table.add_row(
            name,
            m["decoding"].split(";")[0],
            f"{m['execution_accuracy']:.1%}",
            f"{m['execution_accuracy_nonempty_gold']:.1%}",
            gen,
        )
        outcomes = ", ".join(f"{k} {v}" for k, v in m["outcomes"].items() if v)
        row_lines.append(
            f"| {name} | {m['decoding']} | **{m['execution_accuracy']:.1%}** | {m['execution_accuracy_nonempty_gold']:.1%} "
            f"| {outcomes} | {gen} |"
        )
    console = Console()
    console.print(table)
    console.print(
        f"zero-shot → fine-tuned: fixed {before_after['fixed']}, broken {before_after['broken']}, "
        f"McNemar p = {before_after['mcnemar_p']:.2g}"
        + (
            f"; greedy → execution-guided: fixed {greedy_eg['fixed']}, broken {greedy_eg['broken']}, "
            f"p = {greedy_eg['mcnemar_p']:.2g}"
            if has_eg
            else f" (execution-guided decoding: `{eg_command}`)"
        )
    )

    if spider:
        protocol = (
            f"Protocol: **{tuned['protocol']}**; schema only in the prompt (`{tuned['schema_format']}`: every table "
            "as CREATE TABLE with column types, primary and foreign keys, no database content); greedy decoding; "
            "the official Spider execution match (test-suite-sql-eval defaults). The model trains on Spider train, "
            "whose databases are not in dev."
        )
    else:
        protocol = (
            f"Protocol: **{tuned['protocol']}**; schema only in the prompt (`{tuned['schema_format']}`: column names "
            "and types, no table content, as the WikiSQL leaderboard requires); execution accuracy with empty-gold "
            "examples included (official protocol) and without them. Not a WikiSQL test score: the test split is not "
            "used, and the model trains on dev questions from the other tables."
        )
    lines = [
        "# t2s demo results",
        "",
        protocol,
        "",
        "| model | decoding | execution accuracy | without empty-gold | outcomes | generation time |",
        "|---|---|---|---|---|---|",
        *row_lines,
    ]
    if spider:
        levels = list(tuned["by_hardness"])
        lines += ["", "| model | " + " | ".join(levels) + " | all |", "|---" * (len(levels) + 2) + "|"]
        for name, m in rows:
            cells = [
                f"{e['execution_accuracy']:.1%} ({e['correct']}/{e['n']})"
                for e in (
                    m.get("by_hardness", {}).get(k, {"execution_accuracy": 0, "correct": 0, "n": 0}) for k in levels
                )
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['execution_accuracy']:.1%} |")
        if "caveat_examples" in tuned:
            n = sum(e["n"] for e in tuned["caveat_examples"].values())
            lines += [
                "",
                f"{n} of the scored questions have a known problem in their gold result on these machines' copy of the "
                "data (see ../shared/spider/README.md); without them the fine-tuned model scores "
                f"{tuned['execution_accuracy_without_caveats']:.1%} ({tuned['num_without_caveats']} questions):",
                "",
                *(f"- {e['correct']}/{e['n']} correct: {c}" for c, e in tuned["caveat_examples"].items()),
            ]
    lines += [
        "",
        f"- Zero-shot → fine-tuned (paired, {before_after['n']} questions): fixed {before_after['fixed']}, broken "
        f"{before_after['broken']}, McNemar exact p = {before_after['mcnemar_p']:.2g}.",
    ]
    if has_eg:
        lines.append(
            f"- Greedy → execution-guided: fixed {greedy_eg['fixed']}, broken {greedy_eg['broken']}, McNemar exact p = "
            f"{greedy_eg['mcnemar_p']:.2g}. Beam search ran on {eg.get('eg_searched', '?')} questions whose greedy "
            f"query failed or returned nothing; it replaced the greedy query on {eg.get('eg_replaced_greedy', '?')}."
        )
    else:
        lines.append(f"- Execution-guided decoding was not run (`{eg_command}` adds it to this directory).")
    lines += [
        f"- Training: {run.train_examples} questions ({run.train_protocol}), {run.peft}, {run.precision}, "
        f"{run.global_step} steps, {run.training_time_s / 60:.1f} min on {run.hardware}; best eval loss "
        f"{run.eval_loss} on {run.eval_examples} {'Spider dev' if spider else 'held-out'} questions.",
    ]
    if total_seconds:
        lines.append(
            f"- `make {'demo-spider' if spider else 'demo'}{model_flag}` (conversion, baseline, training, evaluation, analysis, "
            "comparison): "
            f"{total_seconds / 60:.0f} min"
            + (", execution-guided decoding not included (its time is in the table)." if has_eg else ".")
        )
    history = [e for e in run.loss_history if "eval_loss" in e]
    if history:
        lines.append(
            f"- Eval loss on {'Spider dev questions' if spider else 'held-out tables'} by step: "
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


def main(argv=None) -> str:
    import argparse

    parser = argparse.ArgumentParser(description="The before/after table of a finished demo folder (make demo).")
    parser.add_argument("out", type=Path, help="the demo's output folder (outputs/demo, outputs/demo_spider)")
    parser.add_argument("--total_seconds", type=int, default=None, help="the demo's wall time, to print with it")
    args = parser.parse_args(argv)
    return summarise_demo(args.out, args.total_seconds)


if __name__ == "__main__":
    main()
