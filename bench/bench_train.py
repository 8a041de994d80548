"""Training throughput: the seed notebook's padding against the CPU recipe's, same model, same WikiSQL data.

    python -m bench.bench_train [--examples 80]

Seed setup: every example padded to 256 tokens, batch 1 × gradient accumulation 4.
Recipe setup (recipes/smollm2_cpu.yaml): its batch size, padded per batch to its longest example, its sampler.
Both train the embedded SmolLM2-135M-Instruct with the recipe's LoRA on the same questions (WikiSQL dev, training
tables), fp32 on CPU. Reported: useful (non-padding) tokens per second, share of non-padding tokens, seconds per
example. The first optimizer step of each run is warm-up and not timed. Results go to docs/benchmarks.md.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402
from transformers import AutoTokenizer, TrainerCallback  # noqa: E402
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config  # noqa: E402

from bench.report import write_section  # noqa: E402
from t2s.data import load_wikisql  # noqa: E402
from t2s.embedded import ensure_embedded_model  # noqa: E402

RECIPE = "recipes/smollm2_cpu.yaml"


class Timer(TrainerCallback):
    def __init__(self):
        self.step_times = []
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_times.append(time.perf_counter() - self._start)


def measure(name, data, tokenizer, model_path, lora, *, batch, accum, pad_to, steps, sampler):
    counts = {"real": 0, "total": 0, "batches": 0}
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accum,
            learning_rate=4e-4,
            use_cpu=True,
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            report_to="none",
            save_strategy="no",
            logging_steps=1000,
            max_length=pad_to or 512,
            pad_to_multiple_of=pad_to,
            padding_free=False,
            train_sampling_strategy=sampler,
            seed=42,
            dataloader_num_workers=0,
            model_init_kwargs={"dtype": "float32", "attn_implementation": "sdpa"},
        )
        timer = Timer()
        trainer = SFTTrainer(
            model=model_path,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=get_peft_config(lora),
            callbacks=[timer],
        )
        collate = trainer.data_collator

        def counting(features):
            batch_ = collate(features)
            if counts["batches"] >= accum:  # the first optimizer step is warm-up
                counts["real"] += int(batch_["attention_mask"].sum())
                counts["total"] += batch_["input_ids"].numel()
            counts["batches"] += 1
            return batch_

        trainer.data_collator = counting
        trainer.train()
    timed = sum(timer.step_times[1:])
    examples = (steps - 1) * batch * accum
    result = {
        "setup": name,
        "s_per_step": timed / (steps - 1),
        "examples_per_s": examples / timed,
        "useful_tokens_per_s": counts["real"] / timed,
        "all_tokens_per_s": counts["total"] / timed,
        "non_padding_share": counts["real"] / counts["total"],
    }
    print(result, flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=96, help="examples per setup (after one warm-up step)")
    cli = parser.parse_args()
    recipe = yaml.safe_load(Path(RECIPE).read_text())
    model_path = str(ensure_embedded_model(recipe["model_name_or_path"]))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lora = ModelConfig(
        use_peft=True,
        lora_r=recipe["lora_r"],
        lora_alpha=recipe["lora_alpha"],
        lora_dropout=recipe["lora_dropout"],
        lora_target_modules=recipe["lora_target_modules"],
    )
    ds = load_wikisql(None, "dev", table_split="train", limit=cli.examples + 8, seed=7).select_columns(
        ["prompt", "completion"]
    )
    seed = measure(
        "seed: pad to 256, batch 1 × grad-accum 4",
        ds,
        tokenizer,
        model_path,
        lora,
        batch=1,
        accum=4,
        pad_to=256,
        steps=cli.examples // 4 + 1,
        sampler="random",
    )
    batch, accum = recipe["per_device_train_batch_size"], recipe.get("gradient_accumulation_steps", 1)
    ours = measure(
        f"recipe: batch {batch} × grad-accum {accum}, per-batch padding, length-grouped",
        ds,
        tokenizer,
        model_path,
        lora,
        batch=batch,
        accum=accum,
        pad_to=None,
        steps=cli.examples // (batch * accum) + 1,
        sampler="group_by_length",
    )
    speedup = ours["useful_tokens_per_s"] / seed["useful_tokens_per_s"]
    lines = [
        f"SmolLM2-135M-Instruct (embedded), LoRA r={recipe['lora_r']} on {len(recipe['lora_target_modules'])} projections, "
        f"fp32, CPU ({os.cpu_count()} cores), {cli.examples} timed WikiSQL dev questions per setup (training tables), "
        "first optimizer step not timed. Command: `python -m bench.bench_train`.",
        "",
        "| setup | s/optimizer step | examples/s | useful tokens/s | all tokens/s | non-padding share |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['setup']} | {r['s_per_step']:.2f} | {r['examples_per_s']:.2f} | {r['useful_tokens_per_s']:.0f} "
            f"| {r['all_tokens_per_s']:.0f} | {r['non_padding_share']:.0%} |"
            for r in (seed, ours)
        ],
        "",
        f"Useful tokens per second: **{speedup:.2f}×** the seed's (target ≥ 1.5×). Padding-free batches and packing are "
        "only correct with FlashAttention-style kernels (TRL's documentation), which CPUs lack, so the CPU recipe pads "
        "per batch; the GPU recipe uses padding-free batches with flash_attention_2.",
    ]
    write_section("Training throughput (CPU)", "\n".join(lines))


if __name__ == "__main__":
    main()
