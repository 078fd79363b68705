"""Scalar writers for `delora-viz train --report_to`: TensorBoard and Trackio, fed with the loop's StepEvents.

The tags are the ones transformers' Trainer gives the same values (its rewrite_logs puts "train/" before a
training log key and "eval/" before an evaluation one), so a CLI run and a Trainer run with TrackerCallback
line up in one dashboard:

    train/loss  train/learning_rate  train/delora/delta_fro_mean  train/delora/bound_ratio_max
    train/delora/lambda_mean  ...  eval/accuracy | eval/perplexity
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DeloraVizError
from ..instruments.history import summarize

REPORTERS = ("tensorboard", "trackio", "none")
TRACKIO_PROJECT = "delora-viz"


def scalars(event) -> dict[str, float]:
    """{tag: value} of one optimizer step: loss, learning rate, the tracker's summary, the eval metric."""
    out = {"train/loss": float(event.loss), "train/learning_rate": float(event.lr)}
    out.update({f"train/{k}": v for k, v in summarize(event.rows, prefix="delora/").items()})
    if event.eval_metric is not None:
        out[f"eval/{event.eval_name}"] = float(event.eval_metric)
    return out


class TensorBoardWriter:
    """Event files under <output_dir>/runs/ (`tensorboard --logdir <output_dir>` finds them)."""

    def __init__(self, output_dir: str | Path, run_name: str, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch's writer needs the tensorboard package
            raise DeloraVizError(
                "--report_to tensorboard needs TensorBoard: pip install tensorboard", field="report_to"
            ) from err
        self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "runs" / run_name))
        self.writer.add_text("config", "\n".join(f"{k}: {v}" for k, v in config.items()), 0)

    def write(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class TrackioWriter:
    """A Trackio run in project "delora-viz" (local-first: $TRACKIO_DIR, default ~/.cache/huggingface/trackio)."""

    def __init__(self, output_dir: str | Path, run_name: str, config: dict):
        try:
            import trackio
        except ImportError as err:
            raise DeloraVizError("--report_to trackio needs Trackio: pip install trackio", field="report_to") from err
        self.trackio = trackio
        trackio.init(project=TRACKIO_PROJECT, name=run_name, config=config, embed=False, auto_log_cpu=False)

    def write(self, step: int, values: dict[str, float]) -> None:
        self.trackio.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()


WRITERS = {"tensorboard": TensorBoardWriter, "trackio": TrackioWriter}


def open_writers(report_to: list[str], output_dir, run_name: str, config: dict) -> list:
    """One writer per name in report_to ("none" alone: no writer)."""
    unknown = [name for name in report_to if name not in REPORTERS]
    if unknown or ("none" in report_to and len(report_to) > 1):
        raise DeloraVizError(
            f"--report_to takes {', '.join(REPORTERS)} (or several, comma-separated), got {report_to}",
            field="report_to",
        )
    return [WRITERS[name](output_dir, run_name, config) for name in dict.fromkeys(report_to) if name != "none"]
