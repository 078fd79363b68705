"""Runs from files: tracker histories (and loss logs) read, labelled and drawn as the app's figures.

    tracker_df, loss_df = load_runs(["lora/delora_history.jsonl", "delora/delora_history.jsonl"])
    figs = run_figures(tracker_df, loss_df)          # {"update_norm": Figure, "angles": ..., ...}

Files: a tracker history (.jsonl or .csv with instruments/history.py's COLUMNS: the Tracker, TrackerCallback, the
CLI, the app's download) or a loss log: a .csv/.jsonl with `step` and `loss` (the app's per-step log) or a
Trainer's trainer_state.json. A callback history has no loss: the trainer_state.json beside it (or in the
newest checkpoint-N/ beside it) gives it. Each run is labelled by its file (the folder's name for the
generic delora_history / trainer_state names), or by the file's own `run` column when it holds several.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..errors import DeloraVizError
from ..instruments.history import COLUMNS, OPTIONAL, load_history
from .figures import plot_angles, plot_lambda, plot_loss, plot_update_norm
from .frames import has_values, iter_runs, mean_by_step, method_style
from .layers import plot_angle_strength, plot_bound_heatmap
from .style import legend, new_axes, styled

GENERIC_STEMS = ("delora_history", "history", "tracker", "trainer_state", "log")
LOSS_COLUMNS = ("step", "loss")
REQUIRED = tuple(c for c in COLUMNS if c not in OPTIONAL)  # older histories lack the optional ones


class BadInputs(ValueError):
    """One line per file that could not be read; nothing was drawn."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def file_label(path: Path) -> str:
    """history.jsonl -> its folder's name (checkpoint-N with its parent); lora.csv -> "lora"."""
    path = Path(path)
    if path.stem.lower() not in GENERIC_STEMS and not path.stem.lower().startswith(GENERIC_STEMS):
        return path.stem
    folder = path.resolve().parent
    return f"{folder.parent.name}/{folder.name}" if folder.name.startswith("checkpoint-") else folder.name


def read_file(path: Path) -> tuple[str, pd.DataFrame]:
    """("history", tracker rows) or ("loss", step/loss rows); ValueError with one line saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        hint = "; for an adapter folder use `delora-viz inspect`" if (path / "adapter_config.json").is_file() else ""
        raise DeloraVizError(f"{path}: a folder, not a history file (delora_history.jsonl, a tracker .csv){hint}")
    if not path.is_file():
        raise DeloraVizError(f"{path}: no such file")
    if path.name == "trainer_state.json":
        return "loss", trainer_state_loss(path)
    if path.suffix not in (".csv", ".jsonl"):
        raise DeloraVizError(f"{path}: not a history (.jsonl or .csv) nor a trainer_state.json")
    try:  # a tracker history (any format version; the reader knows their header lines)
        return "history", load_history(path)
    except ValueError as err:
        history_error = str(err)
    try:  # else a per-step loss log (the app's loss-and-eval CSV)
        if path.suffix == ".jsonl":
            df = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        else:
            df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DeloraVizError(
            f"{path}: does not parse as {path.suffix[1:].upper()} ({str(err).splitlines()[0]})"
        ) from None
    if df.empty:
        raise DeloraVizError(f"{path}: has no rows")
    if all(c in df.columns for c in LOSS_COLUMNS):
        df = df.copy()
        df["method"] = df["method"].astype(str) if "method" in df else file_label(path)
        return "loss", df
    if "lacks the columns" in history_error:  # the reader parsed it as a history: its message is the precise one
        missing = history_error.split("lacks the columns ", 1)[1]
        raise DeloraVizError(
            f"{path}: not a tracker history (it lacks the columns {missing}) nor a loss log (step, loss)"
        )
    missing = [c for c in REQUIRED if c not in df.columns]
    raise DeloraVizError(f"{path}: not a tracker history (it lacks the columns {missing}) nor a loss log (step, loss)")


def trainer_state_loss(path: Path) -> pd.DataFrame:
    """Training loss (and eval loss) per step from a Trainer's trainer_state.json log_history."""
    try:
        logs = json.loads(Path(path).read_text())["log_history"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DeloraVizError(f"{path}: not a Trainer state file (no log_history: {err})") from None
    rows = [
        {"step": e["step"], "loss": e.get("loss", float("nan")), "eval_metric": e.get("eval_loss", float("nan"))}
        for e in logs
        if "step" in e and ("loss" in e or "eval_loss" in e)
    ]
    if not rows:
        raise DeloraVizError(f"{path}: its log_history has no loss")
    df = pd.DataFrame(rows).groupby("step", as_index=False).first()
    df["eval_name"] = "eval loss"
    df["method"] = file_label(path)
    return df


def beside(history: Path) -> Path | None:
    """The trainer_state.json beside a history, else the one of the newest checkpoint-N/ beside it."""
    folder = Path(history).parent
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json"
    checkpoints = sorted(
        (p for p in folder.glob("checkpoint-*/trainer_state.json") if re.fullmatch(r"checkpoint-\d+", p.parent.name)),
        key=lambda p: int(p.parent.name.split("-")[1]),
    )
    return checkpoints[-1] if checkpoints else None


def load_runs(paths, labels: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tracker frame, loss frame), both with a `run` column. BadInputs lists every file that failed."""
    paths = [Path(p) for p in paths]
    read, errors = [], []
    for path in paths:
        try:
            read.append((path, *read_file(path)))
        except ValueError as err:
            errors.append(str(err))
    if not errors and not any(kind == "history" for _, kind, _ in read):
        errors.append("no tracker history among the files (only loss logs): add a delora_history.jsonl or tracker CSV")
    if errors:
        raise BadInputs(errors)
    names = _unique([labels[i] if labels else file_label(p) for i, (p, _, _) in enumerate(read)])
    several = sum(kind == "history" for _, kind, _ in read) > 1
    tracker, losses = [], []
    for (path, kind, df), name in zip(read, names):
        df = df.assign(run=_runs(df, name, several))
        if kind == "history":
            tracker.append(df)
            state = beside(path)
            if state is not None and not any(p.resolve() == state.resolve() for p in paths):
                try:
                    loss = trainer_state_loss(state)
                except ValueError:
                    continue  # an unreadable state file beside a history: plot without the loss
                losses.append(loss.assign(run=df["run"].iloc[0], method=df["method"].iloc[0]))
        else:
            losses.append(df)
    tracker_df = pd.concat(tracker, ignore_index=True)
    loss_df = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame(columns=["run", "method", *LOSS_COLUMNS])
    return tracker_df, loss_df


def run_figures(tracker_df: pd.DataFrame, loss_df: pd.DataFrame | None = None) -> dict[str, Figure]:
    """The app's figures: update_norm, angles, lambda (DeLoRA runs), loss (when logged), direction,
    and heatmap_<run> per run (layer x step, ||dW|| / bound or / ||W||)."""
    figs = {"update_norm": plot_update_norm(tracker_df), "angles": plot_angles(tracker_df)}
    if has_values(tracker_df, "lambda"):
        figs["lambda"] = plot_lambda(tracker_df)
    if loss_df is not None and has_values(loss_df, "loss"):
        figs["loss"] = plot_loss(loss_df)
    figs["direction"] = plot_angle_strength(tracker_df)
    for run, _, _, _ in iter_runs(tracker_df):
        figs[f"heatmap_{run}"] = plot_bound_heatmap(tracker_df, run=run)
    return figs


@styled
def plot_eval(history_df: pd.DataFrame, ax=None) -> Figure:
    """Held-out metric (accuracy, or perplexity on a log scale) of each run at every evaluation: step 0
    (the base model), each eval step and the step a run stopped at. Each evaluation is a marker, so a run
    evaluated once still shows. Look for: does a bounded update learn the task as well as an unbounded one?"""
    require = [c for c in ("step", "method", "eval_metric") if c not in history_df.columns]
    if require or not has_values(history_df, "eval_metric"):
        raise ValueError("plot_eval: no evaluations in this log (eval_metric is empty)")
    fig, (ax,) = new_axes(ax, width=6.4, height=4.0)
    for run, method, rows, color in iter_runs(history_df):
        ev = mean_by_step(rows, "eval_metric").dropna()
        if not ev.empty:
            ax.plot(ev.index, ev.values, color=color, label=run, **method_style(str(method)))
    names = history_df["eval_name"].dropna().unique() if "eval_name" in history_df else []
    name = str(names[0]) if len(names) == 1 else "eval metric"
    if name == "perplexity":
        ax.set_yscale("log")
    ax.set(title=f"Held-out {name} at each evaluation", xlabel="step", ylabel=name)
    legend(ax)
    return fig


def _runs(df: pd.DataFrame, name: str, several_files: bool) -> pd.Series:
    """The file's label, or its own run names (prefixed by the label when there are several files)."""
    inner = df["run"] if "run" in df.columns else (df["method"] if "method" in df.columns else None)
    if inner is None or inner.astype(str).nunique() <= 1:
        return pd.Series(name, index=df.index)
    inner = inner.astype(str)
    return f"{name}: " + inner if several_files else inner


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out
