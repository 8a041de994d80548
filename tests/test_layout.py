"""The shape of the package, checked by tools rather than by a reviewer (docs/architecture.md).

- the layer contract (import-linter, configured in pyproject.toml) holds, and it does fail when broken;
- no module imports another module's private name;
- nothing directly in `t2s/` shadows an importable module (running `t2s/sft.py` by path puts `t2s/` first on
  `sys.path`, so a `t2s/evaluate.py` would hide the `evaluate` package from every library);
- every relative link in the README, `docs/` and `recipes/` resolves.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint_imports(cwd, pythonpath=None):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_layer_contract_holds():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("data/common.py", "from t2s.sft import cli", "layered"),  # library code importing a command
        ("execution/sandbox.py", "from t2s.data.prompt import QUESTION_MARKER", "layered"),  # a lower stage, higher
        ("decoding/settings.py", "from t2s.decoding.generation import generate_sql", "cycles"),  # a cycle
    ],
)
def test_layer_contract_fails_when_broken(tmp_path, module, bad_import, contract):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "t2s", copy / "t2s", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "t2s" / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    out = _lint_imports(copy, pythonpath=copy)
    assert out.returncode != 0, out.stdout[-3000:]
    broken = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), out.stdout[-3000:]


def _python_files():
    return [p for d in ("t2s", "bench", "tests") for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts]


def test_no_module_imports_another_modules_private_name():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("t2s"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import {', '.join(private)}")
    assert not offenders, offenders


def test_nothing_in_the_package_folder_shadows_an_importable_module():
    names = sorted(
        p.stem if p.suffix == ".py" else p.name
        for p in (ROOT / "t2s").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    )
    assert "sft" in names and "data" in names
    probe = (
        "import importlib.util, sys; sys.path = [p for p in sys.path if p and not p.endswith('/t2s')]; "
        "print([n for n in sys.argv[1:] if importlib.util.find_spec(n) is not None])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *names], cwd="/", capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", (
        f"these names in t2s/ hide installed modules when a script runs by path: {out.stdout}"
    )


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings, as GitHub makes them (lower case, punctuation dropped, blanks to
    hyphens)."""
    found = set()
    for line in page.read_text().splitlines():
        heading = re.match(r"#+ (.*)", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def test_relative_links_resolve():
    """Every relative link names a file that exists and, into a Markdown page, a heading it has."""
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "recipes").rglob("*.md")]
    pages += [ROOT / "t2s" / "metrics" / "execution_accuracy" / "README.md", ROOT / "results" / "README.md"]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # links in code blocks are code
        for target in _LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = page.parent / path if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.relative_to(ROOT)} → {target} (no such heading)")
    assert len(pages) >= 5
    assert not broken, broken


IMPORT_PROBE = r"""
import ctypes, json, logging, pkgutil, importlib, sys, warnings
# third-party libraries may set filters of their own when imported: imported first, they are not counted
import torch, transformers, datasets, peft, trl, evaluate, sqlglot, rich, accelerate  # noqa

opened = []
class Spy(ctypes.CDLL):
    def __init__(self, name, *args, **kwargs):
        opened.append(str(name))
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = Spy

def loggers():
    return {n: list(l.filters) for n, l in logging.Logger.manager.loggerDict.items() if isinstance(l, logging.Logger)}

filters, before = list(warnings.filters), loggers()
import t2s
names = [m.name for m in pkgutil.walk_packages(t2s.__path__, "t2s.") if not m.name.startswith("t2s.metrics.execution_accuracy.app")]
for name in names:
    importlib.import_module(name)
after = loggers()
print(json.dumps({
    "modules": len(names),
    "warning_filters_added": [str(f) for f in warnings.filters if f not in filters],
    "logger_filters_added": sorted(n for n, f in after.items() if f and f != before.get(n)),
    "libraries_opened": opened,
}))
"""


def test_importing_t2s_changes_nothing_in_the_host_process():
    """Importing every t2s module (commands included) adds no warning filter, no logging filter, and opens no C
    library (the allocator choice is made by a command when it starts, `t2s.runtime.prepare_process`), even with
    T2S_MALLOC=mmap set."""
    env = {**os.environ, "T2S_MALLOC": "mmap", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["modules"] > 80
    assert seen == {**seen, "warning_filters_added": [], "logger_filters_added": [], "libraries_opened": []}


def test_a_command_prepares_its_process_when_it_starts():
    """What importing must not do, starting a command does: the library warnings and the bitsandbytes message are
    filtered once `run_command` runs a command's main."""
    probe = (
        "import logging, warnings; from t2s.runtime import run_command, LIBRARY_DEPRECATIONS\n"
        "run_command(lambda argv: None, [])\n"
        "assert logging.getLogger('bitsandbytes.backends.cpu.ops').filters\n"
        "messages = [str(f[1].pattern) for f in warnings.filters if f[1] is not None]\n"
        "assert all(any(m in p for p in messages) for m in LIBRARY_DEPRECATIONS), messages\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_no_library_module_shares_a_commands_name():
    """`t2s/export.py` the command and `t2s/publish/export.py` the library module read as one thing; they are not."""
    commands = {p.stem for p in (ROOT / "t2s").glob("*.py")} - {"__init__"}
    space = (
        ROOT / "t2s" / "metrics" / "execution_accuracy" / "app.py"
    )  # the metric's Hub Space entry: named by `evaluate`
    clashes = [str(p.relative_to(ROOT)) for p in (ROOT / "t2s").glob("*/**/*.py") if p.stem in commands and p != space]
    assert not clashes, clashes
