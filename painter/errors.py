"""Typed exceptions raised by the framework.

Every error a user can cause (a bad file, a wrong checkpoint, mismatched inputs) is one of these,
with a message that says what to fix. They subclass ``ValueError`` (or ``OSError`` for files) so
callers that already catch the builtin types keep working.
"""

from __future__ import annotations


class PainterError(Exception):
    """Base class of every error the framework raises on purpose."""


class ConfigError(PainterError, ValueError):
    """A model, data or training configuration is inconsistent."""


class InvalidImageError(PainterError, ValueError):
    """An image could not be read or has a form that cannot be used."""


class InvalidMaskError(PainterError, ValueError):
    """A mask is empty, has the wrong size, or cannot be turned into classes."""


class InputMismatchError(PainterError, ValueError):
    """Inputs that must agree (counts, sizes) do not."""


class CheckpointError(PainterError, ValueError):
    """A checkpoint is unreadable, of another model, or has missing/unexpected keys."""


class DatasetError(PainterError, ValueError):
    """A dataset folder or mixture is malformed."""


class InvalidVideoError(InvalidImageError):
    """A video or frame folder cannot be decoded, or its frames disagree in size."""


class MissingDependencyError(PainterError, ImportError):
    """An optional package that a feature needs is not installed."""


def missing_dependency(package: str, extra: str, feature: str) -> MissingDependencyError:
    """The error for a missing optional ``package`` (its pip name), naming the extra of
    ``painter-seggpt`` that installs it; raise it ``from`` the ImportError."""
    return MissingDependencyError(
        f"{feature} needs {package}, which is not installed: pip install "
        f"'painter-seggpt[{extra}]' (or pip install {package})"
    )
