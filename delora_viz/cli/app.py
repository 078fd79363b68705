"""`delora-viz app`: the Gradio app, from an install (the same flags as `python app.py` in a clone).

delora-viz app                                   # http://127.0.0.1:7860
delora-viz app --host 0.0.0.0 --auth ada:secret --limit-steps 200
delora-viz app --devices cuda:0,cuda:1           # one run per GPU at a time, each in its own process
"""

from __future__ import annotations


def add_parser(sub):
    from ..app.flags import add_arguments

    p = sub.add_parser("app", help="the app in the browser: LoRA, DoRA and DeLoRA trained and plotted live")
    add_arguments(p)
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from ..app.serve import run as serve

    return serve(args)
