"""Screenshots of both tabs of the web page for docs/app.md, with a real model and a real evaluation.

    python scripts/app_screenshots.py [--model embedded:smollm2-135m-spider] \
        [--evaluation outputs/smollm2-135m-spider-full-lora-shipped-greedy]

Starts the page on a free local port, drives Debian's Chromium with Playwright (as tests/test_webapp.py does): opens
the shop database, asks a question, opens the evaluation and selects its first wrong answer; writes
docs/app_ask.png and docs/app_evaluation.png.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHOP = ROOT / "tests" / "fixtures" / "own_data" / "database" / "shop" / "shop.sqlite"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2-135m-spider", help="model or adapter (default: shipped)")
    parser.add_argument("--evaluation", default="outputs/smollm2-135m-spider-full-lora-shipped-greedy")
    parser.add_argument("--question", default="How many orders are there for each status?")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from t2s.webapp.ui import build, launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page_app = build(default_model=args.model, default_database=str(SHOP.relative_to(ROOT)))  # run from the root
    launch(page_app, port=port, block=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#open-database", timeout=60_000)  # the database opens as the page loads
            page.wait_for_function(
                "() => document.querySelector('#database-description').innerText.includes('customers')",
                timeout=300_000,
            )
            page.fill("#question textarea", args.question)
            page.click("#ask")
            page.wait_for_function(  # the answer is in and Gradio's progress overlays are gone
                "() => document.querySelector('#sql').innerText.includes('SELECT') && "
                "document.querySelector('#status').innerText.trim() && "
                "!document.body.innerText.includes('processing |')",
                timeout=300_000,
            )
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ROOT / "docs" / "app_ask.png"), full_page=True)
            page.get_by_role("tab", name="Evaluation").click()
            page.fill("#evaluation-folder textarea", str(args.evaluation))  # as given: run from the root
            page.click("#open-evaluation")
            page.wait_for_function(
                "() => document.querySelector('#evaluation-summary').innerText.includes('execution accuracy')",
                timeout=60_000,
            )
            page.locator("#questions [role=row]:has([role=gridcell])").first.locator("[role=gridcell]").nth(1).click()
            page.wait_for_function(
                "() => document.querySelector('#picked').innerText.trim() && "
                "!document.body.innerText.includes('processing |')",
                timeout=60_000,
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ROOT / "docs" / "app_evaluation.png"), full_page=True)
            browser.close()
    finally:
        page_app.close()
    print("Wrote docs/app_ask.png and docs/app_evaluation.png")


if __name__ == "__main__":
    main()
