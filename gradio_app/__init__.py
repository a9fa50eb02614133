"""The Gradio app's parts: one module per tab, what the tabs share, and the server helper.

``app_gradio.py`` (the entry point) parses the arguments, loads the models and calls
:func:`gradio_app.app.build_app`. Nothing here is imported by the libraries; the per-request
work without any UI lives in :mod:`seggpt.serving` and :mod:`painter.promptable.serving`, the
output files and colours in :mod:`seggpt.output`. Importing this package alone does not import
Gradio (``gradio_app.server`` is used by test and benchmark clients).
"""
