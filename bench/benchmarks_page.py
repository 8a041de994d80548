"""Write one benchmark's section into docs/benchmarks.md, replacing that section's previous figures."""

import datetime
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nWritten by the scripts in `bench/`; each section is replaced when its script runs again.\n"


def write_section(title: str, body: str, path: Path = BENCHMARKS) -> None:
    text = path.read_text() if path.exists() else HEADER
    stamp = datetime.date.today().isoformat()
    section = f"## {title}\n\n_Measured {stamp}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
