"""What the server engines' sandbox costs per query: DuckDB in its query process against DuckDB in the caller's
process, and the gate of each dialect.

    python -m bench.bench_engine_overhead [--spider ../shared/spider] [--repeat 3]

Spider dev's gold queries on its `concert_singer`, `pets_1`, `car_1` and `world_1` databases, transpiled to DuckDB as
`bench_engines` does, each run `--repeat` times:

- in process: DuckDB's own connection (read-only, locked configuration), the query read by the gate, run with a
  timer that calls `interrupt()`, rows fetched under the caps (the engine as it was before its query process);
- query process: `DuckDBEngine.run`, the gate and then the query process (`duckdb_worker.py`), its start included
  in the first query and reported apart;
- the gate alone for each dialect (PostgreSQL through pglast, DuckDB through its own parser, MySQL through sqlglot
  with its round-trip proof), on the same queries transpiled to each.

Prints a Markdown table (milliseconds per query, medians and means).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2s.data import load_spider  # noqa: E402
from t2s.data.copy_db import copy_sqlite, transpile  # noqa: E402
from t2s.execution.engines import open_engine  # noqa: E402
from t2s.execution.engines.duckdb import LOCKED_CONFIG  # noqa: E402
from t2s.execution.engines.gate import GateError, check_query  # noqa: E402
from t2s.execution.rows import capped_rows  # noqa: E402

DATABASES = ("concert_singer", "pets_1", "car_1", "world_1")


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f} / {statistics.fmean(samples) * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spider", default=str(ROOT.parent / "shared" / "spider"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="t2s-bench-overhead-"))
    ds = [ex for ex in load_spider(args.spider, "dev") if ex["db_id"] in DATABASES]
    by_db: dict[str, list[str]] = {}
    for ex in ds:
        by_db.setdefault(ex["db_id"], []).append(ex["gold_sql"])
    in_process, child, starts, gates = [], [], [], {"postgres": [], "duckdb": [], "mysql": []}
    for db_id, golds in by_db.items():
        source = Path(args.spider) / "database" / db_id / f"{db_id}.sqlite"
        target = work / f"{db_id}.duckdb"
        copy_sqlite(source, str(target))
        queries = []
        for gold in golds:
            try:
                queries.append(transpile(gold, "duckdb"))
            except Exception:  # noqa: BLE001 - sqlglot cannot transpile it: not timed
                continue
        conn = duckdb.connect(str(target), read_only=True, config=dict(LOCKED_CONFIG))
        tables = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for _ in range(args.repeat):
            for sql in queries:
                started = time.perf_counter()
                try:
                    text = check_query(sql, "duckdb", tables, "main")
                    timer = threading.Timer(2.0, conn.interrupt)
                    timer.start()
                    try:
                        capped_rows(conn.execute(text).fetchmany, 100_000)
                    finally:
                        timer.cancel()
                except (GateError, duckdb.Error):
                    pass
                in_process.append(time.perf_counter() - started)
        conn.close()
        with open_engine(str(target)) as engine:
            engine.catalogue()
            started = time.perf_counter()
            engine.run("SELECT 1")
            starts.append(time.perf_counter() - started)
            for _ in range(args.repeat):
                for sql in queries:
                    started = time.perf_counter()
                    engine.run(sql)
                    child.append(time.perf_counter() - started)
        for dialect in gates:
            for gold in golds:
                try:
                    sql = transpile(gold, dialect)
                except Exception:  # noqa: BLE001
                    continue
                started = time.perf_counter()
                with contextlib.suppress(GateError):
                    check_query(sql, dialect, tables, "main" if dialect == "duckdb" else "public")
                gates[dialect].append(time.perf_counter() - started)
    print(f"Spider dev gold queries on {', '.join(DATABASES)} ({len(ds)} questions, {args.repeat} runs each), "
          "milliseconds per query, median / mean:\n")  # fmt: skip
    print("| what | ms per query |\n|---|---|")
    print(f"| DuckDB in the caller's process (gate, interrupt timer, capped fetch) | {_ms(in_process)} |")
    print(f"| DuckDB in its query process (`DuckDBEngine.run`) | {_ms(child)} |")
    print(f"| the query process's start (first query of an engine) | {_ms(starts)} |")
    for dialect, samples in gates.items():
        print(f"| the gate alone, {dialect} | {_ms(samples)} |")


if __name__ == "__main__":
    main()
