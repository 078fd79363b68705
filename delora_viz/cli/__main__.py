"""`python -m delora_viz.cli ...` is `delora-viz ...`."""

import sys

from . import main

sys.exit(main())
