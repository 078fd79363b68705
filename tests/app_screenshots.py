"""The docs' screenshots of the app (docs/img/app_*.png), in headless Chromium at 1440 px.

    python app.py --port 7860 &                      # the embedded MiniLM + BBC News, CPU is fine
    python tests/app_screenshots.py http://127.0.0.1:7860/ [preset[&param=value...] ...]

For each preset: open its link (?preset=NAME), press Train, wait for the run to finish, and save the
lesson, the plots and the table. Then the link round trip: open a link, check that the fields show it,
press "Link to this setup" and check that the page writes the same link. Each PNG is reduced to a
256-colour palette to stay small (< 300 KB).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).parents[1]
IMG = ROOT / "docs" / "img"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
# a link in the form the page writes (only what differs from the defaults, in the order the app writes it)
ROUND_TRIP = "?methods=lora,delora-paper&max_steps=5&lr_multipliers=0.5,5&rank=3&delora_lambda=8&tab=sweep"


def save(page, path: Path, top: str, bottom: str) -> Path:
    """Screenshot from the top of `top` to the bottom of `bottom` (full width), as a palette PNG."""
    a, b = page.locator(top).first.bounding_box(), page.locator(bottom).first.bounding_box()
    y0 = max(0, a["y"] - 12)
    page.screenshot(
        path=str(path), clip={"x": 0, "y": y0, "width": 1440, "height": b["y"] + b["height"] + 12 - y0}, full_page=True
    )
    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def run_preset(page, url: str, name: str, timeout_s: float = 1800) -> str:
    """`name`: a preset, optionally with more parameters after it ("rank-1-tight-bound&max_steps=20")."""
    page.goto(f"{url}?preset={name}")
    name = name.split("&")[0]
    page.wait_for_selector("#train")
    page.wait_for_function("() => /This lesson's link/.test(document.querySelector('#lesson').innerText)")
    page.click("#train")
    page.wait_for_function(
        "() => /^(finished|stopped|⚠️)/.test(document.querySelector('#status').innerText.trim())",
        timeout=timeout_s * 1000,
    )
    page.wait_for_function(
        "() => /delora-viz_adapters/.test(document.querySelector('#downloads').innerText)", timeout=120_000
    )
    page.wait_for_timeout(2500)  # the last redraw of the live plots
    status = page.locator("#status").inner_text()
    save(page, IMG / f"app_{name.replace('-', '_')}.png", "#lesson", "#results")
    return status


def round_trip(page, url: str) -> tuple[str, str]:
    page.goto(url + ROUND_TRIP)
    page.wait_for_selector("#sweep-run")
    page.wait_for_function("() => document.querySelector('#rank input')?.value === '3'")
    assert page.get_by_role("tab", name="Learning-rate sweep").get_attribute("aria-selected") == "true"
    page.click("#link-button")
    page.wait_for_function("() => document.querySelector('#link textarea, #link input')?.value.startsWith('http')")
    written = page.locator("#link textarea, #link input").first.input_value()
    save(page, IMG / "app_link_round_trip.png", "#lessons", "#sweep-status")
    return url + ROUND_TRIP, written


def main(argv: list[str]) -> int:
    from delora_viz.app.links import PRESETS

    url = argv[0] if argv else "http://127.0.0.1:7860/"
    names = argv[1:] or list(PRESETS)
    IMG.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        asked, written = round_trip(page, url)
        print(f"round trip: {asked} -> {written} ({'same' if asked == written else 'DIFFERENT'})")
        for name in names:
            started = time.monotonic()
            status = run_preset(page, url, name)
            print(f"{name}: {status} ({time.monotonic() - started:.0f} s)")
        browser.close()
    for path in sorted(IMG.glob("app_*.png")):
        print(path.relative_to(ROOT), f"{path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
