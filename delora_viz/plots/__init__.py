"""Figures (matplotlib; every function returns a Figure, no pyplot state) and the long-format frames
the app's live plots read (frames.py)."""

from .figures import plot_angles, plot_lambda, plot_loss, plot_update_norm, save_figures
from .layers import plot_angle_strength, plot_bound_heatmap, plot_singular_values, plot_turn_strength
from .sweep import plot_lr_sweep, plot_sweep_norms

__all__ = [
    "plot_angle_strength",
    "plot_angles",
    "plot_bound_heatmap",
    "plot_lambda",
    "plot_loss",
    "plot_lr_sweep",
    "plot_singular_values",
    "plot_sweep_norms",
    "plot_turn_strength",
    "plot_update_norm",
    "save_figures",
]
