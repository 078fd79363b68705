"""The Gradio app: its handlers in-process, then the launched app through gradio_client.

Everything trains the tiny local BERT (tests/builders.py) for a few steps, so a comparison takes seconds.
"""

import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from delora_viz.app import handlers, layout, runner, serve
from delora_viz.app import settings as app_settings
from delora_viz.app.live import LiveView
from delora_viz.app.session import UiSession
from delora_viz.app.settings import DEFAULTS, SETTINGS, make_config, parse_multipliers
from delora_viz.training.loop import RunResult

METHODS = ["lora", "dora", "delora"]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")  # gr.Warning outside a request


def _values(tiny_bert_dir, text_files, **overrides):
    s = (
        DEFAULTS
        | dict(
            model_path=tiny_bert_dir,
            data=text_files["csv"],
            max_steps=3,
            batch_size=4,
            max_length=16,
            eval_every=3,
            eval_examples=8,
            device="cpu",
        )
        | overrides
    )
    return [s[k] for k in SETTINGS]


def _plot_values(out):
    """The four LinePlot updates of one yielded tuple (None where the plots were not updated)."""
    return [o.get("value") if isinstance(o, dict) else None for o in out[2:7]]


@pytest.fixture(scope="module")
def run(tiny_bert_dir, text_files):
    """One comparison in session `a`, while session `b` has its stop flag set: b must not stop a."""
    a, b = UiSession(), UiSession()
    b.stop.set()
    outputs = list(handlers.compare(a, METHODS, *_values(tiny_bert_dir, text_files)))
    yield a, b, outputs
    a.close()
    b.close()


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_compare_streams_status_and_live_frames(run):
    _, _, outputs = run
    statuses = [out[0] for out in outputs]
    assert statuses[0].startswith("loading")
    steps = [s for s in statuses if s.startswith("step ")]
    assert (
        steps and steps[0].startswith("step 1/3") and "loss" in steps[0] and "steps/s" in steps[0] and "cpu" in steps[0]
    )
    assert statuses[-1].startswith("finished 3/3 steps") and "accuracy" in statuses[-1]
    live = [_plot_values(out) for out in outputs if isinstance(out[2], dict) and "value" in out[2]]
    assert live, "no live plot update was yielded"
    for frames in live:
        for frame in frames:
            assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["step", "value", "series"]
    norm, angle, lam, loss, evals = live[-1]
    assert {"lora ||dW||", "dora ||dW||", "delora ||dW||", "delora bound"} <= set(norm["series"])
    assert set(lam["series"]) == {"delora"}  # only DeLoRA has a lambda
    assert set(loss["series"]) == set(METHODS) and norm["step"].max() == 3
    assert 0 in set(norm["step"])  # the final frames come from the full tracker rows, step 0 included
    # the live accuracy curve: the base model at step 0, then each evaluation (eval_every=3: step 3)
    assert set(evals["series"]) == set(METHODS) and set(evals.dropna()["step"]) == {0, 3}
    assert evals.dropna()["value"].between(0, 1).all()


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_compare_results_table_downloads_and_adapters(run):
    session, _, outputs = run
    table = next(out[7] for out in outputs if isinstance(out[7], pd.DataFrame))
    assert list(table["run"]) == METHODS and set(table["status"]) == {"finished"}
    headers = ["final eval", "‖ΔW‖_F mean", "‖ΔW‖/bound max (≤ 1)", "time s"]
    assert set(headers) <= set(table.columns)  # readable headers with units, not tracker column names
    assert "method" not in table.columns  # the run names the method: one column less to fit 1440 px
    assert table.set_index("run").loc["delora", "‖ΔW‖/bound max (≤ 1)"] <= 1.0
    files = outputs[-1][8]
    assert len(files) == 4 and all(Path(f).stat().st_size > 0 for f in files)
    tracker = pd.read_csv(next(f for f in files if f.endswith("_tracker.csv")))
    assert set(tracker["run"]) == set(METHODS) and tracker.columns[0] == "run"
    names = zipfile.ZipFile(next(f for f in files if f.endswith("_adapters.zip"))).namelist()
    assert {f"{m}/adapter_config.json" for m in METHODS} <= set(names)
    pngs = zipfile.ZipFile(next(f for f in files if f.endswith("_figures.zip"))).namelist()
    assert {"update_norm.png", "angles.png", "lambda.png", "loss.png", "accuracy.png"} <= set(pngs)
    run_dd, layer_dd = outputs[-1][9], outputs[-1][10]
    assert run_dd["value"] == "delora" and layer_dd["value"] in layer_dd["choices"]  # Inspect opens on DeLoRA
    assert set(session.results) == set(METHODS)


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_two_sessions_do_not_share_state(run):
    a, b, _ = run
    assert all(r.status == "finished" for r in a.results.values())  # b's stop flag never reached a's run
    assert b.results == {} and b.prepared is None
    status = handlers.inspect(b, "lora", "anything")[0]
    assert "run a comparison first" in status
    import copy

    assert copy.deepcopy(a) is not a and copy.deepcopy(a).results == {}  # what gr.State does per session


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_inspect_a_layer(run):
    session, _, outputs = run
    layer = outputs[-1][10]["value"]
    status, sv, heat, turn, numbers = handlers.inspect(session, "dora", layer)
    assert layer in status
    assert sv.axes and heat.axes
    has_turn = "turn_deg" in session.results["dora"].rows[0]  # the tracker records it (newer trackers)
    assert (turn is not None and turn.axes) if has_turn else (turn is None and "no 'turn_deg'" in status)
    assert "‖ΔW‖ / ‖W‖" in heat.axes[0].get_title()  # DoRA has no bound: the heatmap says what it shows
    assert list(numbers["run"]) == ["dora", "lora", "delora"]  # the chosen run first
    assert all(v > 0 for v in numbers["sigma_max"])  # DoRA: from its dense dW; the others: closed form
    assert handlers.inspect(session, "nope", layer)[0].startswith("⚠️")


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_stop_mid_run_keeps_what_was_recorded(tiny_bert_dir, text_files):
    session = UiSession()
    gen = handlers.compare(session, METHODS, *_values(tiny_bert_dir, text_files, max_steps=50, eval_every=0))
    outputs = []
    for out in gen:
        outputs.append(out)
        if out[0].startswith("step "):
            handlers.stop(session)  # what the Stop button does
            break
    outputs.extend(gen)
    final = outputs[-1][0]
    steps = {run: r.final["steps"] for run, r in session.results.items()}
    assert steps == {"lora": 1, "dora": 0, "delora": 0}  # lora stepped first; the others stopped before theirs
    assert final.startswith("stopped at step 1 (lora), 0 (dora), 0 (delora) of 50"), final  # each run's own step
    assert {r.status for r in session.results.values()} == {"stopped"}
    files = outputs[-1][8]
    assert len(files) == 4 and all(Path(f).stat().st_size > 0 for f in files)
    names = zipfile.ZipFile(files[-1]).namelist()
    assert {f"{m}/adapter_config.json" for m in METHODS} <= set(names)
    session.close()


@pytest.mark.parametrize(
    "overrides, methods, message",
    [
        (dict(max_steps=0), METHODS, "steps must be a positive integer"),
        (dict(max_steps=None), METHODS, "steps is empty"),
        (dict(r=0), METHODS, "rank r must be a positive integer"),  # the widget's label leads
        (dict(delora_lambda=0), METHODS, "DeLoRA λ must be a positive number, got 0: the app's default is 5"),
        (dict(delora_lambda=-5.0), METHODS, "DeLoRA λ must be a positive number, got -5: the app's default is 5"),
        (dict(lr_lora=0), METHODS, "LoRA: lr must be a number"),
        (dict(max_length=2), METHODS, "max length (tokens) must be at least 8"),  # DeloraVizError.field -> label
        ({}, [], "no method ticked"),
        (dict(model_path="nobody-here/no-such-model-xyz"), METHODS, "not available offline"),
        (dict(model_path="/no/such/dir"), METHODS, "not found"),
    ],
)
def test_bad_input_shows_a_message(tiny_bert_dir, text_files, overrides, methods, message):
    outputs = list(handlers.compare(UiSession(), methods, *_values(tiny_bert_dir, text_files, **overrides)))
    assert outputs[-1][0].startswith("⚠️") and message in outputs[-1][0], outputs[-1][0]
    assert "Traceback" not in outputs[-1][0]


def test_bad_uploads_show_a_message(tiny_bert_dir, text_files, tmp_path, monkeypatch):
    no_text = list(
        handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files, upload=text_files["no_text_csv"]))
    )
    assert no_text[-1][0].startswith("⚠️") and "text" in no_text[-1][0].lower()
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"not a spreadsheet")
    out = list(handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files, upload=str(odd))))
    assert "not .csv, .json, .jsonl, .txt" in out[-1][0]
    monkeypatch.setattr(app_settings, "MAX_UPLOAD_MB", 1e-4)  # ~100 bytes: the csv is "huge"
    out = list(handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files, upload=text_files["csv"])))
    assert "the limit is 0.0001 MB" in out[-1][0]


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_unexpected_errors_are_a_message_not_a_traceback(tiny_bert_dir, text_files, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")
        yield

    monkeypatch.setattr(runner, "iter_compare", boom)
    outputs = list(handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files)))
    assert outputs[-1][0] == "⚠️ internal error, see the server log"
    assert "Traceback" in caplog.text and "the GPU caught fire" in caplog.text  # logged on the server, not shown

    def bug(*args, **kwargs):  # a KeyError or TypeError inside the app is a bug, not a typo of the user's
        raise KeyError("rows")
        yield

    monkeypatch.setattr(runner, "iter_compare", bug)
    outputs = list(handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files)))
    assert outputs[-1][0] == "⚠️ internal error, see the server log" and "KeyError: 'rows'" in caplog.text


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_lr_sweep_tab(tiny_bert_dir, text_files):
    session = UiSession()
    outputs = list(handlers.sweep(session, ["lora", "delora"], "1, 100", 2, *_values(tiny_bert_dir, text_files)))
    status, fig, table = outputs[-1]
    assert status.startswith("finished: 4/4 runs") and "cpu" in status
    assert fig.axes and len(table) == 4 and set(table["lr_multiplier"]) == {1.0, 100.0}
    assert any(out[0].startswith("run 1/4 · lora x1 step") for out in outputs)  # progress while a run trains
    bad = list(handlers.sweep(session, ["lora"], "1, -3", 2, *_values(tiny_bert_dir, text_files)))
    assert bad[-1][0].startswith("⚠️") and "multipliers must be positive" in bad[-1][0]


def test_settings_and_live_view_units():
    methods, config, lrs = make_config({"max_steps": 12.0, "target_modules": "query, value"}, ["lora", "delora-paper"])
    assert config.max_steps == 12 and config.target_modules == ["query", "value"] and config.model == "minilm"
    assert lrs == {"lora": 2e-3, "delora-paper": 3e-2} and config.data is None
    assert parse_multipliers("0.1, 1 10;100") == [0.1, 1.0, 10.0, 100.0]
    view = LiveView(steps=5, runs=["lora", "delora"], min_interval=0.3)
    assert view.due(now=10.0) and not view.due(now=10.1) and view.due(now=10.4)  # throttled
    assert view.status().startswith("starting")
    frames = view.frames()  # before any step: every series already there (one NaN row), so the chart's colours hold
    assert list(frames["norm"][0]["series"]) == ["lora ||dW||", "delora ||dW||", "delora bound"]
    assert list(frames["lambda"][0]["series"]) == ["delora"] and frames["loss"][0]["value"].isna().all()
    assert all(
        list(f.columns) == ["step", "value", "series"] and set(c) == set(f["series"]) for f, c in frames.values()
    )


class _FakePrepared:
    baseline = None


@pytest.mark.slow  # a subprocess or a server
def test_importing_app_loads_no_model():
    code = (
        "import sys, app; assert 'transformers' not in sys.modules and 'peft' not in sys.modules; "
        "print(type(app.demo).__name__)"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "Blocks", out.stderr[-2000:]


def test_app_py_is_thin_and_main_parses_its_flags(monkeypatch):
    calls = {}
    monkeypatch.setattr(serve, "launch", lambda demo, *args, **kw: calls.update(args=args, **kw))
    serve.main(["--port", "7999"])
    assert calls["args"] == ("127.0.0.1", 7999, False, 50)
    assert not calls["policy"].served and calls["policy"].local_paths and calls["auth"] is None
    serve.main(["--host", "0.0.0.0", "--share", "--limit-upload-mb", "5", "--auth", "ada:lovelace", "--no-hub"])
    assert calls["args"] == ("0.0.0.0", 7860, True, 5.0) and calls["auth"] == [("ada", "lovelace")]
    assert calls["policy"].served and not calls["policy"].local_paths and not calls["policy"].hub
    serve.main(["--host", "0.0.0.0", "--allow-local-paths", "--limit-rank", "16"])
    assert calls["policy"].served and calls["policy"].local_paths and calls["policy"].limit_rank == 16
    source = (Path(__file__).parents[1] / "app.py").read_text()
    assert "demo = build_demo()" in source and 'if __name__ == "__main__":' in source


# ----------------------------------------------------------------------------- the launched app
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    demo = layout.build_demo()
    serve.launch(demo, port=_free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def _wait_for_step(job, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(str(out[0]).startswith("step ") for out in job.outputs()):
            return
        assert not job.done(), f"the run ended before its first step: {job.outputs()[-1:]}"
        time.sleep(0.2)
    raise TimeoutError("no live step within the timeout")


@pytest.mark.slow  # a subprocess or a server
def test_client_compare_end_to_end(app_url, tiny_bert_dir, text_files):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    assert {"/compare", "/stop", "/sweep", "/inspect"} <= set(
        client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    )
    result = client.predict(["lora", "delora"], *_values(tiny_bert_dir, text_files), api_name="/compare")
    status, *_, table, files, run_dd, layer_dd = result
    assert status.startswith("finished 3/3 steps")
    assert [row[0] for row in table["data"]] == ["lora", "delora"]
    assert len(files) == 4 and all(Path(f).stat().st_size > 0 for f in files)
    status, sv, *_ = client.predict(run_dd["value"], layer_dd["value"], api_name="/inspect")
    assert layer_dd["value"] in status and sv is not None  # the run is kept in this client's session


@pytest.mark.slow  # a subprocess or a server
def test_client_stop_cancel_and_sessions(app_url, tiny_bert_dir, text_files):
    from gradio_client import Client

    a, b = Client(app_url, verbose=False), Client(app_url, verbose=False)
    values = _values(tiny_bert_dir, text_files, max_steps=200, eval_every=0)
    job = a.submit(["lora", "delora"], *values, api_name="/compare")
    _wait_for_step(job)
    b.predict(api_name="/stop")  # another session's Stop: a keeps training
    time.sleep(1.0)
    assert not job.done()
    a.predict(api_name="/stop")  # a's own Stop: the run ends within a step, with its results
    status, *_, table, files, _, _ = job.result(timeout=60)
    assert status.startswith("stopped at step"), status
    assert len(table["data"]) == 2 and len(files) == 4
    # cancel (closes the generator) mid-run; the app keeps serving this session and others
    job = a.submit(["lora"], *values, api_name="/compare")
    _wait_for_step(job)
    job.cancel()
    deadline = time.time() + 30
    while not job.done() and time.time() < deadline:
        time.sleep(0.2)
    result = b.predict(["lora"], *_values(tiny_bert_dir, text_files, max_steps=2, eval_every=2), api_name="/compare")
    assert result[0].startswith("finished 2/2 steps")


@pytest.mark.slow  # a subprocess or a server
def test_bad_input_through_the_client_keeps_the_app_serving(app_url, tiny_bert_dir, text_files):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    status = client.predict([], *_values(tiny_bert_dir, text_files), api_name="/compare")[0]
    assert status.startswith("⚠️") and "no method ticked" in status
    status = client.predict(METHODS, *_values(tiny_bert_dir, text_files, r=0), api_name="/compare")[0]
    assert "rank" in status


# ----------------------------------------------------------------------------- the walk's defects
def test_a_garbled_upload_is_named_by_its_file_without_the_parsers_words(tiny_bert_dir, text_files, tmp_path):
    folder = tmp_path / "gradio" / "3f9c2a1b7e"  # what Gradio's upload folder looks like
    folder.mkdir(parents=True)
    bad = folder / "bad.csv"
    bad.write_text("text,label\nsport news,sport\nthree,fields,here\nmore,business\n" * 3)
    out = list(handlers.compare(UiSession(), METHODS, *_values(tiny_bert_dir, text_files, upload=str(bad))))
    message = out[-1][0]
    assert message.startswith("⚠️ the uploaded file 'bad.csv' could not be read as csv"), message
    assert str(folder) not in message and "3f9c2a1b7e" not in message  # no server path
    assert "tokenizing" not in message and "C error" not in message  # no parser jargon


def test_user_errors_lead_with_the_widgets_label_and_bugs_are_internal():
    class FieldError(ValueError):  # what delora_viz.DeloraVizError looks like: a ValueError with a field
        def __init__(self, message, field):
            super().__init__(message)
            self.field = field

    assert handlers.user_message(FieldError("max_length must be at least 8 tokens, got 2", "max_length")) == (
        "max length (tokens) must be at least 8 tokens, got 2"
    )
    assert handlers.user_message(FieldError("no column 'body' in the file", "text_column")) == (
        "text column: no column 'body' in the file"
    )
    assert handlers.user_message(FieldError("as written", "a_field_the_app_does_not_show")) == "as written"
    assert handlers.user_message(ValueError("plain")) == "plain"
    upload = f"{tempfile.gettempdir()}/gradio/9a8b7c/my data.csv"
    assert (
        handlers.without_temp_folders(f"{upload}: a .txt file has no labels")
        == "my data.csv: a .txt file has no labels"
    )
    assert handlers.without_temp_folders("/home/me/data.csv: kept") == "/home/me/data.csv: kept"  # not ours to hide
    for bug in (KeyError("x"), TypeError("y"), RuntimeError("z"), NotImplementedError("w")):
        assert handlers.user_message(bug) is None  # the caller logs it with its traceback


def test_the_accuracy_plot_shows_every_evaluation_and_a_lone_baseline():
    view = LiveView(steps=40, runs=["lora", "delora"])
    view.baseline = 0.3
    frame = view.frames()["eval"][0].dropna()
    assert set(frame["series"]) == {"lora", "delora"} and set(frame["step"]) == {0}  # drawn as markers (layout.CSS)

    def stopped(run, at):  # a run stopped at step `at`: its last evaluation came after its last StepEvent
        history = [{"step": s, "eval_metric": {0: 0.3, at: 0.8}.get(s, math.nan)} for s in range(at + 1)]
        final = {"steps": at, "eval_metric": 0.8, "eval_name": "accuracy"}
        return RunResult(run, run, None, history, [], None, final, "stopped")

    view.add(stopped("lora", 18))
    view.add(stopped("delora", 17))
    frame = view.frames()["eval"][0].dropna()
    assert sorted(zip(frame["series"], frame["step"])) == [("delora", 0), ("delora", 17), ("lora", 0), ("lora", 18)]
    assert view.status().startswith("stopped at step 18 (lora), 17 (delora) of 40")


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_one_stop_per_session_stops_a_sweep_too(tiny_bert_dir, text_files):
    session, other = UiSession(), UiSession()
    gen = handlers.sweep(session, ["lora", "delora"], "1, 10", 30, *_values(tiny_bert_dir, text_files))
    outputs = []
    for out in gen:
        outputs.append(out)
        if out[0].startswith("run 1/4"):
            handlers.stop(other)  # another session's Stop: nothing happens here
            handlers.stop(session)  # this session's (the Compare tab's button calls the same function)
            break
    outputs.extend(gen)
    assert outputs[-1][0].startswith("stopped: 1/4 runs"), outputs[-1][0]
    session.close()


def test_a_second_run_of_the_same_page_is_told_to_press_stop(tiny_bert_dir, text_files):
    session = UiSession()
    session.busy = 1  # a sweep of this page is running
    out = list(handlers.compare(session, METHODS, *_values(tiny_bert_dir, text_files)))
    assert "press Stop (on either tab) first" in out[-1][0]


def test_known_library_warnings_stay_out_of_the_log():
    import warnings

    from delora_viz.app.logs import quiet_library_logs

    quiet_library_logs()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_library_logs()  # after catch_warnings reset the filters, as at app start
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, stacklevel=2
        )
        warnings.warn("something new", FutureWarning, stacklevel=2)
    assert [str(w.message) for w in seen] == ["something new"]


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_the_fixed_lambda_run_keeps_lambda_and_still_moves_its_norm(tiny_bert_dir, text_files):
    from delora_viz.training.comparisons import compare
    from delora_viz.training.config import TrainConfig

    config = TrainConfig(
        model=tiny_bert_dir,
        data=text_files["csv"],
        max_steps=4,
        batch_size=4,
        max_length=16,
        eval_every=0,
        device="cpu",
    )
    runs = compare(["delora", "delora-fixed-lambda"], config)
    lam = {run: pd.DataFrame(r.rows).groupby("step")["lambda"].mean() for run, r in runs.items()}
    norm = pd.DataFrame(runs["delora-fixed-lambda"].rows).groupby("step")["delta_fro"].mean()
    assert lam["delora-fixed-lambda"].nunique() == 1 and lam["delora"].nunique() > 1
    assert abs(norm[4] - norm[1]) > 1e-3 * norm[1]  # A and B alone moved ||dW||


# ----------------------------------------------------------------------------- lessons as links
def test_a_link_restores_the_setup_named_like_the_cli_flags():
    from delora_viz.app.links import parse_query

    setup = parse_query({"methods": "lora,delora", "rank": "3", "max_steps": "5", "cutoff_len": "32", "tab": "sweep"})
    assert setup.tab == "sweep" and setup.sweep_methods == ["lora", "delora"] and setup.sweep_steps == 5
    assert setup.settings["r"] == 3 and setup.settings["max_length"] == 32 and not setup.problems
    setup = parse_query(
        {"methods": "dora", "max_steps": "12", "learning_rate_lora": "0.01", "base_model": "org/name", "seed": "2"}
    )
    assert setup.tab == "compare" and setup.methods == ["dora"] and setup.settings["max_steps"] == 12
    assert setup.settings["lr_lora"] == 0.01 and setup.settings["model_path"] == "org/name"
    assert setup.settings["seed"] == 2 and setup.settings["model"] == DEFAULTS["model"]
    assert parse_query({"base_model": "smollm2"}).settings["model"] == "smollm2"
    bad = parse_query({"rank": "three", "methods": "lora,nope", "tab": "x", "r": "4", "preset": "nope"})
    assert bad.settings["r"] == DEFAULTS["r"] and bad.methods == ["lora"] and bad.tab == "compare"
    assert [p.split(":")[0] for p in bad.problems] == ["preset", "tab", "rank", "methods", "r"]


def test_link_round_trip_writes_only_what_differs_from_the_defaults():
    from delora_viz.app.links import make_query, parse_query

    assert make_query(dict(DEFAULTS), ["lora", "dora", "delora"]) == ""
    settings = dict(DEFAULTS, r=3, max_steps=5, lr_delora=0.05, model_path="org/name", text_column="body")
    query = make_query(settings, ["lora", "delora"])
    assert query == (
        "?methods=lora,delora&base_model=org/name&text_column=body&rank=3&learning_rate_delora=0.05&max_steps=5"
    )
    from urllib.parse import parse_qsl

    back = parse_query(dict(parse_qsl(query[1:])))
    assert back.methods == ["lora", "delora"] and {k: back.settings[k] for k in ("r", "max_steps", "lr_delora")} == {
        "r": 3,
        "max_steps": 5,
        "lr_delora": 0.05,
    }
    sweep = make_query(dict(DEFAULTS), ["lora"], "sweep", ["lora", "delora-paper"], "0.5, 5", 8)
    assert sweep == "?methods=lora,delora-paper&max_steps=8&lr_multipliers=0.5,5&tab=sweep"
    back = parse_query(dict(parse_qsl(sweep[1:])))
    assert (back.sweep_methods, back.multipliers, back.sweep_steps, back.tab) == (
        ["lora", "delora-paper"],
        "0.5, 5",
        8,
        "sweep",
    )


def test_each_preset_is_a_link_that_makes_one_point():
    from delora_viz.app.links import PRESETS, parse_query, preset_link

    assert set(PRESETS) == {
        "lora-crosses-the-cap",
        "rank-1-tight-bound",
        "peft-vs-paper-init",
        "lambda-fixed-vs-learned",
    }
    cap = parse_query({"preset": "lora-crosses-the-cap"})
    assert cap.methods == ["lora", "delora"] and cap.settings["lr_lora"] == 5 * DEFAULTS["lr_lora"]
    assert parse_query({"preset": "rank-1-tight-bound"}).settings["r"] == 1
    assert parse_query({"preset": "peft-vs-paper-init"}).methods == ["delora", "delora-paper"]
    assert parse_query({"preset": "lambda-fixed-vs-learned"}).methods == ["delora", "delora-fixed-lambda"]
    assert parse_query({"preset": "rank-1-tight-bound", "rank": "2"}).settings["r"] == 2  # the link's own wins
    for name in PRESETS:
        assert preset_link(name) == f"?preset={name}" and not parse_query({"preset": name}).problems
        make_config(parse_query({"preset": name}).settings, parse_query({"preset": name}).methods)  # valid


def test_the_page_applies_a_setup_and_writes_its_link():
    from delora_viz.app.links import parse_query

    setup = parse_query({"preset": "rank-1-tight-bound", "tab": "sweep"})
    updates = layout.apply_setup(setup)
    assert len(updates) == len(layout.LINKED) + 7
    by_key = dict(zip(layout.LINKED, updates))
    assert by_key["r"]["value"] == 1 and updates[-2] == "sweep" and "rank 1" in updates[-1]
    assert "?preset=rank-1-tight-bound" in updates[-1]
    values = [by_key[k]["value"] for k in layout.LINKED]
    query = layout.link_query(*values, ["delora"], ["lora", "delora"], "0.1, 1, 10, 100", 20, "compare")
    assert query == "?methods=delora&rank=1"
    assert "⚠️ Not used from the link: rank" in layout.lesson_text(parse_query({"rank": "x"}))


def test_every_tutorial_the_app_links_to_exists():
    from pathlib import Path

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    for number, (_, stem) in layout.TUTORIALS.items():
        assert stem.startswith(number) and (notebooks / f"{stem}.py").is_file(), stem


def test_lesson_buttons_wait_for_the_page_to_read_its_link():
    """The page's load (URL -> fields) and a lesson button both write the fields. A click that lands
    before the load returns would be overwritten by it (seen on a busy server: rank back to 8), so the
    buttons start disabled and only the load enables them; with no query the load leaves the fields be."""
    from delora_viz.app.links import PRESETS

    demo = layout.build_demo()
    config = demo.get_config_file()
    by_elem = {c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")}
    buttons = {by_elem[f"preset-{name}"]["id"] for name in PRESETS}
    assert all(by_elem[f"preset-{name}"]["props"]["interactive"] is False for name in PRESETS)
    (load,) = [d for d in config["dependencies"] if d["api_name"] == "_from_url"]
    assert any(t[1] == "load" for t in load["targets"]) and buttons <= set(load["outputs"])
    empty = layout._from_url(None)
    assert all(u.get("__type__") == "update" and u.get("interactive") is True for u in empty[-len(PRESETS) :])
    demo.close()
