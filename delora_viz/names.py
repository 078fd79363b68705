"""The methods by name: the one vocabulary of the API, the CLI, the app, the history files and the plots.

A method's name says how its update is built; its family says which formula measures it:

    family   methods                                        the update
    lora     lora, rslora                                   dW = s B A            (s = alpha/r; rsLoRA alpha/sqrt(r))
    dora     dora                                           W' = mag * (W + s B A) / ||W + s B A||  (per output row)
    delora   delora, delora-paper, delora-fixed-lambda      dW = (lambda/r) B Xi A diag(||W[:, j]||)
                                                            (the paper init minus its frozen copy's term)

delora-paper is DeLoRA with the paper's init (our DeLoRALinear(init="paper")); delora-fixed-lambda trains A and
B only, and the Tracker, which sees a DeLoRA layer either way, records it as "delora".
"""

from __future__ import annotations

LABELS = {  # name -> how legends, tables and prose spell it
    "lora": "LoRA",
    "rslora": "rsLoRA",
    "dora": "DoRA",
    "delora": "DeLoRA",
    "delora-fixed-lambda": "DeLoRA (λ fixed)",
    "delora-paper": "DeLoRA (paper init)",
}
FAMILY = {name: "dora" if name == "dora" else "delora" if name.startswith("delora") else "lora" for name in LABELS}
TRACKED = ("lora", "rslora", "dora", "delora", "delora-paper")  # what the Tracker tells apart in its rows


def label(name: str) -> str:
    """A method's usual spelling ("delora" -> "DeLoRA"); any other run name is returned as given."""
    return LABELS.get(str(name), str(name))
