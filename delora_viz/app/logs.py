"""Library noise kept out of the app's log, so what is left there is worth reading.

Known and harmless (each checked): transformers 5 warns that `is_gradient_checkpointing` is deprecated
every time PEFT wraps a model (dozens of FutureWarnings per comparison), and `datasets` logs an ERROR with
the server's temporary path for every upload its parser rejects (the app shows its own one-line message).
Anything else still reaches the log.
"""

from __future__ import annotations

import logging
import warnings

KNOWN_WARNINGS = ((FutureWarning, r"`is_gradient_checkpointing` is deprecated"),)
QUIET_LOGGERS = ("datasets.packaged_modules", "datasets.builder")


def quiet_library_logs() -> None:
    """Install the filters (idempotent: warnings dedups identical filters)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:  # a rejected upload: the app says it in its own words
        logging.getLogger(name).setLevel(logging.CRITICAL)
