"""Convert a SegGPT/Painter checkpoint to another format, checking it loads strictly first.

    python -m tools.convert_checkpoint seggpt_vit_large.pth seggpt_vit_large.safetensors --to native
    python -m tools.convert_checkpoint BAAI/seggpt-vit-large seggpt_vit_large.pth --to official
    python -m tools.convert_checkpoint runs/demo/model.safetensors hf_demo/ --to hf

The source may be any checkpoint ``seggpt.load_model`` reads (native, official, a transformers
folder, a hub id, "demo"). Formats: ``native`` (one .safetensors file with the config inside),
``official`` (BAAI's ``{"model": ...}`` .pth; the config rides along under an extra key that BAAI's
code ignores), ``hf`` (a ``SegGptForImageSegmentation`` folder: config.json + model.safetensors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from painter.checkpoint import CheckpointFormat, save_hf, save_native, save_official
from painter.errors import CheckpointError
from seggpt.loading import load_model
from tools.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="checkpoint file, transformers folder, hub id or 'demo'")
    parser.add_argument("dst", type=Path, help="file (native, official) or folder (hf) to write")
    parser.add_argument(
        "--to",
        required=True,
        choices=[fmt.value for fmt in CheckpointFormat],
        help="format to write",
    )
    parser.add_argument("--variant", help="model variant the source must match")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def convert_and_tell() -> None:
        convert(args.src, args.dst, CheckpointFormat(args.to), variant=args.variant)
        print(f"wrote {args.dst} ({args.to})")

    return run_cli(convert_and_tell)


def convert(
    src: str | Path, dst: str | Path, fmt: CheckpointFormat, *, variant: str | None = None
) -> Path:
    """Read ``src``, load it strictly into a freshly built model, and write it as ``fmt``."""
    dst = Path(dst)
    _check_destination(dst, fmt)
    model, report = load_model(src, variant, return_report=True)
    state = model.state_dict()
    if fmt is CheckpointFormat.NATIVE:
        return save_native(model, dst, extra={"converted_from": report.format.value})
    if fmt is CheckpointFormat.OFFICIAL:
        return save_official(state, dst, config=model.config)
    return save_hf(state, model.config, dst)


def _check_destination(dst: Path, fmt: CheckpointFormat) -> None:
    """Refuse names that would be read back as another format."""
    if fmt is CheckpointFormat.HF:
        if dst.exists() and not dst.is_dir():
            raise CheckpointError(f"{dst} is a file; the hf format is a folder, name one")
        return
    if dst.is_dir():
        raise CheckpointError(f"{dst} is a folder; the {fmt.value} format is one file, name one")
    if fmt is CheckpointFormat.NATIVE and dst.suffix != ".safetensors":
        raise CheckpointError(
            f"{dst}: native checkpoints are safetensors files; name it *.safetensors"
        )
    if fmt is CheckpointFormat.OFFICIAL and dst.suffix == ".safetensors":
        raise CheckpointError(f"{dst}: official checkpoints are torch pickles; name it *.pth")


if __name__ == "__main__":
    sys.exit(main())
