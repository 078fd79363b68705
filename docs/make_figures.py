"""Make the figures the README shows, from computations this script runs itself (fixed seeds).

    python docs/make_figures.py            # the full-mode computations (~5-15 min on 2 CPU cores)
    python docs/make_figures.py --quick    # a few steps only, to check the script (figures not for the README)

Writes into docs/ (or --out):

- update_norm_vs_bound.png: ||dW||_F over training for LoRA, DoRA and DeLoRA on the embedded MiniLM + BBC News
  (notebook 04's full-mode comparison: 60 steps, rank 8, lambda 5), with DeLoRA's bound dashed;
- angle_strength.png: the same runs as direction (angle to W) vs strength (||dW|| / ||W||);
- bound_explorer.png: notebook 01's slider figure at its defaults and in the adversarial case;
- angle_vs_factor_scale.png: notebook 02's slider figure on MiniLM's first query projection.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent


def uneven_weight(seed: int = 0) -> torch.Tensor:
    """Notebook 01's weight: a 48 x 64 nn.Linear with column norms spread over ~30x."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(64, 48)
    with torch.no_grad():
        layer.weight.mul_(torch.logspace(-1, 0.5, 64))
    return layer.weight.detach()


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few training steps: checks the script only")
    parser.add_argument("--out", default=str(HERE), help="folder for the PNGs (default: docs/)")
    args = parser.parse_args(argv)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")  # everything is embedded: never reach for the Hub

    from delora_viz import plots
    from delora_viz.plots import angle_explorer, bound_explorer
    from delora_viz.training import compare, prepare
    from delora_viz.training.config import TrainConfig
    from delora_viz.training.models import load_model

    start = time.perf_counter()
    figures = {}
    weight = uneven_weight()
    figures["bound_explorer"] = bound_explorer.plot_bound_explorer(
        weight, delora_lambda=2.0, r=4, init="peft", alignment=0.6
    )
    query = load_model("minilm").model.get_submodule("bert.encoder.layer.0.attention.self.query").weight
    figures["angle_vs_factor_scale"] = angle_explorer.plot_angle_explorer(query, sigma=0.1, delora_lambda=5.0, r=8)

    quick = TrainConfig(max_steps=4, eval_every=4, eval_examples=16)
    config = quick if args.quick else TrainConfig(max_steps=60, eval_every=20)  # notebook 04's full mode
    prepared = prepare(config)
    results = compare(["lora", "dora", "delora"], config, prepared)
    tracked = pd.concat([r.tracker_frame() for r in results.values()], ignore_index=True)
    delora = tracked[tracked["method"] == "delora"]
    if not (delora["delta_fro"] <= delora["bound"] * (1 + 1e-5)).all():
        raise AssertionError("DeLoRA's update crossed its bound: the figure would be wrong")
    figures["update_norm_vs_bound"] = plots.plot_update_norm(tracked)
    figures["angle_strength"] = plots.plot_angle_strength(tracked)

    paths = plots.save_figures(figures, args.out, dpi=100)
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    accuracy = {name: round(float(r.final["eval_metric"]), 3) for name, r in results.items()}
    print(f"accuracy after {config.max_steps} steps: {accuracy} (before: {prepared.baseline:.3f})")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return paths


if __name__ == "__main__":
    main()
