"""The runner shared by the app, the notebooks and the CLI (`pip install "delora-viz[app]"`):
the config (the one home of every default), the method registry, model and data loading, the loop."""

from .comparisons import compare, iter_compare, iter_lr_sweep, lr_sweep, sweep_frame
from .config import TrainConfig
from .loop import Prepared, RunResult, StepEvent, iter_train, prepare, train
from .methods import METHODS, Method, get_method

__all__ = [
    "METHODS",
    "Method",
    "Prepared",
    "RunResult",
    "StepEvent",
    "TrainConfig",
    "compare",
    "get_method",
    "iter_compare",
    "iter_lr_sweep",
    "iter_train",
    "lr_sweep",
    "prepare",
    "sweep_frame",
    "train",
]
