"""Serve SegGPT as a Label Studio ML backend: brush-label predictions from a few examples.

    python -m tools.label_studio_backend --examples my_examples/ --port 9090 \
        --document-root /data/photos
    python -m tools.label_studio_backend --example a.jpg a_mask.png \
        --label-studio-url http://localhost:8080 --api-key $LABEL_STUDIO_API_KEY

Then connect it to a Label Studio project: ``POST /api/ml`` with ``{"url":
"http://<this host>:9090", "project": <id>}`` (see the README). The project's labelling config
needs a ``BrushLabels`` tag with a label per class name, as ``tools.label``'s
``label_studio_config.xml`` has. Images under ``/data/local-files/?d=`` are read from
``--document-root`` (Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``) when given; others are
fetched from Label Studio with the API key (or the address and token that Label Studio sends
when it connects).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from painter.config import SegType
from painter.errors import InputMismatchError
from seggpt.labelling import labelstudio
from seggpt.labelling.inputs import load_examples, named_classes
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.ml_backend import BackendServer, LabelStudioBackend
from seggpt.labelling.task_images import TaskImages
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from tools.cli import (
    add_examples_arguments,
    add_model_arguments,
    add_seggpt_arguments,
    positive_int,
    run_cli,
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seggpt-label-studio-backend", description=__doc__.splitlines()[0]
    )
    add_examples_arguments(parser)
    add_model_arguments(parser)
    add_seggpt_arguments(parser, what="examples")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9090, help="port (default 9090; 0: any)")
    parser.add_argument(
        "--document-root", type=Path, help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, if local"
    )
    parser.add_argument("--label-studio-url", help="Label Studio's address for uploaded images")
    parser.add_argument("--api-key", help="a Label Studio API token (Account & Settings)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per pass")
    return parser


def build_backend(args: argparse.Namespace) -> LabelStudioBackend:
    """The backend the arguments describe: model, examples, class names, image sources."""
    if not (args.example or args.examples):
        raise InputMismatchError("give examples: --example IMAGE MASK or --examples DIR")
    if args.document_root is not None and not args.document_root.is_dir():
        raise InputMismatchError(f"--document-root {args.document_root} is not a folder")
    examples = load_examples(args.example, args.examples)
    names = named_classes(examples.class_names, args.class_names)
    predictor = SegGPTPredictor(
        load_model(args.checkpoint),
        device=args.device,
        dtype=args.dtype,
        seg_type=SegType[args.seg_type.upper()],
    )
    labeller = Labeller.from_examples(
        predictor, examples.images, examples.masks, class_names=names, ensemble=args.ensemble
    )
    images = TaskImages(args.document_root, args.label_studio_url, args.api_key)
    version = f"{labelstudio.MODEL_VERSION}-{examples.digest()[:8]}"
    return LabelStudioBackend(labeller, images, model_version=version, batch_size=args.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: serve(args), log_level=logging.INFO)


def serve(args: argparse.Namespace) -> None:
    """Serve until interrupted."""
    backend = build_backend(args)
    with BackendServer(backend, host=args.host, port=args.port) as server:
        labels = ", ".join(backend.labeller.class_names.values())
        print(f"Label Studio ML backend at {server.url} (labels: {labels}); Ctrl-C stops it")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            logger.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
