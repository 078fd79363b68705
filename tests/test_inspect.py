"""`delora-viz inspect`: adapters saved by PEFT itself (not our code), measured against a dense float64
merge-and-subtract; records equal to the last history row of the run that trained the adapter; bad input."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from peft import DeloraConfig, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from delora_viz.cli import main
from delora_viz.delora.layer import add_delora
from delora_viz.delora.peft_io import METADATA_NAME, save_peft_lora
from delora_viz.instruments.history import COLUMNS, load_history
from delora_viz.instruments.track import Tracker
from delora_viz.training.load_adapter import inspect_adapter

TARGETS = ["q_proj", "v_proj"]
CONFIGS = {
    "lora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, task_type="CAUSAL_LM"),
    "rslora": lambda: LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=TARGETS),
    "dora": lambda: LoraConfig(r=4, lora_alpha=8, use_dora=True, target_modules=TARGETS, task_type="CAUSAL_LM"),
    "delora": lambda: DeloraConfig(r=4, delora_lambda=2.0, target_modules=TARGETS, task_type="CAUSAL_LM"),
}


def _train_steps(model, steps=3, lr=1e-2, tracker_path=None):
    """A few AdamW steps on random tokens; with tracker_path, a Tracker records after each step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    tracker = Tracker(model, path=tracker_path).watch(opt) if tracker_path else None
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(5, 500, (4, 10), generator=g)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    if tracker is not None:
        tracker.close()


@pytest.fixture(scope="module")
def peft_adapters(tiny_llama_dir, tmp_path_factory):
    """{method: folder} of adapters written by PEFT's save_pretrained after 3 optimizer steps."""
    root = tmp_path_factory.mktemp("peft-adapters")
    out = {}
    for method, config in CONFIGS.items():
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), config())
        _train_steps(model)
        model.save_pretrained(root / method)
        out[method] = root / method
    return out


def _dense_reference(base_dir, adapter_dir) -> dict[str, dict]:
    """Per layer, in float64: dW = merge_and_unload(W) - W and its measures written out densely."""
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    frozen = {n: m.weight.detach().clone() for n, m in base.named_modules() if n.endswith(tuple(TARGETS))}
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir)).to(torch.float64)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    extra = {}
    for name, module in peft_model.base_model.model.named_modules():
        if name in frozen and config["peft_type"] == "DELORA":
            A = module.delora_A["default"].double()  # (r, n)
            lam = module.delora_lambda["default"].double().abs().item()
            w = frozen[name].norm(dim=0)  # (n,) column norms ||W[:, j]||
            r = A.shape[0]
            # the paper's bound: (|lambda| / r) sum_i || a_i / ||a_i|| (.) w ||, and |lambda| max_j w_j
            extra[name] = {
                "bound": lam / r * sum((A[i] / A[i].norm() * w).norm().item() for i in range(r)),
                "bound_loose": lam * w.max().item(),
                "lambda": lam,
            }
        if name in frozen and config.get("use_dora"):
            m = module.lora_magnitude_vector["default"].weight.double()
            rows = frozen[name].norm(dim=1)  # (out,) row norms ||W[k, :]||
            extra[name] = {"dora_mag_drift": ((m - rows).norm() / rows.norm()).item()}
    merged = peft_model.merge_and_unload()
    ref = {}
    for name, W in frozen.items():
        dW = merged.get_submodule(name).weight.detach() - W  # (out, in), float64
        cos = (dW * W).sum() / (dW.norm() * W.norm())
        cos_p = ((W + dW) * W).sum() / ((W + dW).norm() * W.norm())
        ref[name] = {
            "delta_fro": dW.norm().item(),
            "w_fro": W.norm().item(),
            "rel_delta": (dW.norm() / W.norm()).item(),
            "angle_delta_w_deg": math.degrees(torch.arccos(cos.clamp(-1, 1)).item()),
            "angle_w_prime_deg": math.degrees(torch.arccos(cos_p.clamp(-1, 1)).item()),
            "svals": torch.linalg.svdvals(dW).tolist(),
            **extra.get(name, {}),
        }
    return ref


@pytest.mark.parametrize("method", list(CONFIGS))
def test_inspect_equals_dense_merge_and_subtract(peft_adapters, tiny_llama_dir, method):
    inspected = inspect_adapter(peft_adapters[method])
    ref = _dense_reference(tiny_llama_dir, peft_adapters[method])
    df = inspected.frame.set_index("layer")
    assert sorted(df.index) == sorted(ref) and len(ref) == 4
    assert set(df["method"]) == {method} and set(df["rank"]) == {4}
    for layer, expected in ref.items():
        row = df.loc[layer]
        for key in ("delta_fro", "w_fro", "rel_delta"):
            assert row[key] == pytest.approx(expected[key], rel=2e-5), (layer, key)
        for key in ("angle_delta_w_deg", "angle_w_prime_deg"):
            assert row[key] == pytest.approx(expected[key], abs=2e-3), (layer, key)
        if method == "dora":  # not low-rank: no singular values, a magnitude drift instead
            assert math.isnan(row["sigma_max"]) and math.isnan(row["sv_1"])
            assert row["dora_mag_drift"] == pytest.approx(expected["dora_mag_drift"], rel=1e-4)
        else:
            top = [row[f"sv_{i}"] for i in range(1, 5)]
            assert top == pytest.approx(expected["svals"][:4], rel=1e-4, abs=1e-7)
            assert row["sigma_max"] == pytest.approx(row["sv_1"], rel=1e-6)  # two routes: Gram eigenvalues, thin QRs
            assert math.isnan(row["sv_5"])  # rank 4: nothing past it
        if method == "delora":
            for key in ("bound", "bound_loose", "lambda"):
                assert row[key] == pytest.approx(expected[key], rel=1e-5), (layer, key)
            assert row["bound_ratio"] == pytest.approx(expected["delta_fro"] / expected["bound"], rel=3e-5)
            assert row["delta_fro"] <= row["bound"]
        else:
            assert math.isnan(row["bound"]) and math.isnan(row["lambda"])


def test_inspect_equals_last_history_row_of_the_training_run(tiny_llama_dir, tmp_path):
    """PEFT DeLoRA trained under a Tracker, saved by PEFT: inspect equals the history's last record (to 1e-5)."""
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), CONFIGS["delora"]())
    _train_steps(model, steps=4, tracker_path=tmp_path / "history.jsonl")
    model.save_pretrained(tmp_path / "adapter")
    _assert_matches_last_record(inspect_adapter(tmp_path / "adapter").frame, load_history(tmp_path / "history.jsonl"))


def test_delora_paper_export_is_labelled_delora_with_its_bound(tiny_llama_dir, tmp_path):
    """Our paper-init DeLoRA travels as an exact rank-2r LoRA; its metadata file restores method, r, bound."""
    torch.manual_seed(0)
    model = add_delora(
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir), TARGETS, r=2, delora_lambda=1.5, init="paper"
    )
    _train_steps(model, steps=3, tracker_path=tmp_path / "history.csv")
    save_peft_lora(model, tmp_path / "adapter", base_model_name_or_path=tiny_llama_dir)
    meta = json.loads((tmp_path / "adapter" / METADATA_NAME).read_text())
    assert meta["method"] == "delora-paper" and meta["rank"] == 2
    frame = inspect_adapter(tmp_path / "adapter").frame
    assert set(frame["method"]) == {"delora-paper"} and set(frame["rank"]) == {2}
    assert frame["sv_4"].gt(0).all() and frame["sv_5"].isna().all()  # the LoRA export has rank 2r = 4
    _assert_matches_last_record(frame, load_history(tmp_path / "history.csv"))

    (tmp_path / "adapter" / METADATA_NAME).unlink()  # without it: a plain rank-4 LoRA, no bound
    plain = inspect_adapter(tmp_path / "adapter").frame
    assert set(plain["method"]) == {"lora"} and set(plain["rank"]) == {4} and plain["bound"].isna().all()


def _assert_matches_last_record(frame: pd.DataFrame, history: pd.DataFrame) -> None:
    last = history[history["step"] == history["step"].max()].set_index("layer")
    got = frame.set_index("layer").loc[last.index]
    for column in COLUMNS[2:]:  # every column but step (and layer, the index)
        if column == "turn_deg":  # the turn since the previous record: a saved adapter has no previous record
            assert got[column].isna().all()
            continue
        if column in ("method",):
            assert (got[column] == last[column]).all()
            continue
        # Two code paths over the same stored float32 parameters (a reloaded adapter is measured in another
        # batch; the paper init is re-read from its rank-2r LoRA export): each column is a float32 reduction
        # of at most a few thousand terms, ~1e-7 relative apart (measured: the bound, 1.06e-7), so 1e-5.
        a, b = got[column].to_numpy(dtype=float), last[column].to_numpy(dtype=float)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=0, equal_nan=True, err_msg=column)


# ----------------------------------------------------------------------------- the command line
def test_cli_writes_table_and_figures_side_by_side(peft_adapters, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["inspect", str(peft_adapters["lora"]), str(peft_adapters["delora"]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lora: LORA adapter" in printed and "delora: DELORA adapter" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "adapters.csv",
        "layer_bars.png",
        "layer_heatmap.png",
        "spectrum.png",
    ]
    table = pd.read_csv(out / "adapters.csv")
    assert list(table.columns[: len(COLUMNS) + 1]) == ["adapter", *COLUMNS]
    assert table.groupby("adapter").size().to_dict() == {"delora": 4, "lora": 4}
    assert table.loc[table["adapter"] == "delora", "bound"].notna().all()
    assert all((out / name).stat().st_size > 10_000 for name in ("layer_bars.png", "spectrum.png"))


def test_cli_bad_adapters_one_line_each_and_nothing_written(
    peft_adapters, tiny_llama_dir, tiny_bert_dir, tmp_path, capsys
):
    offline = tmp_path / "offline-base"
    offline.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (offline / name).write_bytes((peft_adapters["lora"] / name).read_bytes())
    config = json.loads((offline / "adapter_config.json").read_text())
    (offline / "adapter_config.json").write_text(
        json.dumps(config | {"base_model_name_or_path": "nobody/no-such-model"})
    )
    out = tmp_path / "out"
    argv = [
        "inspect",
        tiny_llama_dir,
        str(offline),
        str(tmp_path / "missing"),
        str(peft_adapters["lora"]),
        "-o",
        str(out),
    ]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("delora-viz: error: ") for line in lines)
    assert "not a PEFT adapter folder" in lines[0] and "pass it as --base_model" in lines[0]
    assert "not available offline" in lines[1] and "nobody/no-such-model" in lines[1]
    assert "not found" in lines[2]
    assert not out.exists()  # the good adapter was measured, but nothing is written when any input is bad

    assert main(["inspect", str(peft_adapters["lora"]), "--base_model", tiny_bert_dir, "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "does not fit the base model" in line and not out.exists()


def test_adapter_of_a_bare_model_loads_and_a_misfit_is_refused(peft_adapters, tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    torch.manual_seed(0)
    bare = get_peft_model(AutoModel.from_pretrained(tiny_llama_dir), LoraConfig(r=2, target_modules=TARGETS))
    with torch.no_grad():
        for name, p in bare.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a nonzero update without training a headless model
    bare.save_pretrained(tmp_path / "bare")
    frame = inspect_adapter(tmp_path / "bare").frame  # no task_type: the bare AutoModel is tried too
    assert len(frame) == 4 and frame["layer"].str.startswith("layers.").all() and (frame["delta_fro"] > 0).all()

    misfit = tmp_path / "misfit"  # layer 7 of a 2-layer model: PEFT loads it silently, measuring nothing
    misfit.mkdir()
    (misfit / "adapter_config.json").write_text((peft_adapters["lora"] / "adapter_config.json").read_text())
    tensors = load_file(str(peft_adapters["lora"] / "adapter_model.safetensors"))
    save_file(
        {k.replace("layers.1.", "layers.7."): v for k, v in tensors.items()}, str(misfit / "adapter_model.safetensors")
    )
    with pytest.raises(ValueError, match=r"does not fit the base model .*4 of its tensors have no place.*layers\.7\."):
        inspect_adapter(misfit)
