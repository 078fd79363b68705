"""delora-viz in the browser: `python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth USER:PASS] ...`.

The same app and flags as `delora-viz app` (from an install) and `python -m delora_viz.app`; this file is
the entry point of a clone and of a Hugging Face Space (`delora-viz space DIR` writes one).
Thin on purpose: the app lives in delora_viz/app/. Building `demo` loads nothing; models load on Train.
"""

from delora_viz.app.layout import build_demo
from delora_viz.app.serve import main

demo = build_demo()

if __name__ == "__main__":
    main()
