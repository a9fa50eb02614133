"""Real photos with pseudo-masks: unsupervised regions (felzenszwalb or SLIC) as instances.

The regions carry no class meaning across images, so this source provides instance labels only;
an instance episode shows two differently augmented views of the same photo, which is the
SegGPT recipe for instance data. By default the photos are the ones bundled with scikit-image
(those that load offline); any folder of images works too.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from data_mixtures.records import SegRecord, SegType
from data_mixtures.sources.base import RecordSource, list_images
from painter.errors import ConfigError, DatasetError, missing_dependency
from painter.io import load_image

logger = logging.getLogger(__name__)

SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "camera",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "clock",
    "moon",
)


#: Where Debian's ``opencv-doc`` package puts its sample photos (``apt-get install opencv-doc``).
OPENCV_DOC_EXAMPLES = Path("/usr/share/doc/opencv-doc/examples")
#: Reserved for evaluation (scene-text words with masks): never a training photo.
RESERVED_FOLDERS = ("text",)
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_MIN_PHOTO_SIDE = 96
_SCENE_ALIASES = {"left": "stereo", "right": "stereo"}  # opencv's left0N/right0N stereo pairs


class PhotoSplit(enum.Enum):
    TRAIN = "train"
    HELD_OUT = "held-out"
    ALL = "all"


def _package_photo_folders() -> list[Path]:
    """Folders of sample photos that installed packages ship (those that are installed)."""
    import importlib.util

    folders = []
    for module, parts in (
        ("skimage", ("data",)),
        ("sklearn", ("datasets", "images")),
        ("matplotlib", ("mpl-data", "sample_data")),
    ):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None:
            folders.append(Path(spec.origin).parent.joinpath(*parts))
    folders.append(OPENCV_DOC_EXAMPLES / "data")
    return [f for f in folders if f.is_dir()]


def photo_group(path: str | Path) -> str:
    """The name that ties together photos of one scene (``left01``/``left02``, ``aloeL``/``aloeR``,
    ``graf1``/``graf3``): the lower-cased stem without trailing digits, view letters or channel
    tags. Splits are made by group, so no scene has a photo on both sides."""
    stem = Path(path).stem
    if len(stem) > 3 and stem[-1].isupper() and stem[-2].islower():
        stem = stem[:-1]  # a view letter: aloeL / aloeR, leuvenA / leuvenB
    stem = stem.lower()
    previous = None
    while previous != stem:
        previous = stem
        stem = re.sub(r"(\d+|_gray|_rgb|_left|_right|[_-])$", "", stem)
    return _SCENE_ALIASES.get(stem, stem)


def photo_split(path: str | Path) -> PhotoSplit:
    """TRAIN or HELD_OUT, by a hash of the photo's group (about one group in five held out)."""
    digest = hashlib.sha1(photo_group(path).encode()).digest()
    return PhotoSplit.HELD_OUT if digest[0] % 5 == 0 else PhotoSplit.TRAIN


def installed_photos(
    split: PhotoSplit = PhotoSplit.TRAIN, *, folders: Sequence[str | Path] | None = None
) -> list[Path]:
    """Photos shipped by installed packages (scikit-image, scikit-learn, matplotlib, Debian's
    opencv-doc) or found in ``folders``, readable, at least 96 px on a side, in ``split``.

    Anything under a folder named in ``RESERVED_FOLDERS`` (opencv-doc's scene-text words, kept
    for evaluation) is never returned.

    Raises:
        DatasetError: no photo is found.
    """
    roots = [Path(f) for f in folders] if folders is not None else _package_photo_folders()
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in _PHOTO_SUFFIXES or not path.is_file():
                continue
            if any(part in RESERVED_FOLDERS for part in path.relative_to(root).parts[:-1]):
                continue
            if split is not PhotoSplit.ALL and photo_split(path) is not split:
                continue
            try:
                with Image.open(path) as image:
                    if min(image.size) < _MIN_PHOTO_SIDE:
                        continue
            except (OSError, ValueError):
                logger.warning("unreadable photo skipped: %s", path)
                continue
            found.append(path)
    if not found:
        raise DatasetError(
            f"no readable {split.value} photo found in {', '.join(map(str, roots)) or 'no folder'}"
        )
    return found


class RegionMethod(enum.Enum):
    FELZENSZWALB = "felzenszwalb"
    SLIC = "slic"


def load_skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS) -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) for each named ``skimage.data`` photo that loads offline."""
    try:
        import skimage.data
    except ImportError as err:
        raise missing_dependency("scikit-image", "train", "photo sources") from err

    photos = []
    for name in names:
        try:
            photos.append((name, load_image(np.asarray(getattr(skimage.data, name)()))))
        except Exception as error:  # a photo needing a download must not stop the rest
            logger.warning("skimage photo %r not available offline, skipped (%s)", name, error)
    return photos


def pseudo_regions(
    image: np.ndarray,
    *,
    method: RegionMethod = RegionMethod.FELZENSZWALB,
    granularity: float = 300.0,
    min_region_fraction: float = 0.002,
    max_regions: int = 40,
) -> np.ndarray:
    """Unsupervised regions of an image as instance ids.

    Args:
        image: (H, W, 3) uint8.
        method: the region algorithm.
        granularity: felzenszwalb ``scale`` (larger: bigger regions) or SLIC ``n_segments``.
        min_region_fraction: regions smaller than this fraction of the image become 0.
        max_regions: keep at most this many regions, the largest.

    Returns:
        (H, W) int64: 0 = no region, 1..N regions numbered from the largest.
    """
    try:
        from skimage import segmentation
    except ImportError as err:
        raise missing_dependency("scikit-image", "train", "photo region masks") from err

    height, width = image.shape[:2]
    min_pixels = max(1, int(min_region_fraction * height * width))
    if method is RegionMethod.FELZENSZWALB:
        labels = segmentation.felzenszwalb(image, scale=granularity, sigma=0.8, min_size=min_pixels)
    else:
        labels = segmentation.slic(
            image, n_segments=int(granularity), compactness=10.0, start_label=0
        )
    counts = np.bincount(labels.ravel())  # (R,)
    order = np.argsort(-counts, kind="stable")[:max_regions]
    order = order[counts[order] >= min_pixels]
    renumber = np.zeros(len(counts), dtype=np.int64)
    renumber[order] = np.arange(1, len(order) + 1)
    return renumber[labels]  # (H, W)


class PhotoSource(RecordSource):
    """Photos with region pseudo-masks; record ``i`` is photo ``i // G`` at granularity ``i % G``.

    Args:
        photos: in-memory (H, W, 3) images or image paths; default: scikit-image's photos
            (unless ``folder`` is given).
        folder: a folder of images, read on access.
        method: the region algorithm.
        granularities: one record per photo and value (felzenszwalb scale or SLIC n_segments).
        max_side: photos are downscaled so that their longer side is at most this.
        min_region_fraction, max_regions: see ``pseudo_regions``.
        cache_size: how many computed records to keep (regions are the slow part).
        name: source name.
    """

    seg_types = frozenset({SegType.INSTANCE})

    def __init__(
        self,
        photos: Sequence[np.ndarray | str | Path] | None = None,
        *,
        folder: str | Path | None = None,
        method: RegionMethod = RegionMethod.FELZENSZWALB,
        granularities: Sequence[float] = (150.0, 500.0),
        max_side: int = 256,
        min_region_fraction: float = 0.002,
        max_regions: int = 40,
        cache_size: int = 64,
        name: str = "photos",
    ) -> None:
        super().__init__(name)
        if photos is not None and folder is not None:
            raise ConfigError("give photos or folder, not both")
        if not granularities or min(granularities) <= 0 or max_side < 8 or max_regions < 1:
            raise ConfigError("granularities must be positive, max_side >= 8, max_regions >= 1")
        items: list[tuple[str, np.ndarray | Path]]
        if folder is not None:
            items = [(p.stem, p) for p in list_images(folder)]
        elif photos is not None:
            items = [
                (Path(p).stem if isinstance(p, (str, Path)) else f"photo{k}", p)
                for k, p in enumerate(photos)
            ]
        else:
            items = list(load_skimage_photos())
        if not items:
            raise DatasetError(f"{name}: no photos to use")
        self.max_side = max_side
        # in-memory photos are downscaled once (smaller to keep and to send to workers)
        self.items = [
            (key, self._downscale(load_image(p)) if isinstance(p, np.ndarray) else p)
            for key, p in items
        ]
        self.method = method
        self.granularities = tuple(float(g) for g in granularities)
        self.min_region_fraction = min_region_fraction
        self.max_regions = max_regions
        self.cache_size = cache_size
        self._cache: dict[int, SegRecord] = {}
        logger.info("%s: %d photos x %d granularities", name, len(items), len(self.granularities))

    def __len__(self) -> int:
        return len(self.items) * len(self.granularities)

    def _photo(self, position: int) -> np.ndarray:
        return self._downscale(load_image(self.items[position][1]))

    def _downscale(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) -> longer side at most ``max_side`` (bicubic; never enlarged)."""
        height, width = image.shape[:2]
        scale = self.max_side / max(height, width)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        return image

    def load(self, index: int) -> SegRecord:
        if index in self._cache:
            return self._cache[index]
        position, level = divmod(index, len(self.granularities))
        image = self._photo(position)
        regions = pseudo_regions(
            image,
            method=self.method,
            granularity=self.granularities[level],
            min_region_fraction=self.min_region_fraction,
            max_regions=self.max_regions,
        )
        record = SegRecord(
            image=image,
            instance=regions,
            source=self.name,
            key=f"{self.items[position][0]}@{self.granularities[level]:g}",
        )
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[index] = record
        return record
