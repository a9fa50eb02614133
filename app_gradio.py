"""Gradio app: segment images from example image+mask pairs, in the browser or through an API.

    python app_gradio.py [--checkpoint demo] [--host 127.0.0.1] [--port 7860] [--device auto]
        [--dtype auto] [--concurrency 1]

One predictor is loaded at start and every request runs on it through Gradio's queue. The UI is
thin: each endpoint calls a small function of ``seggpt.serving`` that takes arrays (or file paths)
and returns arrays (or file paths), so the logic is tested without Gradio. Scripts call the named
endpoints (``/segment``, ``/example_files``, ``/model_info``, ...) with ``gradio_client``; see
the README's "App" section. The tabs are the modules of ``tools/app/``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from seggpt import SegGPTPredictor, load_model
from tools.cli import add_model_arguments, run_cli

if TYPE_CHECKING:
    from painter.promptable import PromptablePredictor


def build_parser() -> argparse.ArgumentParser:
    """The app's flags: the model (``tools.cli.add_model_arguments``), where to serve, extras."""
    parser = argparse.ArgumentParser(prog="app_gradio", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (%(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    parser.add_argument(
        "--promptable",
        default="auto",
        help="promptable model for the Promptable tab: 'demo' (bundled), a SAM .pth, a "
        "transformers folder or our .safetensors; 'none' to leave it out; 'auto' (default): the "
        "bundled one when it is there",
    )
    parser.add_argument(
        "--tuned-prompt",
        action="append",
        default=[],
        metavar="FILE",
        help="a tuned prompt (tools.tune) to offer in the Tuned-prompt tab; repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests the model runs at once; the rest wait in the queue (default %(default)s)",
    )
    return parser


def load_promptable(choice: str, device: str, dtype: str) -> PromptablePredictor | None:
    """The PromptablePredictor that ``--promptable`` names, or None."""
    from painter.promptable import DEMO_PROMPTABLE, PromptablePredictor, build_sam

    if choice == "none" or (choice == "auto" and not DEMO_PROMPTABLE.is_file()):
        return None
    checkpoint = "demo" if choice == "auto" else choice
    return PromptablePredictor(build_sam(checkpoint=checkpoint), device=device, dtype=dtype)


def serve(args: argparse.Namespace) -> None:
    """Load the models ``args`` name, build the app and serve it until interrupted."""
    predictor = SegGPTPredictor(load_model(args.checkpoint), device=args.device, dtype=args.dtype)
    promptable = load_promptable(args.promptable, args.device, args.dtype)
    from tools.app.app import build_app  # imported here: Gradio loads only to serve

    demo = build_app(predictor, tuned_prompts=args.tuned_prompt, promptable=promptable)
    demo.queue(default_concurrency_limit=args.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, max_file_size="50mb")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.concurrency < 1:
        print("error: --concurrency must be >= 1", file=sys.stderr)
        return 2
    return run_cli(lambda: serve(args), log_level=logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
