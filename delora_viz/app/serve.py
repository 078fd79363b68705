"""Launching the app: `python app.py [--host H] [--port P] [--share] [--auth USER:PASS] ...`.

127.0.0.1 by default: the user's own machine, local paths and Hub ids work as typed. Bound beyond loopback
or with --share, the path policy of policy.py applies (uploads, presets and capped Hub ids only, unless
--allow-local-paths), and serving without --auth prints a loud warning.
"""

from __future__ import annotations

import argparse
import logging
import sys

import gradio as gr

from . import handlers
from . import settings as app_settings
from .layout import CSS, build_demo
from .policy import Policy, parse_auth


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    max_upload_mb: float = app_settings.MAX_UPLOAD_MB,
    policy: Policy | None = None,
    auth: list[tuple[str, str]] | None = None,
    **kwargs,
):
    """demo.launch with the app's settings: local by default, bounded uploads, its CSS, the path policy
    for the host (served beyond loopback: no server paths, capped Hub), sessions reaped when idle."""
    app_settings.MAX_UPLOAD_MB = max_upload_mb
    handlers.POLICY = policy or Policy.for_launch(host, share)
    if handlers.POLICY.served and not auth:
        print(WARNING.format(where="with --share" if share else f"on {host}"), file=sys.stderr, flush=True)
    handlers.SESSIONS.start_reaper()
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        max_file_size=f"{max_upload_mb:g}mb",
        css=CSS,
        show_error=False,
        footer_links=["api", "gradio"],
        **kwargs,
    )


WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  delora-viz is served {where} WITHOUT a password: anyone who reaches it can train on this
!!  machine's CPU/GPU. Pass --auth USER:PASS (or --auth FILE with one USER:PASS per line).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="delora-viz: compare LoRA, DoRA and DeLoRA live in the browser")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes the app on the network)"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--max-upload-mb", type=float, default=app_settings.MAX_UPLOAD_MB, help="largest dataset upload"
    )
    parser.add_argument("--auth", help="USER:PASS, or a file with one USER:PASS per line (asked by the browser)")
    parser.add_argument(
        "--allow-local-paths",
        action="store_true",
        help="served beyond 127.0.0.1: still let visitors name model/data folders on this server",
    )
    hub = parser.add_mutually_exclusive_group()
    hub.add_argument("--allow-hub", dest="hub", action="store_true", default=True, help="download Hub ids (capped)")
    hub.add_argument("--no-hub", dest="hub", action="store_false", help="served: presets and uploads only")
    caps = Policy()
    for name, help_ in (
        ("max_model_mb", "largest Hub model download (MB)"),
        ("max_params_m", "largest model to train (millions of parameters)"),
        ("max_hub_rows", "rows streamed from a Hub dataset"),
        ("max_rank", "largest rank r"),
        ("max_steps", "most steps per run"),
        ("max_batch", "largest batch size"),
        ("max_length", "longest max length (tokens)"),
    ):
        default = getattr(caps, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=help_)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        auth = parse_auth(args.auth)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    policy = Policy.for_launch(
        args.host,
        args.share,
        allow_local_paths=args.allow_local_paths,
        hub=args.hub,
        **{k: getattr(args, k) for k in ("max_model_mb", "max_params_m", "max_hub_rows", "max_rank")},
        **{k: getattr(args, k) for k in ("max_steps", "max_batch", "max_length")},
    )
    launch(
        build_demo(local_paths=policy.local_paths),
        args.host,
        args.port,
        args.share,
        args.max_upload_mb,
        policy=policy,
        auth=auth,
    )
