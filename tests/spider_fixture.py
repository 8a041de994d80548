"""A small Spider-layout dataset built in-process: two SQLite databases with keys, tables.json, dev/train questions.

Built from SQL here rather than committed as binary files, so a reader sees exactly what the databases hold.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCHOOL = """
CREATE TABLE student (stuid INTEGER PRIMARY KEY, name TEXT, age INTEGER, city TEXT);
CREATE TABLE course (cid INTEGER PRIMARY KEY, title TEXT, credits REAL);
CREATE TABLE "enrolled in" (stuid INTEGER, cid INTEGER, grade TEXT,
    FOREIGN KEY (stuid) REFERENCES student(stuid), FOREIGN KEY (cid) REFERENCES course(cid));
INSERT INTO student VALUES (1, 'Ann', 20, 'Paris'), (2, 'bob', 22, 'Rome'), (3, 'Cy', 22, 'Paris'),
    (4, 'Dee', 19, NULL);
INSERT INTO course VALUES (10, 'Math', 3.0), (11, 'Art', 2.5), (12, 'Law', 3);
INSERT INTO "enrolled in" VALUES (1, 10, 'A'), (1, 11, 'B'), (2, 10, 'B'), (3, 12, 'A'), (3, 10, 'C');
"""
SHOP = """
CREATE TABLE product (id INTEGER PRIMARY KEY, name VARCHAR(20), price NUMERIC);
CREATE TABLE "order" (oid INTEGER PRIMARY KEY, product_id INTEGER REFERENCES product(id), qty INT, day DATE);
INSERT INTO product VALUES (1, 'pen', 1.5), (2, 'ink', 3), (3, 'pad', 2);
INSERT INTO "order" VALUES (1, 1, 10, '2020-01-01'), (2, 1, 5, '2020-01-02'), (3, 3, 1, '2020-02-01');
"""
TABLES = [
    {
        "db_id": "school",
        "table_names_original": ["student", "course", "enrolled in"],
        "table_names": ["student", "course", "enrolled in"],
        "column_names_original": [
            [-1, "*"],
            [0, "stuid"],
            [0, "name"],
            [0, "age"],
            [0, "city"],
            [1, "cid"],
            [1, "title"],
            [1, "credits"],
            [2, "stuid"],
            [2, "cid"],
            [2, "grade"],
        ],
        "column_names": [
            [-1, "*"],
            [0, "stuid"],
            [0, "name"],
            [0, "age"],
            [0, "city"],
            [1, "cid"],
            [1, "title"],
            [1, "credits"],
            [2, "stuid"],
            [2, "cid"],
            [2, "grade"],
        ],
        "column_types": [
            "text",
            "number",
            "text",
            "number",
            "text",
            "number",
            "text",
            "number",
            "number",
            "number",
            "text",
        ],
        "primary_keys": [1, 5],
        "foreign_keys": [[8, 1], [9, 5]],
    },
    {
        "db_id": "shop",
        "table_names_original": ["product", "order"],
        "table_names": ["product", "order"],
        "column_names_original": [
            [-1, "*"],
            [0, "id"],
            [0, "name"],
            [0, "price"],
            [1, "oid"],
            [1, "product_id"],
            [1, "qty"],
            [1, "day"],
        ],
        "column_names": [
            [-1, "*"],
            [0, "id"],
            [0, "name"],
            [0, "price"],
            [1, "oid"],
            [1, "product id"],
            [1, "qty"],
            [1, "day"],
        ],
        "column_types": ["text", "number", "text", "number", "number", "number", "number", "time"],
        "primary_keys": [1, 4],
        "foreign_keys": [[5, 1]],
    },
]
DEV = [
    ("school", "How many students are there?", "SELECT count(*) FROM student"),
    ("school", "Names of students from Paris.", 'SELECT name FROM student WHERE city  =  "Paris"'),
    (
        "school",
        "Titles of courses Ann takes.",
        'SELECT T3.title FROM student AS T1 JOIN "enrolled in" AS T2 ON T1.stuid  =  T2.stuid JOIN course AS T3 '
        "ON T2.cid  =  T3.cid WHERE T1.name  =  'Ann'",
    ),
    ("school", "Students by age, oldest first.", "SELECT name ,  age FROM student ORDER BY age DESC"),
    ("school", "How many students per city?", "SELECT city ,  count(*) FROM student GROUP BY city"),
    ("shop", "Products never ordered.", 'SELECT name FROM product WHERE id NOT IN (SELECT product_id FROM "order")'),
    ("shop", "Total quantity ordered.", 'SELECT sum(qty) FROM "order"'),
    (
        "shop",
        "Products that cost more than 1 and were ordered.",
        'SELECT name FROM product WHERE price  >  1 INTERSECT SELECT T1.name FROM product AS T1 JOIN "order" AS T2 '
        "ON T1.id  =  T2.product_id",
    ),
]
TRAIN = [
    ("school", "List all course titles.", "SELECT title FROM course"),
    ("school", "Oldest student?", "SELECT name FROM student ORDER BY age DESC LIMIT 1"),
    ("shop", "Price of ink?", "SELECT price FROM product WHERE name  =  'ink'"),
    ("shop", "Orders per product.", 'SELECT product_id ,  count(*) FROM "order" GROUP BY product_id'),
]


def _questions(rows):
    return [{"db_id": d, "question": q, "query": s} for d, s, q in ((d, s, q) for d, q, s in rows)]


def build_spider_layout(root: Path, *, test_split: bool = False) -> Path:
    """Spider's release layout under `root` (dev, train and, optionally, the 2023 test files)."""
    root.mkdir(parents=True, exist_ok=True)
    folders = ["database"] + (["test_database"] if test_split else [])
    for folder in folders:
        for db_id, script in (("school", SCHOOL), ("shop", SHOP)):
            path = root / folder / db_id / f"{db_id}.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                conn = sqlite3.connect(path)
                conn.executescript(script)
                conn.commit()
                conn.close()
    (root / "tables.json").write_text(json.dumps(TABLES, indent=1))
    (root / "dev.json").write_text(json.dumps(_questions(DEV), indent=1))
    (root / "train_spider.json").write_text(json.dumps(_questions(TRAIN), indent=1))
    if test_split:
        (root / "test_tables.json").write_text(json.dumps(TABLES, indent=1))
        (root / "test.json").write_text(json.dumps(_questions(DEV[:3]), indent=1))
    return root
