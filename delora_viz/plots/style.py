"""The figures' shared style: rc settings applied per call (no global state), new axes, legends."""

from __future__ import annotations

import functools

import matplotlib
from matplotlib.figure import Figure

_STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
}
NORM = r"$\|\Delta W\|_F$"


def styled(fn):
    """Run a plot function under the package style (a temporary rc_context, no global change)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return fn(*args, **kwargs)

    return wrapper


def new_axes(ax, ncols: int = 1, width: float = 6.4, height: float = 4.2):
    """New figure with ``ncols`` axes, or the given ``ax``. Returns (figure, list of axes)."""
    if ax is not None:
        return ax.figure, [ax]
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def legend(ax, handles=None, labels=None) -> None:
    """Legend inside when short; outside on the right when long (always, for polar)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) > 5 or getattr(ax, "name", "") == "polar":  # a half disc's top is at 0.75
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 0.75 if ax.name == "polar" else 1.0))
    else:
        ax.legend(handles, labels, loc="best")
