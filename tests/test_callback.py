"""TrackerCallback inside a real transformers Trainer, with TensorBoard reading the scalars back."""

import glob

import pytest
import torch
from peft import DeloraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from delora_viz.instruments.callback import TrackerCallback
from delora_viz.instruments.history import load_history


class Toy(torch.utils.data.Dataset):
    def __init__(self, n=64, length=12, vocab=50):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, vocab, (n, length), generator=g)
        self.labels = (self.ids[:, 0] > vocab // 2).long()  # learnable from the first token

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def _model():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=2
    )
    base = BertForSequenceClassification(config)
    return get_peft_model(
        base, DeloraConfig(r=4, delora_lambda=2, target_modules=["query", "value"], modules_to_save=["classifier"])
    )


def _args(tmp_path, **kw):
    kw = dict(max_steps=6) | kw
    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=2,
        save_steps=3,
        report_to=["tensorboard"],
        use_cpu=True,
        disable_tqdm=True,
        **kw,
    )


@pytest.mark.slow  # trains: a transformers Trainer
def test_callback_writes_history_checkpoints_and_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(model=_model(), args=_args(tmp_path), train_dataset=Toy())
    callback = TrackerCallback.attach(trainer, track_every=1)
    assert trainer.callback_handler.callbacks[0] is callback  # runs before TensorBoard's
    trainer.train()

    history = load_history(tmp_path / "delora_history.jsonl")
    assert sorted(history["step"].unique()) == list(range(0, 7))
    assert set(history["method"]) == {"delora"} and history["layer"].nunique() == 4
    assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
    assert (tmp_path / "checkpoint-3" / "delora_history.jsonl").is_file()
    assert load_history(tmp_path / "checkpoint-3" / "delora_history.jsonl")["step"].max() == 3

    logged = [entry for entry in trainer.state.log_history if "delora/delta_fro_mean" in entry]
    assert len(logged) == 3 and all(isinstance(v, float) for v in logged[0].values() if not isinstance(v, int))

    events = glob.glob(str(tmp_path / "**" / "events.out.tfevents.*"), recursive=True)
    assert events
    tags = set()
    for path in events:
        acc = EventAccumulator(path)
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    for tag in ("delora/delta_fro_mean", "delora/bound_ratio_max", "delora/lambda_mean"):
        assert any(t.endswith(tag) for t in tags), (tag, sorted(tags))


@pytest.mark.slow  # trains: a transformers Trainer
def test_a_callback_behind_the_loggers_warns_and_still_records(tmp_path):
    """callbacks=[...] puts it after TensorBoardCallback: the history is whole, TensorBoard misses the scalars."""
    trainer = Trainer(model=_model(), args=_args(tmp_path, max_steps=2), train_dataset=Toy())
    trainer.add_callback(TrackerCallback(track_every=2))
    with pytest.warns(UserWarning, match="runs after the report_to loggers \\(tensorboard\\).*TrackerCallback.attach"):
        trainer.train()
    assert sorted(load_history(tmp_path / "delora_history.jsonl")["step"].unique()) == [0, 2]
    assert any("delora/delta_fro_mean" in entry for entry in trainer.state.log_history)


@pytest.mark.slow  # trains: a transformers Trainer
def test_a_fresh_run_keeps_the_previous_history(tmp_path):
    (tmp_path / "delora_history.jsonl").write_text("old\n")
    Trainer(
        model=_model(), args=_args(tmp_path, max_steps=1), train_dataset=Toy(), callbacks=[TrackerCallback()]
    ).train()
    kept = [p for p in tmp_path.glob("delora_history.*.jsonl")]
    assert len(kept) == 1 and kept[0].read_text() == "old\n"


@pytest.mark.slow  # trains: a transformers Trainer
def test_a_resumed_run_continues_its_history_without_duplicate_or_missing_steps(tmp_path):
    """Killed after step 6 (rows 0-6 on disk), resumed from checkpoint-3: steps 4-6 are redone, once each."""
    Trainer(model=_model(), args=_args(tmp_path), train_dataset=Toy(), callbacks=[TrackerCallback()]).train()
    path = tmp_path / "delora_history.jsonl"
    assert sorted(load_history(path)["step"]) == sorted(list(range(7)) * 4)
    resumed = Trainer(model=_model(), args=_args(tmp_path), train_dataset=Toy(), callbacks=[TrackerCallback()])
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    history = load_history(path)
    assert sorted(history["step"]) == sorted(list(range(7)) * 4)  # 4 layers, steps 0..6, each once
    assert history.groupby(["step", "layer"]).size().max() == 1
    assert not list(tmp_path.glob("delora_history.*.jsonl"))  # resuming continues the file, moves nothing aside


@pytest.mark.slow  # trains: a transformers Trainer
def test_the_callback_warns_and_disables_itself_instead_of_ending_training(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    plain = BertForSequenceClassification(config)  # no adapters: nothing to track
    trainer = Trainer(
        model=plain, args=_args(tmp_path, max_steps=2), train_dataset=Toy(), callbacks=[TrackerCallback()]
    )
    with pytest.warns(UserWarning, match="stops tracking \\(training goes on\\): .*no adapted layers"):
        trainer.train()
    assert trainer.state.global_step == 2 and not (tmp_path / "delora_history.jsonl").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive integer"):
        TrackerCallback(track_every=0)
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        TrackerCallback(filename="history.txt")
