"""Shipped results (training/shipped.py): written once with a stamp, read back while the config matches."""

import json
import math

import pandas as pd
import pytest

from delora_viz.training import shipped
from delora_viz.training.shipped import load_or_compute, load_or_compute_many, load_shipped

CONFIG = {"methods": ["lora", "delora"], "multipliers": [0.1, 1.0], "train": {"max_steps": 3}}


def frame(value=1.0):
    return pd.DataFrame(
        {
            "method": ["lora", "delora"],
            "lr_multiplier": [0.1, 1.0],
            "final_distance": [value, 0.123456789012],
            "eval_metric": [math.nan, 0.5],
            "diverged": [True, False],
        }
    )


class Counter:
    def __init__(self, value=1.0):
        self.calls, self.value = 0, value

    def __call__(self):
        self.calls += 1
        return frame(self.value)


@pytest.fixture(autouse=True)
def no_recompute(monkeypatch):
    monkeypatch.delenv(shipped.RECOMPUTE_ENV, raising=False)


def test_computes_once_then_reads_the_shipped_file(tmp_path):
    compute = Counter()
    first = load_or_compute("sweep", CONFIG, compute, tmp_path)
    again = load_or_compute("sweep", CONFIG, compute, tmp_path)
    assert compute.calls == 1
    pd.testing.assert_frame_equal(again, first, rtol=1e-8)  # 9 significant digits in the CSV
    assert again["diverged"].dtype == bool and math.isnan(again["eval_metric"][0])
    stamp = json.loads((tmp_path / "sweep.json").read_text())
    assert stamp["config"] == CONFIG and stamp["rows"] == 2 and stamp["name"] == "sweep"
    for key in ("delora_viz", "date", "seconds", "torch", "peft", "python"):
        assert stamp[key] not in (None, "")
    assert again.attrs["stamp"] == stamp


def test_config_equal_after_a_json_round_trip_matches(tmp_path):
    compute = Counter()
    load_or_compute("sweep", CONFIG, compute, tmp_path)
    as_tuples = {"train": {"max_steps": 3}, "multipliers": (0.1, 1.0), "methods": ("lora", "delora")}
    load_or_compute("sweep", as_tuples, compute, tmp_path)
    assert compute.calls == 1


def test_other_config_recomputes_and_overwrites(tmp_path):
    load_or_compute("sweep", CONFIG, Counter(1.0), tmp_path)
    other = dict(CONFIG, train={"max_steps": 4})
    compute = Counter(2.0)
    out = load_or_compute("sweep", other, compute, tmp_path)
    assert compute.calls == 1 and out["final_distance"][0] == 2.0
    assert load_shipped("sweep", tmp_path).attrs["stamp"]["config"] == other


@pytest.mark.parametrize("value,recomputes", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_recompute_flag(tmp_path, monkeypatch, value, recomputes):
    load_or_compute("sweep", CONFIG, Counter(), tmp_path)
    monkeypatch.setenv(shipped.RECOMPUTE_ENV, value)
    compute = Counter(3.0)
    load_or_compute("sweep", CONFIG, compute, tmp_path)
    assert compute.calls == int(recomputes)


def test_missing_or_broken_stamp_recomputes(tmp_path):
    load_or_compute("sweep", CONFIG, Counter(), tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    compute = Counter()
    load_or_compute("sweep", CONFIG, compute, tmp_path)
    (tmp_path / "sweep.json").unlink()
    load_or_compute("sweep", CONFIG, compute, tmp_path)
    assert compute.calls == 2


def test_many_frames_share_one_computation_and_stamp(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"a": frame(), "b": frame(5.0).head(1)}

    out = load_or_compute_many(["a", "b"], CONFIG, compute, tmp_path)
    again = load_or_compute_many(["a", "b"], CONFIG, compute, tmp_path)
    assert len(calls) == 1 and len(again["b"]) == 1
    assert again["a"].attrs["stamp"]["seconds"] == again["b"].attrs["stamp"]["seconds"]
    (tmp_path / "b.csv").unlink()  # one missing: both are recomputed together
    load_or_compute_many(["a", "b"], CONFIG, compute, tmp_path)
    assert len(calls) == 2 and set(out) == {"a", "b"}


def test_bad_input_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shipped result 'nope'"):
        load_shipped("nope", tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        load_or_compute("../escape", CONFIG, Counter(), tmp_path)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        load_or_compute("sweep", {"f": object()}, Counter(), tmp_path)
    with pytest.raises(ValueError, match=r"must return \{name: DataFrame\}"):
        load_or_compute_many(["a", "b"], CONFIG, lambda: {"a": frame()}, tmp_path)


def test_the_shipped_lr_sweep_is_small_and_matches_its_spec():
    """The files under notebooks/data that notebooks 00 and 03 read: present, stamped with LR_SWEEP, < 1 MB."""
    folder = shipped.default_directory()
    for name in ("lr_sweep", "lr_sweep_steps"):
        assert shipped.shipped_matches(name, shipped.LR_SWEEP, folder), f"{name} is stale: recompute it"
        assert (folder / f"{name}.csv").stat().st_size < 1_000_000
    sweep = load_shipped("lr_sweep", folder)
    spec = shipped.LR_SWEEP
    assert len(sweep) == len(spec["methods"]) * len(spec["multipliers"])
    assert set(sweep["method"]) == set(spec["methods"])
    steps = load_shipped("lr_sweep_steps", folder)
    delora = steps[steps["method"].str.startswith("delora")]
    assert (delora["delta_fro_mean"] <= delora["bound_mean"] * (1 + 1e-5)).all()  # the bound held in every run
