"""`python -m delora_viz.app [flags]` is `delora-viz app [flags]` (and `python app.py [flags]` in a clone)."""

import sys

from .serve import main

sys.exit(main())
