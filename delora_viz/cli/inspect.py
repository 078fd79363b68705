"""`delora-viz inspect`: saved PEFT adapters, measured on their base model, side by side.

    delora-viz inspect out/lora out/delora -o inspect/               # bases from adapter_config.json
    delora-viz inspect my-adapter --base_model ./base-model --device cpu

For each adapter (a folder, or a Hub id in the local cache): loads it onto its base, prints one line per
layer and, with -o, writes adapters.csv (the Tracker's columns + adapter + sv_1..sv_k) and layer_bars.png,
layer_heatmap.png, spectrum.png. The numbers are the Tracker's (instruments/inspect.py): the same as the last
record of the run that trained the adapter. Every adapter is loaded before anything is written; those that
fail get one line each and exit code 2, and nothing is written.
"""

from __future__ import annotations

import sys

from ..errors import DeloraVizError
from .plot import check_output_dir, figure_writers, report, write_atomically

TABLE_NAME = "adapters.csv"
SHOWN = {  # column -> header of the printed summary
    "layer": "layer",
    "method": "method",
    "rank": "r",
    "delta_fro": "||dW||",
    "rel_delta": "||dW||/||W||",
    "angle_delta_w_deg": "ang(dW,W)",
    "angle_w_prime_deg": "ang(W',W)",
    "bound": "bound",
    "bound_ratio": "/bound",
    "lambda": "lambda",
    "sv_1": "sigma_1",
    "dora_mag_drift": "dora_drift",
}


def add_parser(sub):
    p = sub.add_parser("inspect", help="measure saved PEFT adapters (LoRA, rsLoRA, DoRA, DeLoRA) on their base model")
    p.add_argument("adapters", nargs="+", metavar="ADAPTER", help="adapter folder (or a Hub id already cached)")
    p.add_argument("--base_model", default=None, help="base model folder or Hub id (default: from adapter_config.json)")
    p.add_argument("-o", "--output_dir", default=None, metavar="DIR", help=f"write {TABLE_NAME} and the PNGs here")
    p.add_argument("--device", default="cpu", help="where to load the models (default: cpu)")
    p.add_argument("--top_k", type=int, default=8, help="singular values kept per layer (default: 8)")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    import pandas as pd

    from ..training.load_adapter import inspect_adapter
    from ..training.models import pick_device

    pick_device(args.device)  # an unknown or absent device: one error, before loading anything
    if args.output_dir is not None:
        check_output_dir(args.output_dir)
    inspected, errors = [], []
    for spec in args.adapters:
        try:
            inspected.append(inspect_adapter(spec, args.base_model, args.device, args.top_k))
        except (DeloraVizError, FileNotFoundError) as err:
            errors.append(str(err) if str(err).startswith(str(spec)) else f"{spec}: {err}")
    if errors:
        return report(errors)
    for item, label in zip(inspected, _unique([i.label for i in inspected])):
        item.frame["adapter"] = label
        print(f"\n{label}: {item.peft_type} adapter on {item.base_model} ({len(item.frame)} layers)")
        print(summary_table(item.frame))
    frame = pd.concat([i.frame for i in inspected], ignore_index=True)
    if args.output_dir is None:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    from ..plots.adapters import adapter_figures

    writers = {TABLE_NAME: lambda path: frame.to_csv(path, index=False)}
    writers.update(figure_writers(adapter_figures(frame)))
    written = write_atomically(args.output_dir, writers)
    print(f"\n{len(written)} files in {args.output_dir}:", *[p.name for p in written], file=sys.stderr)
    return 0


def summary_table(rows) -> str:
    """The per-layer lines printed for one adapter: a few columns, 4 significant digits, blanks for NaN."""
    shown = rows[[c for c in SHOWN if c in rows.columns]].rename(columns=SHOWN)
    return shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")


def _unique(labels: list[str]) -> list[str]:
    """Two folders both named 'adapter' become 'adapter' and 'adapter (2)'."""
    out, seen = [], {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out
