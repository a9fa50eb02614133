"""The Gradio app's parts: one module per tab, what the tabs share, and the server helper.

``app_gradio.py`` (the entry point) parses the arguments, loads the models and calls
:func:`tools.app.app.build_app`. Nothing here is imported by the libraries; the per-request
work without any UI lives in :mod:`seggpt.serving` and :mod:`painter.promptable.serving`, the
output files and colours in :mod:`seggpt.outputs`. Importing this package alone does not import
Gradio (``tools.app.server`` is used by test and benchmark clients).
"""
