"""Session churn probe: n browser sessions (gradio_client) each train once and leave; what is left of them?

    PYTHONPATH=<checkout> python tests/service_probe.py      # {'ui_sessions': .., 'models': .., ...}
    PYTHONPATH=<checkout> python tests/service_probe.py --rss [--runs 10] [--steps 10] [--no-trim]

--rss: the server's resident memory over n default runs (MiniLM, BBC News, LoRA/DoRA/DeLoRA), each from
a fresh client whose tab then closes; the server is a subprocess (`python -m delora_viz.app`), its RSS
read from /proc after each run's session was freed. --no-trim measures it without memory.py's remedies
(DELORA_VIZ_MALLOC_TRIM=0). Takes minutes: a probe, not a test.

It uses only what every version of the app has (build_demo, the /compare endpoint), so the same probe
measures an older checkout for a before/after comparison; test_app_service.py runs it as a test.
"""

from __future__ import annotations

import gc
import glob
import os
import socket
import sys
import tempfile
import time
from pathlib import Path


def count_models() -> int:
    """Live transformers models in this process."""
    from transformers import PreTrainedModel

    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, PreTrainedModel))


def churn_sessions(url: str, values: list, n: int = 10, wait_s: float = 60.0) -> dict:
    """n clients each train once and close; then count what is left of them in this process."""
    from gradio_client import Client

    # the app's folders go to tempfile's directory: a private one here, so other processes' folders don't count
    # (Gradio's own cache stays where the server started it)
    os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "gradio"))
    saved, tempfile.tempdir = tempfile.tempdir, tempfile.mkdtemp(prefix="churn-")
    try:
        folders = lambda: glob.glob(os.path.join(tempfile.gettempdir(), "delora-viz-*"))  # noqa: E731
        for _ in range(n):
            client = Client(url, verbose=False)
            status = client.predict(["lora"], *values, api_name="/compare")[0]
            assert status.startswith("finished"), status
            client.close()  # the heartbeat ends: Gradio runs demo.unload for this session (within ~15 s)
        deadline = time.time() + wait_s
        while time.time() < deadline and (folders() or count_models()):
            time.sleep(1.0)
        gc.collect()
        rss_mb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
        return {
            "ui_sessions": sum(1 for o in gc.get_objects() if type(o).__name__ == "UiSession"),
            "models": count_models(),
            "temp_dirs": len(folders()),
            "rss_mb": round(rss_mb),
        }
    finally:
        tempfile.tempdir = saved


def launch_demo():
    from delora_viz.app.layout import build_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    return demo


def server_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def rss_over_runs(runs: int = 10, steps: int | None = None, trim: bool = True, wait_s: float = 60.0) -> dict:
    """Start the app in a subprocess; `runs` default comparisons, each from its own client that then closes;
    the server's RSS at start and after each run once the session's folder is gone (its session freed)."""
    import subprocess

    from gradio_client import Client

    from delora_viz.app.settings import DEFAULTS, SETTINGS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="rss-probe-")
    env = os.environ | {"TMPDIR": tmp, "GRADIO_TEMP_DIR": os.path.join(tmp, "gradio"), "HF_HUB_OFFLINE": "1"}
    env["DELORA_VIZ_MALLOC_TRIM"] = "1" if trim else "0"
    server = subprocess.Popen(
        [sys.executable, "-m", "delora_viz.app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    values = DEFAULTS | ({"max_steps": steps, "eval_every": steps} if steps else {})
    out = {"trim": trim, "steps": values["max_steps"], "rss_mb": [], "seconds": []}
    try:
        for _ in range(240):
            try:
                Client(f"http://127.0.0.1:{port}/", verbose=False).close()
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        out["start_mb"] = round(server_rss_mb(server.pid))
        for _ in range(runs):
            started = time.monotonic()
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            status = client.predict(["lora", "dora", "delora"], *[values[k] for k in SETTINGS], api_name="/compare")[0]
            assert status.startswith("finished"), status
            client.close()  # the heartbeat stops: Gradio runs demo.unload, the session is freed
            out["seconds"].append(round(time.monotonic() - started))
            deadline = time.time() + wait_s
            while time.time() < deadline and glob.glob(os.path.join(tmp, "delora-viz-*")):
                time.sleep(1.0)
            time.sleep(2.0)
            out["rss_mb"].append(round(server_rss_mb(server.pid)))
            print(out, file=sys.stderr, flush=True)
        out["growth_after_first_mb"] = out["rss_mb"][-1] - out["rss_mb"][0]
        return out
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    if "--rss" in sys.argv:
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--rss", action="store_true")
        parser.add_argument("--runs", type=int, default=10)
        parser.add_argument("--steps", type=int, default=None, help="default: the app's (40)")
        parser.add_argument("--no-trim", action="store_true")
        args = parser.parse_args()
        print(rss_over_runs(args.runs, args.steps, trim=not args.no_trim))
        sys.exit(0)
    sys.path.insert(0, str(Path(__file__).parent))
    from builders import build_tiny_bert_classifier, write_text_files

    from delora_viz.app.settings import DEFAULTS, SETTINGS

    root = Path(tempfile.mkdtemp(prefix="probe-"))
    model, data = build_tiny_bert_classifier(root / "bert", num_labels=3), write_text_files(root / "data")["csv"]
    s = DEFAULTS | dict(
        model_path=model, data=data, max_steps=2, batch_size=4, max_length=16, eval_every=2, eval_examples=8
    )
    demo = launch_demo()
    n = int(os.environ.get("SESSIONS", 10))
    print(churn_sessions(demo.local_url, [s[k] for k in SETTINGS], n=n, wait_s=float(os.environ.get("WAIT_S", 45))))
    demo.close()
