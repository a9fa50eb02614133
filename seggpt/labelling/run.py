"""Label a whole image list: streamed, resumable, sharded over processes, merged at the end.

:func:`label_images` is what ``tools.label`` runs in every process. Images stream through a
``torch.utils.data.DataLoader`` (decoded in its workers) in fixed batches of consecutive images,
batch ``b`` on rank ``b % world_size``; each finished image's PNGs are written, then its
manifest line (``seggpt.labelling.manifest``). A resumed or sharded run computes exactly the
batches one uninterrupted process would (a batch's numbers can depend on its other members in
the last bits, which can flip a pixel). At the end rank 0 merges every process's manifest into
the COCO file, the Label Studio tasks and the review files (:func:`merge_outputs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from painter.errors import InputMismatchError
from seggpt.labelling.exports import LOCAL_FILES_PREFIX, MASKS_DIR, image_record, write_exports
from seggpt.labelling.inputs import ImageDataset, ImageRef
from seggpt.labelling.labeller import Labeller
from seggpt.labelling.manifest import ManifestReader, ManifestWriter, start_run
from seggpt.outputs import write_prediction

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one process did: images labelled now, found done, failed (file name, error)."""

    labelled: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.labelled / self.seconds if self.seconds > 0 else 0.0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _shard_batches(count: int, rank: int, world: int, batch_size: int) -> list[list[int]]:
    """Batch ``b`` of the whole list (``batch_size`` consecutive images) goes to rank
    ``b % world``: every image is computed in the same batch whatever the number of processes,
    so sharded and resumed runs write the same files as one uninterrupted process."""
    batches = [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
    return batches[rank::world]


def label_images(
    refs: Sequence[ImageRef],
    out: str | Path,
    labeller: Labeller,
    *,
    fingerprint: Mapping[str, Any],
    resume: bool = False,
    batch_size: int = 4,
    num_workers: int = 2,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> RunSummary:
    """Label this process's shard of ``refs`` into ``out`` (see the module doc).

    Raises:
        ConfigError: ``out`` holds another run, or this one without ``resume``.
    """
    out = Path(out)
    if batch_size < 1 or num_workers < 0:
        raise InputMismatchError("batch_size must be >= 1 and num_workers >= 0")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        start_run(out, fingerprint, resume=resume)
    _barrier()
    if rank != 0:
        start_run(out, fingerprint, resume=True)  # rank 0 has written it; check it matches
    with ManifestReader(out) as records:
        done = set(records.indices)
    batches = _shard_batches(len(refs), rank, world_size, batch_size)
    todo = [batch for batch in batches if any(i not in done for i in batch)]
    summary = RunSummary(already_done=sum(i in done for b in batches for i in b))
    loader = DataLoader(
        ImageDataset(refs),
        batch_sampler=todo,
        collate_fn=list,
        num_workers=num_workers,
        persistent_workers=False,
    )
    total = sum(len(b) for b in batches)
    start = time.perf_counter()
    bar = tqdm(
        total=total,
        initial=summary.already_done,
        desc=f"labelling (rank {rank})" if world_size > 1 else "labelling",
        unit="image",
        disable=not progress,
    )
    with ManifestWriter(out, rank) as manifest, bar:
        for items in loader:
            readable = [(i, image) for i, image, error in items if image is not None]
            results = labeller.label([image for _, image in readable], batch_size=len(readable))
            for (index, image), result in zip(readable, results):
                if index not in done:
                    _write_image(out, refs[index], index, image, result, labeller, manifest)
                    summary.labelled += 1
            for index, _, error in items:
                if error is not None and index not in done:
                    manifest.write({"index": index, "key": refs[index].key, "error": error})
                    summary.failed.append((refs[index].file_name, error))
                    logger.warning("skipped %s: %s", refs[index].file_name, error)
            bar.update(sum(i not in done for i, _, _ in items))
    summary.seconds = time.perf_counter() - start
    _barrier()
    return summary


def _write_image(out, ref, index, image, result, labeller, manifest) -> None:
    write_prediction(out / MASKS_DIR, ref.name, result.mask, labeller.palette, image=image)
    h, w = result.mask.shape
    record = image_record(h, w, result.score, result.instances)
    manifest.write({"index": index, "key": ref.key, **record})


def merge_outputs(
    refs: Sequence[ImageRef],
    out: str | Path,
    class_names: Mapping[int, str],
    *,
    image_url_prefix: str = LOCAL_FILES_PREFIX,
) -> dict[str, Any]:
    """Write the COCO file, Label Studio tasks, class list and review files from every
    process's manifest (``seggpt.labelling.exports.write_exports``). Call once every image has
    a record."""
    out = Path(out)
    with ManifestReader(out) as records:
        missing = [refs[i].file_name for i in range(len(refs)) if i not in records]
        if missing:
            raise InputMismatchError(
                f"{len(missing)} images have no manifest record yet (first: {missing[0]}); run "
                "the labelling with --resume to finish them before merging"
            )
        labelled, failed = [], []
        for i in range(len(refs)):
            error = records[i].get("error")
            if error is None:
                labelled.append(i)
            else:
                failed.append((refs[i].file_name, error))
        items = _RecordItems(refs, labelled, records)
        return write_exports(
            out, items, class_names, failed=failed, image_url_prefix=image_url_prefix
        )


class _RecordItems(Sequence):
    """(image ref, record) of the labelled images, each record read from the manifest when
    iterated over (several passes read it again rather than hold it)."""

    def __init__(self, refs: Sequence[ImageRef], indices: list[int], records: ManifestReader):
        self.refs, self.indices, self.records = refs, indices, records

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        i = self.indices[k]
        return self.refs[i], self.records[i]


def device_for_rank(device: str | None, local_rank: int) -> str | None:
    """The device of a process: ``cuda:<local rank>`` where CUDA is asked for (or auto and
    present) under ``torchrun``; the given device otherwise."""
    wants_cuda = device in (None, "auto") and torch.cuda.is_available() or device == "cuda"
    return f"cuda:{local_rank}" if wants_cuda else device
