"""Execution-accuracy metric throughput on the WikiSQL dev split (gold vs gold), written to docs/benchmarks.md.

    python -m bench.bench_metric [--data ../shared/wikisql] [--repeats 3]

Measures examples/second through `evaluate.load("t2s/metrics/execution_accuracy")`, single process
and with num_proc=2, from a cold table cache (every table materialised once inside the timing).
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import evaluate  # noqa: E402

from bench.report import write_section  # noqa: E402
from t2s.data import clear_table_cache, load_wikisql  # noqa: E402
from t2s.execution import _scan_cached  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="official-layout WikiSQL directory (default: $T2S_WIKISQL_DIR)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ds = load_wikisql(args.data, "dev")
    refs, tables = list(ds["gold_sql"]), list(ds["table"])
    metric = evaluate.load(str(ROOT / "t2s" / "metrics" / "execution_accuracy"))
    rows = []
    for num_proc in (None, 2):
        speeds = []
        for _ in range(args.repeats):
            clear_table_cache()
            _scan_cached.cache_clear()
            start = time.perf_counter()
            result = metric.compute(predictions=refs, references=refs, tables=tables, num_proc=num_proc)
            speeds.append(len(refs) / (time.perf_counter() - start))
        assert result["execution_accuracy"] == 1.0, result
        rows.append((num_proc or 1, max(speeds), min(speeds)))
        print(f"num_proc={num_proc or 1}: best {max(speeds):,.0f} ex/s, worst {min(speeds):,.0f} ex/s")

    lines = [
        f"Gold vs gold on all {len(refs):,} WikiSQL dev questions ({len(set(ds['table_id'])):,} tables), through",
        '`evaluate.load("t2s/metrics/execution_accuracy")`, cold table cache, '
        f"{args.repeats} repeats; {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores.",
        f"Command: `python -m bench.bench_metric`. Execution accuracy: {result['execution_accuracy']:.1%}.",
        "",
        "| processes | best examples/s | worst examples/s |",
        "|---|---|---|",
        *[f"| {n} | {best:,.0f} | {worst:,.0f} |" for n, best, worst in rows],
        "",
        "Target: at least 2,000 examples/s on one core.",
    ]
    write_section("Execution-accuracy metric", "\n".join(lines))


if __name__ == "__main__":
    main()
