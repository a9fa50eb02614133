"""The manifest that lets a killed labelling run resume where it stopped.

``OUT/labelling.json`` holds the run's fingerprint (model, examples, options, image list); a run
that finds another run's fingerprint there refuses to start, and one that finds its own starts
only with ``resume=True``. Each process appends one JSON line per finished image to
``OUT/manifest/rank-<r>.jsonl`` *after* the image's files are written, and flushes it to disk;
a run that resumes skips every image with a line, whichever process wrote it. A line cut short
by a kill is ignored (its image is labelled again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from painter.checkpoint import atomic_write
from painter.errors import ConfigError

RUN_FILE = "labelling.json"
MANIFEST_DIR = "manifest"
VERSION = 1


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def start_run(out: Path, fingerprint: Mapping[str, Any], *, resume: bool) -> None:
    """Write ``out/labelling.json`` for a new run, or check it for a resumed one.

    Raises:
        ConfigError: the folder holds another run's manifest, or this run's without ``resume``.
    """
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))["fingerprint"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(
                f"{run_file} is not a labelling manifest ({err}); choose another --out folder"
            ) from err
        changed = _differences(old, json.loads(json.dumps(fingerprint)))
        if changed:
            raise ConfigError(
                f"{out} holds another labelling run (it differs in: {', '.join(changed)}); "
                "choose another --out folder, or rerun with that run's settings"
            )
        if not resume:
            raise ConfigError(
                f"{out} already holds this labelling run; pass --resume to finish it, or choose "
                "another --out folder"
            )
        return
    if (out / MANIFEST_DIR).exists():
        raise ConfigError(f"{out / MANIFEST_DIR} exists without {RUN_FILE}; choose another --out")
    text = json.dumps({"version": VERSION, "fingerprint": fingerprint}, indent=1)
    atomic_write(run_file, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class ManifestReader:
    """The finished images' records of all processes' manifest files, read from disk when
    asked for: only each record's file and byte offset stay in memory, so merging a run of any
    size holds one record at a time.

    >>> with ManifestReader(out) as records:
    ...     done = set(records.indices)
    ...     first = records[0]
    """

    def __init__(self, out: Path) -> None:
        self._where: dict[int, tuple[Path, int]] = {}
        self._files: dict[Path, Any] = {}
        folder = out / MANIFEST_DIR
        for path in sorted(folder.glob("rank-*.jsonl")) if folder.is_dir() else ():
            offset = 0
            with open(path, "rb") as f:
                for line in f:
                    index = _record_index(line)
                    if index is not None:
                        self._where[index] = (path, offset)  # a later line wins
                    offset += len(line)

    @property
    def indices(self) -> list[int]:
        return sorted(self._where)

    def __contains__(self, index: object) -> bool:
        return index in self._where

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, offset = self._where[index]
        if path not in self._files:
            self._files[path] = open(path, "rb")
        f = self._files[path]
        f.seek(offset)
        return json.loads(f.readline())

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> ManifestReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record_index(line: bytes) -> int | None:
    """The image index of a manifest line; None for the tail of a killed write."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(record, dict) and isinstance(record.get("index"), int):
        return record["index"]
    return None


class ManifestWriter:
    """Appends records to one process's manifest file, each flushed and synced to disk."""

    def __init__(self, out: Path, rank: int) -> None:
        path = out / MANIFEST_DIR / f"rank-{rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+", encoding="utf-8")
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:  # end a line a kill may have cut short
            self._file.seek(self._file.tell() - 1)
            if self._file.read(1) != "\n":
                self._file.write("\n")

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
