"""delora-viz in the browser: `python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth USER:PASS]`.

Thin on purpose: the app lives in delora_viz/app/. Building `demo` loads nothing; models load on Train.
"""

from delora_viz.app.layout import build_demo
from delora_viz.app.serve import main

demo = build_demo()

if __name__ == "__main__":
    main()
