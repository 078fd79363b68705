"""Launching the app: `delora-viz app [--host H] [--port P] [--share] [--auth USER:PASS] [--devices LIST] ...`
(the same flags as `python app.py` and `python -m delora_viz.app`).

127.0.0.1 by default: the user's own machine, local paths and Hub ids work as typed. Bound beyond loopback
or with --share, the path policy of policy.py applies (uploads, presets and capped Hub ids only, unless
--allow-local-paths), and serving without --auth prints a loud warning.
"""

from __future__ import annotations

import argparse
import logging
import sys

import gradio as gr

from ..errors import DeloraVizError
from . import handlers, memory, runner, workers, zerogpu
from . import settings as app_settings
from .flags import LIMITS, add_arguments
from .layout import CSS, build_demo
from .policy import Policy, parse_auth


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    limit_upload_mb: float = app_settings.MAX_UPLOAD_MB,
    policy: Policy | None = None,
    auth: list[tuple[str, str]] | None = None,
    devices: list[str] | None = None,
    **kwargs,
):
    """demo.launch with the app's settings: local by default, bounded uploads, its CSS, the path policy
    for the host (served beyond loopback: no server paths, capped Hub), sessions reaped when idle.

    Where runs train (runner.py): on ZeroGPU each in a @spaces.GPU call (the platform queues them);
    with `devices` (or several visible GPUs) one worker process per device, one run each at a time;
    else in this process, one at a time."""
    app_settings.MAX_UPLOAD_MB = limit_upload_mb
    memory.tune_allocator()
    place_runs(devices)
    handlers.POLICY = policy or Policy.for_launch(host, share)
    if handlers.POLICY.served and not auth:
        print(WARNING.format(where="with --share" if share else f"on {host}"), file=sys.stderr, flush=True)
    handlers.SESSIONS.start_reaper()
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        max_file_size=f"{limit_upload_mb:g}mb",
        css=CSS,
        show_error=False,
        footer_links=["api", "gradio"],
        **kwargs,
    )


def place_runs(devices: list[str] | None = None) -> None:
    """Where runs train, and how many at once (the app's queue admits that many)."""
    if zerogpu.ACTIVE:  # first: the Space's own process has no GPU to ask torch about
        runner.use(zerogpu.ZeroGpuBackend())
        handlers.QUEUE.slots = zerogpu.CONCURRENCY
        return
    devices = workers.default_devices() if devices is None else devices
    runner.use(workers.DevicePool(devices) if devices else None)
    handlers.QUEUE.slots = len(devices) if devices else 1


WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  delora-viz is served {where} WITHOUT a password: anyone who reaches it can train on this
!!  machine's CPU/GPU. Pass --auth USER:PASS (or --auth FILE with one USER:PASS per line).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(description="delora-viz: compare LoRA, DoRA and DeLoRA live in the browser")
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Launch the app with parsed flags (blocks while it serves)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        auth = parse_auth(args.auth)
        slots = workers.parse_devices(args.devices)
    except (OSError, ValueError) as err:
        if parser is None:
            raise DeloraVizError(str(err)) from None  # the CLI shows it as bad input
        parser.error(str(err))
    policy = Policy.for_launch(
        args.host,
        args.share,
        allow_local_paths=args.allow_local_paths,
        hub=args.hub,
        **{f"limit_{name}": getattr(args, f"limit_{name}") for name in LIMITS},
    )
    launch(
        build_demo(local_paths=policy.local_paths),
        args.host,
        args.port,
        args.share,
        args.limit_upload_mb,
        policy=policy,
        auth=auth,
        devices=slots,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return run(parser.parse_args(argv), parser)
