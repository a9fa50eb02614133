"""Reading images and masks at the edge of the library, and writing results atomically.

Everything handed back is plain numpy, whatever came in (a path, a ``PIL.Image`` or an array):

* images are ``(H, W, 3)`` uint8 RGB, with EXIF orientation applied, transparency composited
  over black and 16-bit or float data scaled to 8 bits;
* masks are either ``(H, W)`` int64 class-index maps or ``(H, W, 3)`` uint8 colour masks
  (see :func:`load_mask` for the rules that decide which).

Every problem a user can cause raises :class:`~painter.errors.InvalidImageError` or
:class:`~painter.errors.InvalidMaskError` with a message that names the input and says what to
fix. Files are always decoded in full, so a truncated download fails here and not later.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from painter.errors import InputMismatchError, InvalidImageError, InvalidMaskError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | Image.Image | np.ndarray

_UINT16_PER_UINT8 = 257  # 65535 / 255: maps the full 16-bit range onto the full 8-bit range
_ALPHA_MODES = ("LA", "La", "P", "PA", "RGBa")  # converted to RGBA, then composited over black
_EXIF_ORIENTATION = 0x0112


def load_image(source: ImageSource) -> np.ndarray:
    """Read an image as RGB.

    Args:
        source: a path, a ``PIL.Image`` or an array of shape (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4) with dtype uint8, uint16 (scaled by 1/257), bool (0/255), float (taken as
            0..1 when its maximum is <= 1, else clipped to 0..255) or another integer type whose
            values lie in 0..255.

    Returns:
        (H, W, 3) uint8 RGB array, upright (EXIF orientation applied), alpha composited over black.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, "image array")
    image, name = _read_pil(source, InvalidImageError, what="image")
    return _array_to_rgb(_pil_image_pixels(image, name), name)


def load_mask(source: ImageSource) -> np.ndarray:
    """Read a segmentation mask.

    Rules, in order:

    * palette ('P') PNGs: the palette indices are the class ids (DAVIS style), taken as they are;
    * single-channel images ('1', 'L', 'I', 'I;16', 'F'): values are class ids;
    * RGB(A) images whose three channels are equal everywhere: treated as single-channel;
    * any other RGB(A) image: returned as an (H, W, 3) uint8 colour mask. Pixels with alpha 0
      become black (background); other alpha values are ignored.

    A single-channel mask whose values are exactly 0 and 255 (255 present) becomes binary 0/1.
    Arrays follow the same rules, bool arrays giving 0/1.

    Returns:
        (H, W) int64 class-index map, or (H, W, 3) uint8 colour mask.
    """
    if isinstance(source, np.ndarray):
        return mask_from_array(source)
    image, name = _read_pil(source, InvalidMaskError, what="mask")
    if image.mode in ("P", "PA"):
        indices = np.asarray(image)
        indices = indices[..., 0] if indices.ndim == 3 else indices  # (H, W)
        _check_not_empty(indices.shape, name, InvalidMaskError)
        return indices.astype(np.int64)
    if image.mode in ("LA", "La"):
        pixels = np.asarray(image)[..., 0]  # (H, W): the grey values carry the classes
    elif image.mode in ("1", "L", "I", "F", "RGB", "RGBA") or image.mode.startswith("I;16"):
        pixels = np.asarray(image)
    else:
        pixels = np.asarray(_convert(image, "RGB", name, InvalidMaskError))
    return mask_from_array(pixels, name=name)


def mask_from_array(array: np.ndarray, *, name: str = "mask array") -> np.ndarray:
    """Apply the :func:`load_mask` rules to an array (pure; no I/O).

    Args:
        array: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of bool, integer or
            integer-valued float type.
        name: how error messages refer to the array.

    Returns:
        (H, W) int64 class-index map, or (H, W, 3) uint8 colour mask.
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]  # (H, W)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise InvalidMaskError(
            f"{name} has shape {arr.shape}; a mask must be (H, W) class ids or (H, W, 3) colours"
        )
    _check_not_empty(arr.shape, name, InvalidMaskError)
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidMaskError(f"{name} contains NaN or infinite values; masks hold class ids")
        if not (arr == np.round(arr)).all():
            raise InvalidMaskError(
                f"{name} has non-integer float values; masks hold class ids, so round or "
                "threshold it (for probabilities use `mask > 0.5`) before passing it"
            )
    elif arr.dtype.kind not in "iu":
        raise InvalidMaskError(f"{name} has dtype {arr.dtype}; pass bool or integer class ids")
    if arr.min() < 0:
        raise InvalidMaskError(f"{name} has negative values; class ids must be >= 0")
    if arr.ndim == 3:
        rgb = arr[..., :3]  # (H, W, 3)
        if arr.shape[-1] == 4:
            rgb = np.where(arr[..., 3:] == 0, 0, rgb)  # fully transparent -> background
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            arr = rgb[..., 0]  # (H, W): a grey image stored as RGB
        elif rgb.max() > 255:
            raise InvalidMaskError(f"{name} is a colour mask with values above 255; use 0..255")
        else:
            return rgb.astype(np.uint8)
    ids = arr.astype(np.int64)
    if ids.max() == 255 and ((ids == 0) | (ids == 255)).all():
        logger.debug("%s holds only 0 and 255; read as a binary 0/1 mask", name)
        return ids // 255
    return ids


def default_palette(num_colors: int = 256) -> np.ndarray:
    """Distinct display colours (the PASCAL VOC / DAVIS colour map), id 0 black.

    The bits of each id are spread over the high bits of R, G and B in turn, so neighbouring ids
    get very different colours and every id below 2**24 gets its own colour.

    Returns:
        (num_colors, 3) uint8.
    """
    if num_colors < 1:
        raise ValueError(f"num_colors must be >= 1, got {num_colors}")
    ids = np.arange(num_colors, dtype=np.int64)
    colors = np.zeros((num_colors, 3), dtype=np.int64)
    for bit in range(8):
        shift = 7 - bit
        for channel in range(3):
            colors[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << shift
    return colors.astype(np.uint8)


def save_index_mask(
    path: str | os.PathLike, mask: np.ndarray, *, palette: np.ndarray | None = None
) -> None:
    """Write a class-index map as a PNG, atomically.

    Ids below 256 give a palette PNG (mode 'P', readable back by :func:`load_mask`, shown in
    colour by image viewers); larger ids give a 16-bit grayscale PNG.

    Args:
        path: destination, must end in ``.png``.
        mask: (H, W) integer or bool class ids, 0..65535.
        palette: (K, 3) uint8 display colours for ids 0..K-1 (only the first 256 are used);
            default :func:`default_palette`.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidMaskError(f"{path}: index masks must be saved losslessly; use a .png name")
    ids = _index_map(mask, "mask to save")
    top = int(ids.max())
    if top < 256:
        colors = default_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
        if colors.ndim != 2 or colors.shape[1] != 3:
            raise InputMismatchError(f"palette has shape {colors.shape}; expected (K, 3)")
        if len(colors) <= top:
            raise InputMismatchError(
                f"mask has class id {top} but the palette has only {len(colors)} colours"
            )
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: min(256, len(colors))] = colors[:256]
        image = Image.fromarray(ids.astype(np.uint8))
        image.putpalette(table.tobytes())  # mode L -> P
    elif top <= 65535:
        image = Image.fromarray(ids.astype(np.uint16))  # mode I;16
    else:
        raise InvalidMaskError(f"mask has class id {top}; PNG masks hold ids up to 65535")
    _atomic_save(image, path, "PNG")


def save_image(path: str | os.PathLike, rgb: np.ndarray, *, quality: int = 95) -> None:
    """Write an image atomically; the format follows the file extension.

    Args:
        path: destination, e.g. ``out.png`` or ``out.jpg``.
        rgb: anything :func:`load_image` accepts as an array, usually (H, W, 3) uint8.
        quality: JPEG / WebP quality.
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InvalidImageError(f"{path}: unknown image extension; use .png or .jpg")
    params = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    _atomic_save(Image.fromarray(_array_to_rgb(rgb, "image to save")), path, fmt, **params)


def overlay(
    image: np.ndarray, mask: np.ndarray, colors: np.ndarray, *, alpha: float = 0.5
) -> np.ndarray:
    """Blend class colours over an image; background (id 0) is left as it is.

    Args:
        image: (H, W, 3) uint8 RGB, or anything :func:`load_image` accepts.
        mask: (H, W) integer class ids.
        colors: (K, 3) colours for ids 0..K-1, e.g. :func:`default_palette`.
        alpha: weight of the class colour, 0 (image only) .. 1 (colour only).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    rgb = load_image(image)
    ids = _index_map(mask, "overlay mask")
    if ids.shape != rgb.shape[:2]:
        raise InputMismatchError(f"image is {rgb.shape[:2]} but mask is {ids.shape}; resize one")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colors = np.asarray(colors, dtype=np.float64)
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise InputMismatchError(f"colors has shape {colors.shape}; expected (K, 3)")
    if int(ids.max()) >= len(colors):
        raise InputMismatchError(f"mask has id {int(ids.max())} but only {len(colors)} colors")
    foreground = ids > 0  # (H, W)
    out = rgb.copy()
    blended = (1.0 - alpha) * rgb[foreground] + alpha * colors[ids[foreground]]  # (M, 3)
    out[foreground] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


# --- helpers -----------------------------------------------------------------------------------


def _read_pil(source: object, error: type[Exception], *, what: str) -> tuple[Image.Image, str]:
    """Open a path or take a PIL image, decode it fully and apply EXIF orientation."""
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or f"PIL {what}"
        return _decoded(source, name, error), name
    if not isinstance(source, (str, os.PathLike)):
        raise error(
            f"cannot read a {what} from {type(source).__name__}; "
            "pass a path, a PIL image or a numpy array"
        )
    name = str(source)
    if not Path(source).is_file():
        missing = not Path(source).exists()
        raise error(f"{name}: no such file; check the path" if missing else f"{name}: not a file")
    try:
        with Image.open(source) as image:
            return _decoded(image, name, error), name
    except UnidentifiedImageError as exc:
        raise error(f"{name}: not an image file; pass a PNG, JPEG or other image") from exc
    except PermissionError as exc:
        raise error(f"{name}: permission denied; make the file readable") from exc
    except Image.DecompressionBombError as exc:
        raise error(f"{name}: {exc}; downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS") from exc


def _decoded(image: Image.Image, name: str, error: type[Exception]) -> Image.Image:
    """Force a full decode (so truncated files fail here), then make the image upright."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise error(f"{name}: the file is truncated or corrupt ({exc}); re-export it") from exc
    return _upright(image, name)


def _upright(image: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation tag; the image itself when there is none."""
    try:
        if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
            return image
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: unreadable EXIF orientation ignored (%s)", name, exc)
        return image
    logger.debug("%s: EXIF orientation applied", name)
    return upright


def _convert(image: Image.Image, mode: str, name: str, error: type[Exception]) -> Image.Image:
    try:
        return image.convert(mode)
    except (ValueError, OSError) as exc:
        raise error(f"{name}: PIL mode {image.mode!r} cannot be converted ({exc})") from exc


def _pil_image_pixels(image: Image.Image, name: str) -> np.ndarray:
    """Pixels of a decoded PIL image as an array that :func:`_array_to_rgb` understands."""
    mode = image.mode
    if mode in ("1", "L", "RGB", "RGBA", "F") or mode.startswith("I;16"):
        return np.asarray(image)
    if mode == "I":  # 32-bit container; from files this holds 16-bit data
        pixels = np.asarray(image)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise InvalidImageError(
                f"{name}: 32-bit integer image with values outside 0..65535; "
                "rescale it to 8 or 16 bits first"
            )
        return pixels.astype(np.uint16)
    if mode in _ALPHA_MODES:
        return np.asarray(_convert(image, "RGBA", name, InvalidImageError))
    return np.asarray(_convert(image, "RGB", name, InvalidImageError))  # CMYK, YCbCr, ...


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of any supported dtype -> (H, W, 3) uint8."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]  # (H, W)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            hint = "; it looks channels-first, pass array.transpose(1, 2, 0)"
        raise InvalidImageError(
            f"{name} has shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
            + hint
        )
    _check_not_empty(arr.shape, name, InvalidImageError)
    arr = _to_uint8(arr, name)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)  # (H, W, 3)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.uint16)  # (H, W, 1)
        arr = ((arr[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Scale pixel values of any supported dtype to uint8, keeping the shape."""
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind == "u" and arr.dtype.itemsize == 2:
        half = _UINT16_PER_UINT8 // 2
        return ((arr.astype(np.uint32) + half) // _UINT16_PER_UINT8).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidImageError(f"{name} contains NaN or infinite values; fix or mask them")
        scale = 255.0 if arr.max() <= 1.0 else 1.0  # 0..1 data, else already 0..255
        return np.rint(np.clip(arr.astype(np.float64) * scale, 0, 255)).astype(np.uint8)
    if kind in "iu":
        low, high = int(arr.min()), int(arr.max())
        if low >= 0 and high <= 255:
            return arr.astype(np.uint8)
        raise InvalidImageError(
            f"{name} has {arr.dtype} values in {low}..{high}; pass uint8 (0..255), "
            "uint16 (0..65535) or float (0..1) pixels"
        )
    raise InvalidImageError(f"{name} has dtype {arr.dtype}; pass uint8, uint16, bool or float")


def _index_map(mask: np.ndarray, name: str) -> np.ndarray:
    """Validate (H, W) non-negative integer or bool class ids, taken as they are."""
    ids = np.asarray(mask)
    if ids.ndim != 2 or ids.dtype.kind not in "biu":
        raise InvalidMaskError(
            f"{name} has shape {ids.shape} and dtype {ids.dtype}; expected (H, W) integer ids"
        )
    _check_not_empty(ids.shape, name, InvalidMaskError)
    if ids.min() < 0:
        raise InvalidMaskError(f"{name} has negative values; class ids must be >= 0")
    return ids.astype(np.int64)


def _check_not_empty(shape: tuple[int, ...], name: str, error: type[Exception]) -> None:
    if shape[0] == 0 or shape[1] == 0:
        raise error(f"{name} is empty (size {shape[1]}x{shape[0]}); pass a non-empty image")


def _atomic_save(image: Image.Image, path: Path, fmt: str, **params: object) -> None:
    """Save to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as handle:  # honours the umask, unlike mkstemp
            image.save(handle, format=fmt, **params)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    logger.debug("wrote %s", path)
