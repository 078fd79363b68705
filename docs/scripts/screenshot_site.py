"""Screenshot pages of the built site in headless Chromium, to look at them (not committed).

    python docs/scripts/screenshot_site.py [--html docs/_build/html] [--out /tmp/site_shots] [pages ...]

Default pages: the home page and every tutorial. Each is saved as a full-page PNG; the script prints, per
page, how many images it shows and how many of them loaded, so a missing figure is seen without looking.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="pages relative to the site root (default: home + tutorials)")
    parser.add_argument("--html", default="docs/_build/html")
    parser.add_argument("--out", default="/tmp/site_shots")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument(
        "--npm-modules",
        help="a node_modules folder holding mathjax@4 (npm install --prefix DIR mathjax@4): the page's MathJax is"
        " served from it, so formulas render without network",
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    html = Path(args.html).resolve()
    pages = args.pages or ["index.html"] + sorted(
        str(p.relative_to(html)) for p in (html / "tutorials").glob("[0-9][0-9]_*.html")
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        if args.npm_modules:
            modules = Path(args.npm_modules)

            def local(route):  # https://cdn.jsdelivr.net/npm/<package>@<version>/<file> -> node_modules
                path = route.request.url.split("/npm/", 1)[1].split("?")[0]
                parts = path.split("/")
                n = 2 if parts[0].startswith("@") else 1
                name = (
                    "/".join(parts[:n]).rsplit("@", 1)[0]
                    if "@" in "/".join(parts[:n]).lstrip("@")
                    else "/".join(parts[:n])
                )
                file = modules / name / "/".join(parts[n:])
                if file.is_file():
                    route.fulfill(path=str(file))
                else:
                    route.abort()

            page.route("https://cdn.jsdelivr.net/npm/**", local)
        for name in pages:
            page.goto((html / name).as_uri())
            page.wait_for_selector("article")
            if args.npm_modules and page.locator("div.math, span.math").count():
                page.wait_for_selector("mjx-container", timeout=20_000)
                page.wait_for_timeout(1000)  # fonts
            images = page.eval_on_selector_all("article img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
            shot = out / (name.replace("/", "_").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            print(f"{name}: {sum(images)}/{len(images)} images loaded -> {shot}")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
