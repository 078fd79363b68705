"""The app as a shared service: sessions freed, the app's own queue, one Stop per session, limits, OOM recovery.

The session churn probe lives in service_probe.py (it also runs on an older checkout, for a before/after).
"""

from __future__ import annotations

import time

import pytest
import torch
from service_probe import churn_sessions, launch_demo  # noqa: E402

from delora_viz.app import handlers, runner  # noqa: E402
from delora_viz.app.queue import AdmissionQueue, QueueFull  # noqa: E402
from delora_viz.app.session import LIVE, Sessions, UiSession  # noqa: E402
from delora_viz.app.settings import DEFAULTS, SETTINGS  # noqa: E402
from delora_viz.training.loop import StepEvent  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")


def _values(model_dir, data, **overrides):
    s = DEFAULTS | dict(
        model_path=model_dir, data=data, max_steps=2, batch_size=4, max_length=16, eval_every=2, eval_examples=8
    )
    return [(s | overrides)[k] for k in SETTINGS]


class _Request:
    def __init__(self, session_hash):
        self.session_hash = session_hash


# ----------------------------------------------------------------------------- session lifecycle
@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_registry_frees_a_closed_or_idle_session(tiny_bert_dir, text_files):
    sessions = Sessions(ttl_s=60)
    a, b = sessions.get(_Request("a")), sessions.get(_Request("b"))
    assert sessions.get(_Request("a")) is a and a is not b and len(sessions) == 2
    outputs = list(handlers.compare(a, ["lora"], *_values(tiny_bert_dir, text_files["csv"])))
    assert outputs[-1][0].startswith("finished"), outputs[-1][0]
    folder = a.directory
    assert folder.is_dir() and a.results["lora"].model is not None and a.prepared is not None
    sessions.close(_Request("a"))  # the tab closed (demo.unload)
    assert not folder.exists() and a.results == {} and a.prepared is None and len(sessions) == 1
    b.busy = 1  # b is running: never idle
    assert sessions.reap(now=time.monotonic() + 3600) == 0
    b.busy = 0
    assert sessions.reap(now=time.monotonic() + 3600) == 1 and len(sessions) == 0 and b.closed


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_a_session_closed_mid_run_frees_when_its_run_ends(tiny_bert_dir, text_files):
    session = UiSession()
    gen = handlers.compare(session, ["lora"], *_values(tiny_bert_dir, text_files["csv"], max_steps=50, eval_every=0))
    for out in gen:
        if out[0].startswith("step "):
            session.close()  # unload while training: the run stops at its next step
            break
    assert session.prepared is not None  # still in use by the running handler
    outputs = list(gen)
    assert outputs[-1][0].startswith("stopped at step")
    assert session.prepared is None and session.results == {} and session.directory is None


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_the_sweep_keeps_metrics_not_models(tiny_bert_dir, text_files, monkeypatch):
    kept = []
    real = handlers.sweep_frame
    monkeypatch.setattr(handlers, "sweep_frame", lambda results: kept.extend(results) or real(results))
    session = UiSession()
    outputs = list(handlers.sweep(session, ["lora"], "1, 10", 2, *_values(tiny_bert_dir, text_files["csv"])))
    assert outputs[-1][0].startswith("finished: 2/2 runs")
    assert kept and all(r.model is None and r.final["steps"] == 2 for r in kept)


@pytest.mark.slow  # a server and ten sessions that train
def test_ten_sessions_come_and_go_and_nothing_of_theirs_is_left(tiny_bert_dir, text_files):
    demo = launch_demo()
    try:
        counts = churn_sessions(demo.local_url, _values(tiny_bert_dir, text_files["csv"]), n=10)
    finally:
        demo.close()
    assert len(handlers.SESSIONS) == 0
    assert counts["models"] == 0 and counts["temp_dirs"] == 0, counts
    assert not [s for s in LIVE if s.prepared is not None or s.results], counts


# ----------------------------------------------------------------------------- the app's own queue
def test_admission_queue_is_first_come_first_served():
    q = AdmissionQueue(slots=1, max_waiting=2)
    a, b, c = q.join(), q.join(), q.join()
    assert (a.ahead(), b.ahead(), c.ahead()) == (0, 1, 2) and a.admitted() and not b.admitted()
    with pytest.raises(QueueFull, match="runs are waiting already"):
        q.join()
    b.leave()  # b gave up (Stop while waiting): c moves up
    assert c.ahead() == 1 and not c.wait(0.01)
    a.leave()
    assert c.wait(0.01) and len(q) == 1


def test_a_queued_run_says_it_waits_and_stop_cancels_it(tiny_bert_dir, text_files, monkeypatch):
    monkeypatch.setattr(handlers, "QUEUE", AdmissionQueue(slots=1))
    monkeypatch.setattr(handlers, "WAIT_POLL_S", 0.01)
    running = handlers.QUEUE.join()  # another session's run holds the slot
    session = UiSession()
    gen = handlers.compare(session, ["lora"], *_values(tiny_bert_dir, text_files["csv"]))
    first = next(gen)[0]
    assert first.startswith("waiting: 1 run ahead"), first
    assert next(gen)[0].startswith("waiting: 1 run ahead")
    handlers.stop(session)  # Stop: the run leaves the queue before it starts
    rest = [out[0] for out in gen]
    assert rest[-1] == "cancelled while waiting: nothing ran" and session.prepared is None
    assert len(handlers.QUEUE) == 1 and running.admitted()
    running.leave()
    outputs = list(handlers.compare(session, ["lora"], *_values(tiny_bert_dir, text_files["csv"])))
    assert outputs[-1][0].startswith("finished 2/2")  # the flag was cleared: the next Train runs


# ----------------------------------------------------------------------------- limits and recovery
def test_rank_above_the_layer_width_names_the_layer(tiny_bert_dir, text_files):
    outputs = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, text_files["csv"], r=200)))
    message = outputs[-1][0]
    assert message.startswith("⚠️ rank r=200 is larger than the target layers allow") and "at most 32" in message


def test_bad_target_modules_list_the_layers_to_pick_from(tiny_bert_dir, text_files):
    values = _values(tiny_bert_dir, text_files["csv"], target_modules="qq_proj")
    message = list(handlers.compare(UiSession(), ["lora"], *values))[-1][0]
    assert "no linear layer is named qq_proj" in message and "query" in message and "value" in message


def test_caps_on_steps_batch_and_length(tiny_bert_dir, text_files, monkeypatch):
    from delora_viz.app.policy import Policy

    monkeypatch.setattr(handlers, "POLICY", Policy(limit_steps=10, limit_batch=4))
    message = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, text_files["csv"], max_steps=11)))
    assert message[-1][0] == "⚠️ steps is 11; this server allows at most 10: lower it"
    out = list(handlers.sweep(UiSession(), ["lora"], "1", 2, *_values(tiny_bert_dir, text_files["csv"], batch_size=5)))
    assert "batch size is 5; this server allows at most 4" in out[-1][0]


@pytest.mark.slow  # trains (a comparison or a sweep through the handlers)
def test_out_of_memory_ends_the_run_keeps_the_record_and_the_app_usable(tiny_bert_dir, text_files, monkeypatch):
    real = runner.iter_compare

    def oom_after_two_steps(*args, **kwargs):
        for event in real(*args, **kwargs):
            yield event
            if isinstance(event, StepEvent) and event.step == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runner, "iter_compare", oom_after_two_steps)
    session = UiSession()
    values = _values(tiny_bert_dir, text_files["csv"], max_steps=6, eval_every=0)
    outputs = list(handlers.compare(session, ["lora", "delora"], *values))
    status = outputs[-1][0]
    assert status.startswith("⚠️ out of GPU memory") and "what was recorded is kept" in status
    norm = outputs[-1][2]["value"]  # the live plots still show the steps recorded before the error
    assert norm.dropna()["step"].max() == 2
    assert session.prepared is None and session.busy == 0  # memory freed, the session is free again
    monkeypatch.setattr(runner, "iter_compare", real)
    assert list(handlers.compare(session, ["lora"], *_values(tiny_bert_dir, text_files["csv"])))[-1][0].startswith(
        "finished"
    )


# ----------------------------------------------------------------------------- messages in the UI's words
def test_garbage_upload_is_one_line_without_a_traceback(tiny_bert_dir, text_files, tmp_path, caplog):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    out = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, None, upload=str(garbage))))
    message = out[-1][0]
    assert message.startswith("⚠️") and "\n" not in message and "Traceback" not in caplog.text, message


def test_ambiguous_columns_are_named_in_the_ui_s_words(tiny_bert_dir, text_files):
    out = list(handlers.compare(UiSession(), ["lora"], *_values(tiny_bert_dir, None, upload=text_files["no_text_csv"])))
    message = out[-1][0]
    assert "text_column" not in message and "label_column" not in message, message
    assert message.startswith("⚠️ text column: "), message  # DeloraVizError.field -> the widget's label
