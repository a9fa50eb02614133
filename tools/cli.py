"""What every command-line tool shares: one-line errors with exit code 2, argparse number types,
the model, device and dtype options."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from painter.devices import DTYPE_CHOICES
from painter.errors import PainterError


def run_cli(run: Callable[[], object], *, log_level: int = logging.WARNING) -> int:
    """Call ``run``; a PainterError (or an OSError from writing outputs) becomes one readable
    ``error: ...`` line on stderr and exit code 2 instead of a traceback. Log records at
    ``log_level`` and above go to stderr."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        run()
    except (PainterError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive_int = _at_least(1)
non_negative_int = _at_least(0)


def add_dtype_argument(parser: argparse.ArgumentParser, *, note: str = "") -> None:
    """The ``--dtype`` option every inference entry point shares (default ``auto``)."""
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="compute dtype; auto (default): bfloat16 where the device runs it natively (a GPU "
        "with bf16, a CPU with AVX512-BF16/AMX), else float32" + (f" ({note})" if note else ""),
    )


def add_device_argument(parser: argparse.ArgumentParser, *, default: str = "auto") -> None:
    """The ``--device`` option of every tool."""
    parser.add_argument(
        "--device", default=default, help=f"auto, cpu, cuda or cuda:N (default {default})"
    )


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    checkpoint_help: str = "'demo' (bundled), a .safetensors/.pth file, a transformers folder or "
    "a hub id",
    checkpoint_default: str | None = "demo",
    dtype: bool = True,
    dtype_note: str = "",
) -> None:
    """``--checkpoint``, ``--device`` and (unless ``dtype`` is False) ``--dtype``: which model
    to load and where to run it, as every entry point spells them."""
    default_note = f" (default {checkpoint_default})" if checkpoint_default else ""
    parser.add_argument(
        "--checkpoint", default=checkpoint_default, help=checkpoint_help + default_note
    )
    add_device_argument(parser)
    if dtype:
        add_dtype_argument(parser, note=dtype_note)


def add_seggpt_arguments(parser: argparse.ArgumentParser, *, what: str = "prompts") -> None:
    """``--ensemble`` and ``--seg-type``: how several examples combine, and SegGPT's type token."""
    from painter.config import SegType
    from seggpt.ensemble import EnsembleMode

    parser.add_argument(
        "--ensemble",
        choices=[mode.value for mode in EnsembleMode],
        default="feature",
        help=f"how several {what} are combined (default %(default)s)",
    )
    parser.add_argument(
        "--seg-type",
        choices=[t.name.lower() for t in SegType],
        default="instance",
        help="SegGPT's type token (default %(default)s)",
    )


def add_examples_arguments(parser: argparse.ArgumentParser) -> None:
    """``--example IMAGE MASK`` (repeatable), ``--examples DIR`` and ``--class-names``."""
    parser.add_argument(
        "--example",
        nargs=2,
        action="append",
        default=[],
        metavar=("IMAGE", "MASK"),
        help="an example image and its mask (class ids, 0/255 or colours); repeatable",
    )
    parser.add_argument(
        "--examples",
        type=Path,
        help="a folder of examples: images/ + masks/ (+ classes.txt, line k naming class k)",
    )
    parser.add_argument(
        "--class-names", help="comma-separated names of class ids 1, 2, ... (default: classes.txt)"
    )
