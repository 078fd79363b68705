"""`delora-viz space DIR`: a folder that is a complete Hugging Face Space running the app (ZeroGPU-ready).

    delora-viz space my-space/ --space-id USER/NAME   # README.md (the card), requirements.txt, app.py, a wheel
    cd my-space && git init && git remote add origin https://huggingface.co/spaces/USER/NAME && ...

The wheel of this package is built into the folder (it is on no package index), so the Space installs
exactly the code that wrote it.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("space", help="write a Hugging Face Space folder (card, requirements, app, wheel)")
    p.add_argument("directory", metavar="DIR", help="the Space folder (created; must be empty if it exists)")
    p.add_argument("--title", default=None, help="the Space's title on its card")
    p.add_argument("--hardware", default=None, help="suggested_hardware on the card (default: zero-a10g, i.e. ZeroGPU)")
    p.add_argument(
        "--space-id",
        default=None,
        metavar="USER/NAME",
        help="the Space's id: requirements.txt then installs the wheel from the Space repository at build time "
        "(without it, app.py installs the wheel beside it on first start)",
    )
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from ..app.space import DEFAULT_HARDWARE, DEFAULT_TITLE, write_space

    files = write_space(
        Path(args.directory),
        title=args.title or DEFAULT_TITLE,
        hardware=args.hardware or DEFAULT_HARDWARE,
        space_id=args.space_id,
        force=args.force,
    )
    for path in files:
        print(path)
    return 0
