"""What every command-line tool shares: one-line errors with exit code 2, argparse number types,
the model, device and dtype options."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

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
