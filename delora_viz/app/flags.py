"""The app's command-line flags, shared by `python app.py`, `python -m delora_viz.app` and `delora-viz app`.

No Gradio in here: `delora-viz --help` builds every subcommand's parser and must stay light.
"""

from __future__ import annotations

import argparse

from . import settings as app_settings
from .policy import Policy

LIMITS = {  # --limit-X flags -> Policy.limit_X: the server's caps on what a visitor may ask for
    "model_mb": "largest Hub model download (MB)",
    "params_m": "largest model to train (millions of parameters)",
    "hub_rows": "rows streamed from a Hub dataset",
    "rank": "largest rank r",
    "steps": "most steps per run",
    "batch": "largest batch size",
    "length": "longest max length (tokens)",
}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The app's flags (shared by `python app.py`, `python -m delora_viz.app` and `delora-viz app`)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes the app on the network)"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--auth", help="USER:PASS, or a file with one USER:PASS per line (asked by the browser)")
    parser.add_argument(
        "--allow-local-paths",
        action="store_true",
        help="served beyond 127.0.0.1: still let visitors name model/data folders on this server",
    )
    hub = parser.add_mutually_exclusive_group()
    hub.add_argument("--allow-hub", dest="hub", action="store_true", default=True, help="download Hub ids (capped)")
    hub.add_argument("--no-hub", dest="hub", action="store_false", help="served: presets and uploads only")
    parser.add_argument(
        "--devices",
        default=None,
        metavar="LIST",
        help="training slots, one run per device at a time, e.g. cuda:0,cuda:1 or cpu,cpu (default: every "
        "visible GPU when there are several, each in its own worker process; else one run at a time in this process)",
    )
    limits = parser.add_argument_group("limits", "the most a visitor may ask of this server")
    limits.add_argument(
        "--limit-upload-mb",
        type=float,
        default=app_settings.MAX_UPLOAD_MB,
        metavar="MB",
        help="largest dataset upload (MB)",
    )
    caps = Policy()
    for name, help_ in LIMITS.items():
        default = getattr(caps, f"limit_{name}")
        limits.add_argument(
            f"--limit-{name.replace('_', '-')}",
            dest=f"limit_{name}",
            type=type(default),
            default=default,
            metavar="N",
            help=help_,
        )
    return parser
