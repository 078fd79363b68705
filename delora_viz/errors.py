"""Argument checks shared by the library, the runner, the CLI and the app (one wording everywhere)."""

from __future__ import annotations


def check_int(name: str, value, minimum: int = 1, hint: str = "") -> int:
    """`value` if it is an int (not a bool) >= `minimum`, else ValueError naming `name` and the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{hint}, got {value!r}")
    return value
