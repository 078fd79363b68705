"""Take docs/app.png: the finished default comparison, from a real run, in headless Chromium.

    python docs/make_screenshot.py [--steps 40] [--out docs/app.png]

Starts `python app.py` on a free port, presses Train with the app's defaults (embedded MiniLM + BBC News,
LoRA / DoRA / DeLoRA), waits until the comparison has finished and its downloads are written, and saves a
screenshot of the page. Prints the time from the press to the first live point and to the end. Uses
Debian's /usr/bin/chromium through Playwright (never `playwright install`).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(port: int, log_path: Path) -> subprocess.Popen:
    env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit(f"the app did not start; see {log_path}") from None
            time.sleep(0.5)


def _status_matches(page, pattern: str, timeout_s: float) -> None:
    page.wait_for_function(
        f"() => /{pattern}/.test(document.querySelector('#status').innerText)", timeout=timeout_s * 1000
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps (default: the app's default)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    parser.add_argument("--timeout-s", type=float, default=1800)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = _free_port()
    proc = _start_app(port, Path(tempfile.gettempdir()) / "delora-viz-screenshot.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#train")
            if args.steps:
                box = page.locator("#steps input").first
                box.fill(str(args.steps))
                box.press("Tab")
            started = time.monotonic()
            page.click("#train")
            _status_matches(page, "^step \\d+", args.timeout_s)
            first = time.monotonic() - started
            _status_matches(page, "^finished", args.timeout_s)
            page.wait_for_function(
                "() => /delora-viz_adapters/.test(document.querySelector('#downloads').innerText)", timeout=120_000
            )
            page.wait_for_timeout(1500)  # the last redraw
            total = time.monotonic() - started
            status = page.locator("#status").inner_text()
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"first live point after {first:.1f} s; finished after {total:.1f} s\nstatus: {status}\nsaved {args.out}")


if __name__ == "__main__":
    main()
