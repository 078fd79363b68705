"""The instruments that measure an adapter while it trains: one view over every adapted layer
(`adapters.py`), the batched metrics engine (`measure.py`) and the same engine on one layer
(`one_layer.py`), the `Tracker` (`track.py`), history files (`history.py`), row-sharded models
(`distributed.py`), `TrackerCallback` for transformers' Trainer (`callback.py`, loads transformers),
`inspect_model` (`inspect.py`) and the dense float64 references (`dense.py`). Imports flow one way:
instruments -> delora, never back. Nothing here imports gradio, matplotlib, datasets or the embedded
model/data packages."""

from .adapters import AdapterView, find_adapters
from .history import COLUMNS, load_history
from .inspect import inspect_model
from .one_layer import dora_update_stats, update_geometry
from .track import Tracker

__all__ = [
    "COLUMNS",
    "AdapterView",
    "Tracker",
    "dora_update_stats",
    "find_adapters",
    "inspect_model",
    "load_history",
    "update_geometry",
]
