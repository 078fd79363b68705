"""Tracker rows against a dense reference (merge the adapter, subtract W), for every method."""

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
from builders import ToyBlock
from peft import DeloraConfig, LoraConfig, get_peft_model
from torch import nn

from delora_viz.delora.layer import add_delora, delora_layers
from delora_viz.instruments.history import COLUMNS, load_history
from delora_viz.instruments.measure import UpdateGeometry
from delora_viz.instruments.track import Tracker


def Block():  # noqa: N802 - the toy block (tests/builders.py) at this file's size
    return ToyBlock(48, 40)


def _peft(config):
    return lambda: get_peft_model(Block(), config)


def _ours(init):
    return lambda: add_delora(Block(), ["q_proj", "v_proj"], r=4, delora_lambda=2.0, init=init)


BUILDERS = {
    "lora": _peft(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])),
    "rslora": _peft(LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"])),
    "dora": _peft(LoraConfig(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "v_proj"])),
    "delora": _peft(
        DeloraConfig(
            r=4,
            delora_lambda=2,
            target_modules=["q_proj", "v_proj"],
            rank_pattern={"v_proj": 2},
            lambda_pattern={"v_proj": 0.5},
        )
    ),
    "ours-delora": _ours("peft"),
    "ours-delora-paper": _ours("paper"),
}


def _train(model, steps=6, lr=0.02):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    tracker = Tracker(model).watch(opt)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(16, 48)).pow(2).mean().backward()
        opt.step()
    tracker.close()
    return tracker


def _dense_deltas(model, originals):
    """Independent reference: PEFT merges (or our merge), minus the original weights."""
    merged = copy.deepcopy(model)
    merged = merged.merge_and_unload() if hasattr(merged, "merge_and_unload") else merged
    if delora_layers(merged):
        for layer in delora_layers(merged).values():
            layer.merge()
        return {n: layer.base_layer.weight.double() - originals[n] for n, layer in delora_layers(merged).items()}
    return {n: merged.get_submodule(n).weight.double() - originals[n] for n in originals}


def arccos_reference(W, dW):
    """float64 norms of the full matrices; angles as arccos of float64 inner products (not the closed form's atan2)."""

    def angle(X, Y):
        return torch.arccos(((X * Y).sum() / (X.norm() * Y.norm())).clamp(-1, 1))

    return UpdateGeometry(dW.norm(), W.norm(), dW.norm() / W.norm(), angle(dW, W), angle(W + dW, W))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_rows_match_dense_reference_after_real_steps(kind):
    torch.manual_seed(0)
    model = BUILDERS[kind]()
    base = model.base_model.model if hasattr(model, "base_model") else model
    originals = {
        n: (m.base_layer.weight if hasattr(m, "base_layer") else m.weight).detach().double().clone()
        for n, m in base.named_modules()
        if n in ("q_proj", "v_proj")
    }
    tracker = _train(model)
    df = tracker.to_dataframe()
    assert list(df.columns) == list(COLUMNS)
    assert sorted(df["step"].unique()) == list(range(0, 7))  # watch() records the starting point
    start = df[df["step"] == 0]
    assert (start["delta_fro"] <= 1e-6 * start["w_fro"]).all()  # dW = 0 (DoRA's to float32 rounding of g - 1)
    last = df[df["step"] == 6].set_index("layer")
    expected_method = {"ours-delora": "delora", "ours-delora-paper": "delora-paper"}.get(kind, kind)
    assert set(last["method"]) == {expected_method}
    for name, dW in _dense_deltas(model, originals).items():
        row = last.loc[name]
        W = originals[name]
        ref = arccos_reference(W, dW)
        assert row["delta_fro"] == pytest.approx(ref.delta_fro.item(), rel=1e-4)
        assert row["w_fro"] == pytest.approx(ref.w_fro.item(), rel=1e-4)
        assert row["rel_delta"] == pytest.approx(ref.rel_delta.item(), rel=1e-4)
        assert row["angle_delta_w_deg"] == pytest.approx(math.degrees(ref.angle_delta_w.item()), rel=1e-4, abs=1e-3)
        assert row["angle_w_prime_deg"] == pytest.approx(math.degrees(ref.angle_w_prime.item()), rel=1e-4, abs=1e-4)
        assert row["delta_fro"] > 1e-3  # the update really moved
        if kind == "dora":
            assert math.isnan(row["sigma_max"]) and row["dora_mag_drift"] > 0
        else:
            assert row["sigma_max"] == pytest.approx(torch.linalg.svdvals(dW)[0].item(), rel=1e-4)
        if "delora" in kind:
            assert row["delta_fro"] <= row["bound"] * (1 + 1e-5) <= row["bound_loose"] * (1 + 1e-5)
            assert row["bound_ratio"] == pytest.approx(row["delta_fro"] / row["bound"])
            assert not math.isnan(row["lambda"])
        else:
            assert math.isnan(row["bound"]) and math.isnan(row["lambda"])
    if kind == "delora":  # lambda_pattern and rank_pattern reach the rows
        assert last.loc["v_proj", "rank"] == 2 and last.loc["q_proj", "rank"] == 4
        assert abs(last.loc["v_proj", "lambda"]) < abs(last.loc["q_proj", "lambda"])


def test_delora_never_exceeds_its_bound_at_absurd_learning_rates():
    torch.manual_seed(1)
    for build in (BUILDERS["delora"], BUILDERS["ours-delora"], BUILDERS["ours-delora-paper"]):
        df = _train(build(), steps=10, lr=5.0).to_dataframe()
        assert (df["delta_fro"] <= df["bound"] * (1 + 1e-5)).all()


def test_several_lora_adapters_track_the_active_one():
    model = get_peft_model(Block(), LoraConfig(r=4, target_modules=["q_proj"]), adapter_name="first")
    model.add_adapter("second", LoraConfig(r=2, target_modules=["q_proj"], use_rslora=True))
    model.set_adapter("second")
    rows = Tracker(model).step(0)
    assert [(r["layer"], r["method"], r["rank"]) for r in rows] == [("q_proj", "rslora", 2)]


def test_unknown_adapter_types_are_skipped_with_one_warning():
    from peft import IA3Config

    model = get_peft_model(Block(), IA3Config(target_modules=["q_proj", "v_proj"], feedforward_modules=[]))
    with pytest.warns(UserWarning, match="skips them: Linear") as record:
        with pytest.raises(ValueError, match="no adapted layers"):
            Tracker(model)
    assert len([w for w in record if "skips" in str(w.message)]) == 1


def test_every_and_explicit_steps():
    model = BUILDERS["ours-delora"]()
    tracker = Tracker(model, track_every=3)
    assert tracker.step(1) == [] and tracker.step(2) == []
    assert len(tracker.step(3)) == 2
    summary = tracker.summary()
    assert set(summary) >= {"delora/delta_fro_mean", "delora/bound_ratio_max", "delora/lambda_mean"}
    assert all(isinstance(v, float) for v in summary.values())


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_save_load_round_trip_is_lossless(tmp_path, suffix):
    tracker = _train(BUILDERS["dora"]())  # NaN columns included
    tracker.save(tmp_path / f"h{suffix}")
    loaded = Tracker.load(tmp_path / f"h{suffix}")
    original = tracker.to_dataframe()
    assert list(loaded.columns) == list(COLUMNS)
    for column in COLUMNS:
        a, b = original[column].tolist(), loaded[column].tolist()
        assert all((x == y) or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)), column


def test_streaming_appends_so_a_killed_run_keeps_its_rows(tmp_path):
    model = BUILDERS["ours-delora"]()
    path = tmp_path / "stream.jsonl"
    tracker = Tracker(model, path=path, keep_rows=False)
    for step in range(5):
        tracker.step(step)
        assert len(path.read_text().splitlines()) == 1 + 2 * (step + 1)  # on disk after every record
    assert tracker.rows == []  # nothing held in memory
    assert len(load_history(path)) == 10


def test_bad_input_messages(tmp_path):
    with pytest.raises(ValueError, match="no adapted layers.*add_delora"):
        Tracker(Block())
    with pytest.raises(ValueError, match="positive integer"):
        Tracker(BUILDERS["ours-delora"](), track_every=0)
    with pytest.raises(ValueError, match="end in .csv or .jsonl"):
        Tracker(BUILDERS["ours-delora"](), path=tmp_path / "h.parquet")
    bogus = tmp_path / "notes.csv"
    bogus.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a tracker history.*lacks the columns"):
        Tracker.load(bogus)
    assert bogus.read_text() == "a,b\n1,2\n"  # nothing overwritten
    garbage = tmp_path / "x.jsonl"
    garbage.write_text("this is not json\n")
    with pytest.raises(ValueError, match="not a tracker history"):
        Tracker.load(garbage)
    with pytest.raises(FileNotFoundError):
        Tracker.load(tmp_path / "missing.csv")


def test_metrics_use_float32_on_a_bf16_model():
    model = add_delora(Block().to(torch.bfloat16), ["q_proj"], r=4, delora_lambda=2.0)
    nn.init.normal_(model.q_proj.delora_B)
    row = Tracker(model).step(0)[0]
    reference = arccos_reference(model.q_proj.base_layer.weight.double(), model.q_proj.delta_weight().double())
    assert row["delta_fro"] == pytest.approx(reference.delta_fro.item(), rel=1e-3)


DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
from torch import nn
from delora_viz.delora.layer import add_delora
from delora_viz.instruments.track import Tracker
dist.init_process_group("gloo")
torch.manual_seed(0)
model = add_delora(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), ["0"], r=2, delora_lambda=1.0)
model = nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
tracker = Tracker(model, path=sys.argv[1]).watch(opt)
for _ in range(3):
    opt.zero_grad(); model(torch.randn(4, 8)).sum().backward(); opt.step()
print(f"rank {dist.get_rank()} rows {len(tracker.rows)} active {tracker.active}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow  # a subprocess or a server
def test_ddp_two_processes_write_one_history(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "history.jsonl"
    import socket

    with socket.socket() as sock:  # a free port: a fixed one can be taken by another run
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        "--master_addr=127.0.0.1",
        str(script),
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    # watch() records step 0, then one row per step: 4 rows on rank 0, none on rank 1
    assert "rank 0 rows 4 active True" in result.stdout and "rank 1 rows 0 active False" in result.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"delora_viz_history": 2}  # the format line, then the rows
    assert [row["step"] for row in lines[1:]] == [0, 1, 2, 3] and lines[1]["layer"] == "0"


def test_sharded_weights_are_refused_not_measured_wrongly():
    model = BUILDERS["ours-delora"]()
    model.q_proj.base_layer.weight.ds_id = 7  # what DeepSpeed ZeRO-3 puts on a partitioned parameter
    with pytest.raises(NotImplementedError, match="sharded.*FSDP or DeepSpeed ZeRO-3"):
        Tracker(model)


def test_merged_peft_layers_are_skipped_with_a_warning():
    model = BUILDERS["lora"]()
    model.base_model.model.q_proj.merge()
    with pytest.warns(UserWarning, match="merged LoRA/DoRA layers"):
        rows = Tracker(model).step(0)
    assert [r["layer"] for r in rows] == ["v_proj"]


def test_cached_weight_norm_follows_in_place_changes_of_w():
    model = BUILDERS["ours-delora"]()
    nn.init.normal_(model.q_proj.delora_B)
    tracker = Tracker(model)
    first = tracker.step(0)[0]["w_fro"]
    with torch.no_grad():
        model.q_proj.base_layer.weight.mul_(2.0)  # e.g. a merge: W changes in place
    second = tracker.step(1)[0]["w_fro"]
    assert second == pytest.approx(2 * first, rel=1e-6)


# ----------------------------------------------------------------------------- a tracker that survives real use
def test_step_without_argument_counts_its_own_calls():
    tracker = Tracker(BUILDERS["ours-delora"](), track_every=2)
    steps = [tracker.step() for _ in range(5)]
    assert [rows[0]["step"] for rows in steps if rows] == [2, 4]
    tracker.step(10)  # an explicit step moves the count: the next calls are 11 (not recorded), 12
    assert tracker.step() == [] and tracker.step()[0]["step"] == 12


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_torn_last_line_loads_with_a_warning_and_every_complete_row(tmp_path, suffix):
    path = tmp_path / f"h{suffix}"
    tracker = Tracker(BUILDERS["ours-delora"](), path=path)
    for step in range(3):
        tracker.step(step)
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[-1][:25])  # a run killed while writing a row
    with pytest.warns(UserWarning, match="incomplete last line"):
        df = load_history(path)
    assert len(df) == 6 and sorted(df["step"].unique()) == [0, 1, 2]


def test_a_new_run_on_an_existing_path_moves_the_old_file_aside(tmp_path):
    path = tmp_path / "h.jsonl"
    first = Tracker(BUILDERS["ours-delora"](), path=path)
    first.step(0)
    first.step(1)
    with pytest.warns(UserWarning, match="earlier run's history: moved it to h[.]"):
        second = Tracker(BUILDERS["ours-delora"](), path=path)
    second.step(0)
    assert load_history(path)["step"].tolist() == [0, 0]  # only the new run
    (old,) = [p for p in tmp_path.iterdir() if p.name != "h.jsonl"]
    assert load_history(old)["step"].tolist() == [0, 0, 1, 1]


def test_rotations_within_one_second_never_collide(tmp_path, monkeypatch):
    from delora_viz.instruments import history

    monkeypatch.setattr(history.time, "strftime", lambda fmt: "20260101-000000")  # the same second, always
    path = tmp_path / "h.csv"
    moved = []
    for i in range(3):
        path.write_text(f"run {i}\n")
        moved.append(history.rotate_aside(path))
    assert [p.name for p in moved] == ["h.20260101-000000.csv", "h.20260101-000000.1.csv", "h.20260101-000000.2.csv"]
    assert [p.read_text() for p in moved] == ["run 0\n", "run 1\n", "run 2\n"] and not path.exists()
    assert history.rotate_aside(path) is None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_history_files_carry_a_format_version_and_old_files_still_load(tmp_path, suffix):
    from delora_viz.instruments.history import FORMAT_VERSION

    path = tmp_path / f"new{suffix}"
    Tracker(BUILDERS["ours-delora"](), path=path).step(0)
    assert str(FORMAT_VERSION) in path.read_text().splitlines()[0]
    # format 1: no version line and no turn_deg column (it was added later: optional when reading)
    old = tmp_path / f"old{suffix}"
    v1 = [c for c in COLUMNS if c != "turn_deg"]
    row = {c: 1.0 for c in v1} | {"step": 3, "layer": "q_proj", "method": "delora", "rank": 4}
    if suffix == ".jsonl":
        old.write_text(json.dumps(row) + "\n")
    else:
        old.write_text(",".join(v1) + "\n" + ",".join(str(row[c]) for c in v1) + "\n")
    df = load_history(old)
    assert list(df.columns) == list(COLUMNS) and df["step"].tolist() == [3] and math.isnan(df["turn_deg"][0])
    newer = tmp_path / f"newer{suffix}"
    first = '{"delora_viz_history": 99}' if suffix == ".jsonl" else "# delora_viz_history 99"
    newer.write_text(first + "\n" + path.read_text().split("\n", 1)[1])
    with pytest.raises(ValueError, match="newer delora-viz.*upgrade"):
        load_history(newer)


def test_quantized_bases_are_skipped_with_the_skip_warning():
    class Int8Linear(nn.Linear):  # what bitsandbytes' Linear8bitLt looks like to us: int8 codes as weight
        def __init__(self, i, o):
            super().__init__(i, o)
            self.weight = nn.Parameter(torch.randint(-127, 127, (o, i), dtype=torch.int8), requires_grad=False)

    model = Block()
    model.q_proj = Int8Linear(48, 40)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with pytest.warns(UserWarning, match="skips them: .*quantized Int8Linear"):
        rows = Tracker(model).step(0)
    assert [r["layer"] for r in rows] == ["v_proj"]
    with pytest.raises(TypeError, match="floating-point base weight.*quantized"):
        add_delora(nn.Sequential(Int8Linear(8, 8)), ["0"], r=2)


def test_the_tracker_follows_set_adapter():
    model = get_peft_model(Block(), LoraConfig(r=4, target_modules=["q_proj"]), adapter_name="first")
    model.add_adapter("second", LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    for name in ("first", "second"):
        nn.init.normal_(model.base_model.model.q_proj.lora_B[name].weight)
    tracker = Tracker(model)
    assert [(r["method"], r["rank"]) for r in tracker.step(0)] == [("lora", 4)]
    model.set_adapter("second")
    assert [(r["method"], r["rank"]) for r in tracker.step(1)] == [("dora", 2)]
    model.set_adapter("first")
    rows = tracker.step(2)
    assert [(r["method"], r["rank"]) for r in rows] == [("lora", 4)]
    assert math.isnan(rows[0]["turn_deg"])  # the previous record measured another adapter: no turn


def test_turn_deg_is_nan_without_a_previous_update_and_resolves_small_turns():
    torch.manual_seed(4)
    model = BUILDERS["lora"]()  # B = 0 at init: dW = 0, no direction yet
    tracker = Tracker(model)
    assert all(math.isnan(r["turn_deg"]) for r in tracker.step(0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    dense = []
    for step in range(1, 4):
        opt.zero_grad()
        model(torch.randn(16, 48)).pow(2).mean().backward()
        opt.step()
        opt.param_groups[0]["lr"] = 2e-5  # later steps barely turn dW
        rows = {r["layer"]: r for r in tracker.step(step)}
        lora = model.base_model.model.q_proj
        dense.append(
            lora.scaling["default"] * lora.lora_B["default"].weight.double() @ lora.lora_A["default"].weight.double()
        )
        if step == 1:
            assert math.isnan(rows["q_proj"]["turn_deg"])  # the step-0 update was zero
        else:
            a, b = dense[-2], dense[-1]
            # atan2 of the float64 projections (the turn is small: arccos loses it in fp64 below ~1e-6 rad)
            along = (a * b).sum() / a.norm()
            expected = math.degrees(math.atan2((b - along * a / a.norm()).norm().item(), along.item()))
            assert rows["q_proj"]["turn_deg"] == pytest.approx(expected, rel=1e-3)
            assert 1e-4 < expected < 0.1  # far below float32's sqrt(eps) ~ 0.02 deg: the stacked difference


@pytest.mark.parametrize("kind", ["lora", "dora", "ours-delora-paper"])
def test_partial_sums_over_row_shards_add_up_to_the_whole(kind):
    """What a row-sharded (FSDP2) run does: each rank sums over its rows of W, one all-reduce adds the
    packed sums, every rank forms the metrics. Two shards added by hand must give the unsharded values."""
    from delora_viz.instruments import measure

    torch.manual_seed(2)
    tracker = _train(BUILDERS[kind](), steps=3)
    ((key, members),) = tracker._groups.items()  # q_proj and v_proj have the same shape: one batch
    previous = tracker._previous[key]  # the last record's factors: turn_deg is measured too
    views = [tracker.views[i] for i in members]
    weights = [v.weight().detach() for v in views]
    row_sq = torch.stack([measure.row_squares(W, torch.float32) for W in weights])

    def group():
        return measure.build_group([v.params() for v in views], torch.float32, previous)

    whole_group = group()
    whole = measure.metrics_from_sums(whole_group, measure.partial_sums(whole_group, weights, row_sq))
    packed = 0
    for rows in (slice(0, 17), slice(17, None)):
        shard = group()
        if kind == "dora":  # DoRA's per-row state of the last record lives with the rows: this rank's part
            shard.previous = {**previous, **{k: previous[k][:, rows] for k in ("g", "c", "Q", "magnitude")}}
        sums = measure.partial_sums(shard, [W[rows] for W in weights], row_sq[:, rows], rows=rows)
        packed = packed + measure.pack(sums)  # the all_reduce(SUM)
    reduced = measure.metrics_from_sums(whole_group, measure.unpack(packed, sums))
    assert not torch.isnan(whole[:, -1]).any()  # turn_deg measured
    torch.testing.assert_close(reduced, whole, rtol=1e-5, atol=1e-5, equal_nan=True)


def _turned(B: torch.Tensor, degrees: float, seed: int) -> torch.Tensor:
    """B turned by `degrees` in the plane of B and a random direction orthogonal to it (same norm)."""
    N = torch.randn(B.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    B64 = B.double()
    N = N - (N * B64).sum() / B64.square().sum() * B64
    t = math.radians(degrees)
    return (math.cos(t) * B64 + math.sin(t) * N * B64.norm() / N.norm()).to(B.dtype)


def _dense_angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle between two float64 matrices from the projections (arccos loses turns below ~1e-6 rad)."""
    along = (a * b).sum() / a.norm()
    return math.degrees(math.atan2((b - along * a / a.norm()).norm().item(), along.item()))


@pytest.mark.parametrize("kind", ["lora", "dora"])
@pytest.mark.parametrize("degrees", [1e-4, 1e-2, 1.0, 30.0])
def test_turn_deg_matches_dense_float64_for_small_and_large_turns(kind, degrees):
    """turn_deg in the Tracker's default float32 against the angle between two merged updates in float64
    (PEFT's own merge of a float64 copy). DoRA's update is not low rank (its W term scales with g - 1):
    its turn is built from dW - dW_prev at the scale of the difference, like LoRA's stacked factors, so a
    1e-4 degree turn is resolved to the same relative accuracy (it read 0 when formed from <dW_prev, dW>)."""
    torch.manual_seed(5)
    model = BUILDERS[kind]()
    for layer in (model.base_model.model.q_proj, model.base_model.model.v_proj):
        layer.lora_B["default"].weight.data.normal_(0, 0.2)  # a nonzero update with a direction to turn
    tracker = Tracker(model)  # float32, the default

    def dense_deltas():
        merged = copy.deepcopy(model).double().merge_and_unload()  # PEFT's merge, float64
        base = copy.deepcopy(model).double().get_base_model()
        return {n: merged.get_submodule(n).weight - base.get_submodule(n).base_layer.weight for n in ("q_proj",)}

    tracker.step(1)
    before = dense_deltas()
    B = model.base_model.model.q_proj.lora_B["default"].weight
    B.data = _turned(B.data, degrees, seed=6)
    rows = {r["layer"]: r for r in tracker.step(2)}
    expected = _dense_angle_deg(before["q_proj"], dense_deltas()["q_proj"])
    assert expected == pytest.approx(degrees, rel=0.5)  # the dense turn is of the size asked for
    assert rows["q_proj"]["turn_deg"] == pytest.approx(expected, rel=1e-3)


def test_dora_at_init_is_rounding_with_no_direction_then_turns():
    """PEFT stores DoRA's magnitudes m = ||W_k|| rounded to float32, so at init dW = diag(m / c - 1) W is ~1e-8
    ||W||, not 0, at an arbitrary angle to W. The tracker reports its size but no direction: angle_delta_w and
    the next turn are NaN (they read ~100 and ~90 degrees before), and turns are measured from there on."""
    torch.manual_seed(0)
    model = BUILDERS["dora"]()
    tracker = Tracker(model)
    start = tracker.step(0)
    assert all(0 < r["rel_delta"] < 1e-7 and math.isnan(r["angle_delta_w_deg"]) for r in start)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for step in (1, 2):
        opt.zero_grad()
        model(torch.randn(16, 48)).pow(2).mean().backward()
        opt.step()
        rows = tracker.step(step)
        assert all(r["rel_delta"] > 1e-4 and math.isfinite(r["angle_delta_w_deg"]) for r in rows)
        assert all(math.isnan(r["turn_deg"]) == (step == 1) for r in rows)
