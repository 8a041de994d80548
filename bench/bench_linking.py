"""Recall of schema and value linking on Spider: does the pruned schema keep every table the gold query uses?

    python -m bench.bench_linking [--split dev] [--budgets 1 2 3 4 5]

For each question (`t2s.data.linking`): the database's text values indexed once, the question linked to tables,
columns and values, the schema pruned to the top-k tables plus their foreign-key paths. Reported per budget k: the
share of questions whose every gold table is kept (the prompt can still be answered), the share of gold column names
kept, the tables kept on average, and the prompt's length in SmolLM2 tokens against the full schema's; and the share
of the gold queries' string literals that value linking shows in the prompt. Writes the "Schema and value linking:
recall" section of docs/experiments.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmarks_page import write_section  # noqa: E402

DOC = ROOT / "docs" / "experiments.md"


def gold_names(sql: str) -> tuple[set[str], set[str], set[str]]:
    """Tables, column names and string literals of a gold query (sqlglot, SQLite dialect)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # noqa: BLE001 - a gold query sqlglot cannot read is left out of the column/value counts
        return set(), set(), set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}
    columns = {c.name.lower() for c in tree.find_all(exp.Column) if c.name and c.name != "*"}
    literals = {str(s.this) for s in tree.find_all(exp.Literal) if s.is_string and s.this.strip()}
    # Spider's gold writes string values in double quotes, which sqlglot reads as columns: those are literals too.
    quoted = {c.name for c in tree.find_all(exp.Column) if c.this.quoted}
    return tables, columns - {q.lower() for q in quoted}, literals | quoted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--budgets", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from t2s.data import load_spider
    from t2s.data.linking import link, prune_schema, read_text_values, value_index
    from t2s.data.prompt import render_schema
    from t2s.data.schema import from_sqlite
    from t2s.decoding.embedded import DEFAULT_EMBEDDED, ensure_embedded_model
    from t2s.execution.engines import database_for

    tokenizer = AutoTokenizer.from_pretrained(ensure_embedded_model(DEFAULT_EMBEDDED))
    ds = load_spider(None, args.split, require_database=False)
    started = time.perf_counter()
    schemas, indexes = {}, {}
    budgets = [*args.budgets, 0]
    kept_all = {k: 0 for k in budgets}
    column_share = {k: [] for k in budgets}
    tables_kept = {k: [] for k in budgets}
    tokens = {k: [] for k in budgets}
    literal_found = literal_total = n = 0
    for ex in ds:
        if not ex["db_path"]:
            continue
        path = ex["db_path"]
        if path not in schemas:
            schemas[path] = from_sqlite(path, ex["db_id"])
            engine = database_for(path)
            indexes[path] = value_index(read_text_values(lambda sql, e=engine: e.run(sql).rows, schemas[path]))
        schema = schemas[path]
        gold_tables, gold_columns, literals = gold_names(ex["gold_sql"])
        found = link(schema, ex["question"], indexes[path])
        shown = {v.lower() for vs in found.values.values() for v in vs}
        literal_total += len(literals)
        literal_found += sum(lit.lower() in shown for lit in literals)
        n += 1
        for k in budgets:
            pruned = prune_schema(schema, found, k)
            names = {t.lower() for t in pruned.table_names()}
            columns = {c.lower() for c in pruned.column_names()}
            kept_all[k] += gold_tables <= names
            column_share[k].append(len(gold_columns & columns) / len(gold_columns) if gold_columns else 1.0)
            tables_kept[k].append(len(names))
            tokens[k].append(len(tokenizer(render_schema(pruned))["input_ids"]))
    seconds = time.perf_counter() - started
    full = statistics.mean(tokens[0])
    lines = [
        f"Spider {args.split}, {n:,} questions whose database is present, {len(schemas)} databases; lexical linking "
        f"(`t2s/data/linking.py`: names, words of names, indexed text values); command: `python -m bench.bench_linking "
        f"--split {args.split}` ({seconds:.0f} s). Schema tokens: the `CREATE TABLE` text in SmolLM2's tokenizer.",
        "",
        "| tables kept (top k + foreign-key paths) | every gold table kept | gold column names kept | tables on "
        "average | schema tokens (mean) | saved |",
        "|---|---|---|---|---|---|",
    ]
    for k in budgets:
        label = "all (no pruning)" if k == 0 else f"k = {k}"
        mean_tokens = statistics.mean(tokens[k])
        lines.append(
            f"| {label} | {kept_all[k] / n:.1%} | {statistics.mean(column_share[k]):.1%} | "
            f"{statistics.mean(tables_kept[k]):.1f} | {mean_tokens:.0f} | {1 - mean_tokens / full:.0%} |"
        )
    lines += [
        "",
        f"Value linking: {literal_found:,} of the gold queries' {literal_total:,} string literals "
        f"({literal_found / max(literal_total, 1):.1%}) are among the stored values it would show in the prompt.",
        "Prompts use it with `link_values: true` and `prune_tables: k` (recipes, `t2s evaluate`; off by default). Its "
        "effect on accuracy needs a model trained with the same prompts and is not measured yet.",
    ]
    write_section(f"Schema and value linking: recall on Spider {args.split}", "\n".join(lines), path=DOC)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
