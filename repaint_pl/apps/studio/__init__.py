"""RePaint Studio: a local web page to paint a mask, watch RePaint's trajectory and branch from any kept step.

``python -m repaint_pl.apps.studio [--host 127.0.0.1] [--port 7860] [eval.py model flags]``.
"""
