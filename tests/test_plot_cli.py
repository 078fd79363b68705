"""`delora-viz plot`: a TrackerCallback history from a real Trainer run (its loss from trainer_state.json)
and a plain-loop Tracker CSV, overlaid into PNGs; bad files one line each, nothing half-written."""

import json

import pandas as pd
import pytest
import torch
from peft import DeloraConfig, LoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from delora_viz.cli import main
from delora_viz.instruments.callback import TrackerCallback
from delora_viz.instruments.track import Tracker
from delora_viz.plots.runs import BadInputs, load_runs, run_figures


class Toy(torch.utils.data.Dataset):
    def __init__(self, n=48, length=10, vocab=50):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, vocab, (n, length), generator=g)
        self.labels = (self.ids[:, 0] > vocab // 2).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


@pytest.fixture(scope="module")
def callback_history(tmp_path_factory):
    """out/delora-run/delora_history.jsonl from Trainer + TrackerCallback (checkpoints at steps 3 and 6)."""
    out = tmp_path_factory.mktemp("trainer") / "delora-run"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    model = get_peft_model(
        BertForSequenceClassification(config),
        DeloraConfig(r=4, delora_lambda=2, target_modules=["query", "value"], modules_to_save=["classifier"]),
    )
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=1,
        save_steps=3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=Toy(), callbacks=[TrackerCallback()]).train()
    return out / "delora_history.jsonl"


@pytest.fixture(scope="module")
def lora_csv(tmp_path_factory):
    """lora-loop.csv: a Tracker in a plain PyTorch loop over a PEFT LoRA model."""
    path = tmp_path_factory.mktemp("loop") / "lora-loop.csv"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    model = get_peft_model(net, LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"]))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    with Tracker(model, path=path).watch(opt):
        for _ in range(5):
            model(torch.randn(8, 16)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    return path


@pytest.mark.slow  # trains: its history comes from a Trainer run
def test_plot_callback_history_and_loop_csv_into_pngs(callback_history, lora_csv, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(callback_history), str(lora_csv), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "update_norm.png",
            "angles.png",
            "lambda.png",
            "loss.png",  # from checkpoint-6/trainer_state.json: the callback history has no loss
            "direction.png",
            "heatmap_delora-run.png",
            "heatmap_lora-loop.png",
        ]
    )
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / n).stat().st_size > 10_000 for n in names)
    assert "delora-run, lora-loop" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".figs")]  # the temporary folder is gone


@pytest.mark.slow  # trains: its history comes from a Trainer run
def test_runs_are_overlaid_and_labelled_by_file(callback_history, lora_csv):
    tracker_df, loss_df = load_runs([callback_history, lora_csv])
    assert list(pd.unique(tracker_df["run"])) == ["delora-run", "lora-loop"]
    assert set(tracker_df.loc[tracker_df["run"] == "delora-run", "step"]) == set(range(7))
    state = json.loads((callback_history.parent / "checkpoint-6" / "trainer_state.json").read_text())
    logged = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    assert set(loss_df["run"]) == {"delora-run"} and dict(zip(loss_df["step"], loss_df["loss"])) == logged
    figs = run_figures(tracker_df, loss_df)
    gids = {line.get_gid() for line in figs["update_norm"].axes[0].get_lines()}
    assert {"norm:delora-run", "norm:lora-loop", "bound-mean:delora-run"} <= gids
    assert "bound-mean:lora-loop" not in gids  # LoRA has no bound
    labels = [t.get_text() for t in figs["lambda"].axes[0].get_legend().get_texts()]
    assert any("delora-run" in t for t in labels) and not any("lora-loop" in t for t in labels)


def test_an_app_download_pair_matches_loss_to_runs(tmp_path):
    """The app's tracker CSV (a run column) with its per-step log: one file, several runs, named as in the app."""
    rows = []
    for run, method in (("lora", "lora"), ("delora", "delora")):
        for step in (0, 1, 2):
            rows.append(
                {
                    "step": step,
                    "layer": "q",
                    "method": method,
                    "rank": 2,
                    "run": run,
                    "delta_fro": 0.1 * step,
                    "w_fro": 1.0,
                    "rel_delta": 0.1 * step,
                    "angle_delta_w_deg": 90.0,
                    "angle_w_prime_deg": 5.0 * step,
                    "bound": 0.5 if method == "delora" else None,
                    "bound_loose": None,
                    "bound_ratio": None,
                    "lambda": 2.0 if method == "delora" else None,
                    "sigma_max": 0.1,
                    "dora_mag_drift": None,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "tracker.csv", index=False)
    log = [{"run": r, "method": r, "step": s, "loss": 1.0 / (s + 1)} for r in ("lora", "delora") for s in (1, 2)]
    pd.DataFrame(log).to_csv(tmp_path / "log.csv", index=False)
    tracker_df, loss_df = load_runs([tmp_path / "tracker.csv", tmp_path / "log.csv"])
    assert set(tracker_df["run"]) == set(loss_df["run"]) == {"lora", "delora"}
    assert "loss" in run_figures(tracker_df, loss_df)


@pytest.mark.slow  # trains: its history comes from a Trainer run
def test_bad_files_one_line_each_and_nothing_written(callback_history, tmp_path, capsys):
    partial = tmp_path / "partial.csv"
    pd.DataFrame({"step": [0], "layer": ["q"], "delta_fro": [0.1]}).to_csv(partial, index=False)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"step": 0, "layer": \n')
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out = tmp_path / "figs"
    out.mkdir()
    (out / "keep.png").write_bytes(b"old")  # an earlier result: must survive a failed run untouched
    argv = ["plot", str(callback_history), str(partial), str(broken), str(adapter), str(notes), "-o", str(out)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("delora-viz: error: ") for line in lines)
    assert "partial.csv: not a tracker history (it lacks the columns" in lines[0] and "'method'" in lines[0]
    assert "broken.jsonl: does not parse as JSONL" in lines[1]
    assert "a folder, not a history file" in lines[2] and "delora-viz inspect" in lines[2]
    assert "notes.txt: not a history" in lines[3]
    assert [p.name for p in out.iterdir()] == ["keep.png"] and (out / "keep.png").read_bytes() == b"old"
    with pytest.raises(BadInputs, match="only loss logs"):
        load_runs([callback_history.parent / "checkpoint-3" / "trainer_state.json"])


def test_a_failing_write_leaves_the_folder_as_it_was(tmp_path):
    from delora_viz.cli.plot import write_atomically

    out = tmp_path / "figs"
    out.mkdir()
    (out / "a.png").write_bytes(b"old")

    def broken(path):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(out, {"a.png": lambda p: p.write_bytes(b"new"), "b.png": broken})
    assert [p.name for p in out.iterdir()] == ["a.png"] and (out / "a.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]  # no temporary folder left behind
    assert write_atomically(out, {"a.png": lambda p: p.write_bytes(b"new")}) == [out / "a.png"]
    assert (out / "a.png").read_bytes() == b"new"
