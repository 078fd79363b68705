"""The Gradio app (`python app.py`): layout (widgets), handlers, per-session state, results."""
