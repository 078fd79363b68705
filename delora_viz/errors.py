"""The one error class for the user's mistakes, and the argument checks shared by the library, the runner,
the CLI and the app (one wording everywhere).

    try:
        train(TrainConfig(max_steps=0))
    except DeloraVizError as err:
        print(err.field, err)          # "max_steps", "max_steps must be a positive integer, got 0"

`field` names the knob the message is about, in the library's words (a TrainConfig field, an argument
name); each front end shows its own label for it (the CLI its flag, the app its widget) without rewriting
the text. Every other exception is a bug (or the environment's) and keeps its traceback.
"""

from __future__ import annotations


class DeloraVizError(ValueError):
    """Bad input from the user: a value, a path's content, a combination of settings.

    A ValueError, so `except ValueError` keeps catching it; `field` is the knob it is about (or None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_int(field: str, value, minimum: int = 1, hint: str = "", label: str | None = None) -> int:
    """`value` if it is an int (not a bool) >= `minimum`, else DeloraVizError about `field` (called `label`
    in the message, `field` by default) that says the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise DeloraVizError(f"{label or field} must be {what}{hint}, got {value!r}", field=field)
    return value
