"""Video object segmentation: propagate a first-frame mask through a video with SegGPT.

    python -m tools.vos --video clips/dogs.mp4 --first-mask clips/dogs_00000.png --out outputs/vos
    python -m tools.vos --davis data/DAVIS --imageset data/DAVIS/ImageSets/2017/val.txt \
        --out outputs/davis --overlay none
    python -m tools.vos --synthetic 0 --out outputs/vos     # a synthetic video (held-out families)

Each frame is prompted with the first frame and its mask plus the ``--memory`` latest frames and
their predictions (feature ensemble); a prediction joins that memory only if every object's area
stays within ``--admit-ratio`` of its first-frame area (0 admits every frame). Writes DAVIS-style
palette PNGs ``<out>/<video>/<frame>.png`` (the first frame's is the given mask) and an overlay
``<out>/<video>_overlay.gif`` (or .mp4), and reports frames per second.
Score the PNGs with ``python -m tools.eval_vos``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from data_mixtures.synthetic_video import (
    VIDEO_LOOKS,
    SyntheticVideoConfig,
    save_davis,
    synthetic_video,
    video_looks,
)
from painter.config import SegType
from painter.errors import DatasetError
from painter.io import overlay, save_index_mask
from seggpt.loading import load_model
from seggpt.predictor import SegGPTPredictor
from seggpt.video import DEFAULT_ADMIT_RATIO, DEFAULT_MEMORY, VideoSegmenter
from seggpt.video_io import OverlayFormat, OverlayWriter, VideoFrames
from tools.cli import (
    add_model_arguments,
    non_negative_int,
    positive_int,
    run_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seggpt-vos", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="a folder of frames or a video file")
    source.add_argument("--davis", type=Path, help="a DAVIS root: every sequence of --imageset")
    source.add_argument(
        "--synthetic", type=int, metavar="SEED", help="the bundled synthetic video of this seed"
    )
    parser.add_argument(
        "--looks",
        choices=VIDEO_LOOKS,
        default="held-out",
        help="with --synthetic: draw the objects from the open-set held-out families (default), "
        "the open-set training families, or the closed-set categories",
    )
    parser.add_argument("--first-mask", type=Path, help="objects in frame 0 (with --video)")
    parser.add_argument("--name", help="output folder name of --video (default: its stem)")
    parser.add_argument("--imageset", type=Path, help="DAVIS sequence list (default: all)")
    parser.add_argument("--resolution", default="480p", help="DAVIS resolution folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--memory",
        type=non_negative_int,
        default=DEFAULT_MEMORY,
        help="previous frames kept as prompts besides the first (default %(default)s)",
    )
    parser.add_argument(
        "--admit-ratio",
        type=float,
        default=DEFAULT_ADMIT_RATIO,
        help="a predicted frame joins the memory if every object's area is within this factor "
        "of its first-frame area; 0 admits every frame (default %(default)s)",
    )
    parser.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    parser.add_argument(
        "--overlay", choices=[f.value for f in OverlayFormat], default="gif", help="overlay video"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="overlay frame rate")
    parser.add_argument("--overwrite", action="store_true", help="redo finished DAVIS sequences")
    add_model_arguments(parser)
    parser.add_argument("--variant", help="model variant the checkpoint must match")
    parser.add_argument("--seg-type", choices=[t.name.lower() for t in SegType], default="instance")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


def collect_jobs(args: argparse.Namespace) -> list[tuple[str, VideoFrames, Path]]:
    """(name, frames, first-frame mask) of every video ``args`` names; checks inputs early."""
    if args.video is not None:
        if args.first_mask is None:
            raise DatasetError("--video needs --first-mask, the objects' mask of frame 0")
        frames = VideoFrames(args.video)
        return [(args.name or args.video.stem, frames, args.first_mask)]
    if args.synthetic is not None:
        config = SyntheticVideoConfig(looks=video_looks(args.looks))
        video = synthetic_video(config, seed=args.synthetic)
        root = save_davis(video, args.out / "synthetic_data", resolution=args.resolution)
        print(f"synthetic video and its ground truth: {root}")
        return davis_jobs(root, [video.name], args.resolution)
    names = None
    if args.imageset is not None:
        names = [line.strip() for line in args.imageset.read_text().splitlines() if line.strip()]
    return davis_jobs(args.davis, names, args.resolution)


def davis_jobs(
    root: Path, names: list[str] | None, resolution: str
) -> list[tuple[str, VideoFrames, Path]]:
    """DAVIS sequences: frames in JPEGImages/<res>/<seq>, masks in Annotations/<res>/<seq>."""
    images, annotations = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    for folder in (images, annotations):
        if not folder.is_dir():
            raise DatasetError(f"{root} lacks the folder {folder.relative_to(root)}/")
    names = names if names is not None else sorted(p.name for p in images.iterdir() if p.is_dir())
    jobs = []
    for name in names:
        frames = VideoFrames(images / name)
        first_mask = annotations / name / f"{frames.name(0)}.png"
        if not first_mask.is_file():
            raise DatasetError(f"sequence {name}: first-frame mask {first_mask} is missing")
        jobs.append((name, frames, first_mask))
    return jobs


def run(args: argparse.Namespace) -> None:
    jobs = collect_jobs(args)  # input errors surface before the model loads
    todo = [job for job in jobs if args.overwrite or not _finished(args.out / job[0], job[1])]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} finished sequence(s) kept; --overwrite redoes them")
    if not todo:
        return
    predictor = SegGPTPredictor(
        load_model(args.checkpoint, args.variant),
        device=args.device,
        dtype=args.dtype,
        seg_type=SegType[args.seg_type.upper()],
    )
    segmenter = VideoSegmenter(
        predictor, memory_size=args.memory, admit_ratio=args.admit_ratio or None
    )
    total_frames, total_seconds = 0, 0.0
    for name, frames, first_mask in todo:
        count, seconds = segment_video(segmenter, name, frames, first_mask, args)
        total_frames, total_seconds = total_frames + count, total_seconds + seconds
        print(f"{name}: {count + 1} frames -> {args.out / name} ({count / seconds:.2f} frames/s)")
    if total_seconds > 0:
        rate = total_frames / total_seconds
        print(f"segmented {total_frames} frames in {total_seconds:.1f} s: {rate:.2f} frames/s")


def segment_video(
    segmenter: VideoSegmenter,
    name: str,
    frames: VideoFrames,
    first_mask: Path,
    args: argparse.Namespace,
) -> tuple[int, float]:
    """Write one video's masks (and overlay); returns (frames predicted, seconds spent on them)."""
    out = args.out / name
    writer = None
    if args.overlay != OverlayFormat.NONE.value:
        writer = OverlayWriter(
            args.out / f"{name}_overlay.{args.overlay}", args.overlay, fps=args.fps
        )
    limit = args.max_frames or None  # None: to the end, whatever the container's frame count
    expected = len(frames) if limit is None else min(limit, len(frames))
    iterator = iter(frames)
    first = next(iterator)
    state = segmenter.start(first, first_mask)
    palette = state.display_palette
    _write(out, frames.name(0), first, state.first.mask, palette, writer)
    seconds, count = 0.0, 0
    for index, frame in enumerate(
        tqdm(iterator, total=max(0, expected - 1), desc=name, unit="frame"), start=1
    ):
        if limit is not None and index >= limit:
            break
        start = time.perf_counter()
        mask = segmenter.step(state, frame)
        seconds += time.perf_counter() - start
        count += 1
        _write(out, frames.name(index), frame, mask, palette, writer)
    if writer is not None and (path := writer.close()) is not None:
        print(f"overlay: {path}")
    if segmenter.memory_size:
        print(f"{name}: {state.admitted} of {count} predicted frames joined the memory")
    return count, max(seconds, 1e-9)


def _write(out: Path, stem: str, frame, mask, palette, writer: OverlayWriter | None) -> None:
    save_index_mask(out / f"{stem}.png", mask, palette=palette)
    if writer is not None:
        writer.add(overlay(frame, mask, palette))


def _finished(out: Path, frames: VideoFrames) -> bool:
    return out.is_dir() and all(
        (out / f"{frames.name(i)}.png").is_file() for i in range(len(frames))
    )


if __name__ == "__main__":
    sys.exit(main())
