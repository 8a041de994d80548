"""Execution-accuracy metric throughput, gold vs gold on WikiSQL dev and Spider dev, written to docs/benchmarks.md.

    python -m bench.bench_metric [--data ../shared/wikisql] [--repeats 3]

Measures examples/second through `evaluate.load(EXECUTION_ACCURACY)`, single process and with num_proc=2:
WikiSQL from a cold table cache (every table materialised once inside the timing), Spider on its SQLite files
(its semantics add sqlparse's DISTINCT removal and the column-permutation match).
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import evaluate  # noqa: E402

from bench.benchmarks_page import write_section  # noqa: E402
from t2s.data import load_spider, load_wikisql  # noqa: E402
from t2s.execution.sandbox import clear_scan_cache  # noqa: E402
from t2s.execution.tables import clear_table_cache  # noqa: E402
from t2s.metrics import EXECUTION_ACCURACY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="official-layout WikiSQL directory (default: $T2S_WIKISQL_DIR)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ds = load_wikisql(args.data, "dev")
    refs, tables = list(ds["gold_sql"]), list(ds["table"])
    metric = evaluate.load(EXECUTION_ACCURACY)
    rows = []
    for num_proc in (None, 2):
        speeds = []
        for _ in range(args.repeats):
            clear_table_cache()
            clear_scan_cache()
            start = time.perf_counter()
            result = metric.compute(
                predictions=refs, references=refs, tables=tables, num_proc=num_proc, semantics="wikisql"
            )
            speeds.append(len(refs) / (time.perf_counter() - start))
        assert result["execution_accuracy"] == 1.0, result
        rows.append((num_proc or 1, max(speeds), min(speeds)))
        print(f"num_proc={num_proc or 1}: best {max(speeds):,.0f} ex/s, worst {min(speeds):,.0f} ex/s")

    spider = load_spider(None, "dev")
    spider_refs, paths = list(spider["gold_sql"]), list(spider["db_path"])
    spider_rows = []
    for num_proc in (None, 2):
        speeds = []
        for _ in range(args.repeats):
            clear_scan_cache()
            start = time.perf_counter()
            spider_result = metric.compute(
                predictions=spider_refs, references=spider_refs, db_paths=paths, num_proc=num_proc, semantics="spider"
            )
            speeds.append(len(spider_refs) / (time.perf_counter() - start))
        assert spider_result["execution_accuracy"] == 1.0, spider_result
        spider_rows.append((num_proc or 1, max(speeds), min(speeds)))
        print(f"Spider num_proc={num_proc or 1}: best {max(speeds):,.0f} ex/s, worst {min(speeds):,.0f} ex/s")

    lines = [
        f"Gold vs gold on all {len(refs):,} WikiSQL dev questions ({len(set(ds['table_id'])):,} tables), through",
        "`evaluate.load(EXECUTION_ACCURACY)`, cold table cache, "
        f"{args.repeats} repeats; {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores.",
        f"Command: `python -m bench.bench_metric`. Execution accuracy: {result['execution_accuracy']:.1%}.",
        "",
        "| processes | best examples/s | worst examples/s |",
        "|---|---|---|",
        *[f"| {n} | {best:,.0f} | {worst:,.0f} |" for n, best, worst in rows],
        "",
        f"Gold vs gold on all {len(spider_refs):,} Spider dev questions ({len(set(paths))} SQLite databases), Spider "
        f"semantics: execution accuracy {spider_result['execution_accuracy']:.1%}.",
        "",
        "| processes | best examples/s | worst examples/s |",
        "|---|---|---|",
        *[f"| {n} | {best:,.0f} | {worst:,.0f} |" for n, best, worst in spider_rows],
        "",
        "Target: at least 2,000 examples/s on one core (WikiSQL). Spider's queries are heavier (joins, nesting, tables",
        "of up to 20,662 rows): its rate is reported, not targeted.",
    ]
    write_section("Execution-accuracy metric", "\n".join(lines))


if __name__ == "__main__":
    main()
