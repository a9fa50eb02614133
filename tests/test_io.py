"""Tests of painter.io: odd image files, mask rules, atomic writes, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from painter.errors import InputMismatchError, InvalidImageError, InvalidMaskError
from painter.io import (
    default_palette,
    load_image,
    load_mask,
    mask_from_array,
    overlay,
    save_image,
    save_index_mask,
)


def _rgb_blocks(height: int = 32, width: int = 48) -> np.ndarray:
    """(H, W, 3) uint8: top half red, bottom half blue, so orientation is visible."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[: height // 2, :, 0] = 255
    rgb[height // 2 :, :, 2] = 255
    return rgb


def test_grayscale_png_is_repeated_over_channels(tmp_path):
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10)
    Image.fromarray(grey).save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.shape == (6, 10, 3) and image.dtype == np.uint8
    assert (image == grey[..., None]).all()


def test_one_bit_image_becomes_0_and_255(tmp_path):
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "b.png")
    image = load_image(str(tmp_path / "b.png"))
    assert (image[..., 0] == np.eye(4) * 255).all()


def test_rgba_and_la_are_composited_over_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[255, 128], [0, 255]]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image[0, 0].tolist() == [200, 100, 50]
    assert image[0, 1].tolist() == [100, 50, 25]  # x * 128 / 255, rounded
    assert image[1, 0].tolist() == [0, 0, 0]
    Image.fromarray(rgba[..., [0, 3]], mode="LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[..., 0].tolist() == [[200, 100], [0, 200]]


def test_16_bit_png_is_scaled_by_257(tmp_path):
    values = np.array([[0, 128, 129, 257 * 100], [65535, 257, 1000, 40000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")
    image = load_image(tmp_path / "deep.png")
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert (image[..., 0] == expected).all()
    assert image[0].tolist()[:3] == [[0] * 3, [0] * 3, [1] * 3]


def test_big_endian_int32_and_float_pil_modes():
    values = np.array([[0, 65535], [257, 514]], dtype=">u2")
    big = Image.frombuffer("I;16B", (2, 2), values.tobytes(), "raw", "I;16B", 0, 1)
    assert load_image(big)[..., 0].tolist() == [[0, 255], [1, 2]]
    assert load_image(Image.fromarray(values.astype(np.int32)))[..., 0].tolist() == [
        [0, 255],
        [1, 2],
    ]
    unit = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))
    assert load_image(unit)[..., 0].tolist() == [[0, 128], [255, 64]]
    wide = Image.fromarray(np.array([[-5.0, 3.0], [300.0, 254.6]], dtype=np.float32))
    assert load_image(wide)[..., 0].tolist() == [[0, 3], [255, 255]]


def test_palette_and_cmyk_images_become_rgb(tmp_path):
    indexed = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8))
    indexed.putpalette([0, 0, 0, 10, 20, 30, 200, 150, 100])
    indexed.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    assert image[0, 1].tolist() == [10, 20, 30] and image[1, 0].tolist() == [200, 150, 100]
    Image.new("CMYK", (5, 4), (0, 0, 0, 0)).save(tmp_path / "c.jpg")
    cmyk = load_image(tmp_path / "c.jpg")
    assert cmyk.shape == (4, 5, 3) and cmyk.min() >= 250


def test_exif_orientation_6_is_applied(tmp_path):
    stored = _rgb_blocks()
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=95, subsampling=0)
    image = load_image(tmp_path / "r.jpg")
    assert image.shape == (48, 32, 3)
    expected = np.rot90(stored, k=-1)  # clockwise: the red top ends up on the right
    assert np.abs(image.astype(int) - expected).max() < 40
    assert image[:, -1, 0].min() > 200 and image[:, 0, 2].min() > 200


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_are_rejected(tmp_path, suffix):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match="truncated") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InvalidMaskError, match="not an image"):
        load_mask(tmp_path / "notes.png")
    with pytest.raises(InvalidImageError, match="PIL image or a numpy array"):
        load_image(42)


def test_numpy_images():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert (load_image(grey) == grey[..., None]).all()
    assert (load_image(grey[..., None]) == grey[..., None]).all()
    assert load_image(np.full((1, 1), 65535, np.uint16)).tolist() == [[[255] * 3]]
    assert load_image(np.ones((1, 1), bool)).tolist() == [[[255] * 3]]
    assert load_image(np.full((1, 1, 3), 0.5)).tolist() == [[[128] * 3]]
    assert load_image(np.full((1, 1, 3), 7.0)).tolist() == [[[7] * 3]]
    assert load_image(np.array([[[10, 20, 30, 0]]], np.uint8)).tolist() == [[[0, 0, 0]]]
    assert load_image(np.array([[[10, 20, 30]]], np.int64)).tolist() == [[[10, 20, 30]]]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 8, 8), np.uint8), "channels-first"),
        (np.zeros((4, 4, 2), np.uint8), "expected"),
        (np.zeros(5, np.uint8), "expected"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.array([[np.nan, 0.5]]), "NaN"),
        (np.array([[-1, 300]]), "0..255"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_numpy_images(array, message):
    with pytest.raises(InvalidImageError, match=message):
        load_image(array)


def test_zero_sized_pil_image():
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(Image.new("RGB", (0, 3)))


def test_mask_0_255_becomes_binary(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    loaded = load_mask(tmp_path / "m.png")
    assert loaded.dtype == np.int64 and loaded.shape == (4, 4)
    assert (loaded == mask // 255).all()
    Image.fromarray(np.stack([mask] * 3, axis=-1)).save(tmp_path / "rgb.png")
    assert (load_mask(tmp_path / "rgb.png") == mask // 255).all()
    three = np.array([[0, 128, 255]], np.uint8)
    assert load_mask(three).tolist() == [[0, 128, 255]]  # not only 0/255: kept as ids


def test_davis_palette_png_gives_indices(tmp_path):
    ids = np.array([[0, 1, 2], [3, 255, 0]], np.uint8)
    davis = Image.fromarray(ids)
    davis.putpalette(default_palette().tobytes())
    davis.save(tmp_path / "00000.png")
    loaded = load_mask(tmp_path / "00000.png")
    assert loaded.dtype == np.int64 and (loaded == ids).all()


def test_color_masks_and_alpha(tmp_path):
    colors = np.zeros((2, 3, 4), np.uint8)
    colors[0, 0] = (255, 0, 0, 255)
    colors[0, 1] = (0, 255, 0, 255)
    colors[1, 2] = (0, 0, 255, 0)  # transparent -> background
    Image.fromarray(colors).save(tmp_path / "c.png")
    loaded = load_mask(tmp_path / "c.png")
    assert loaded.shape == (2, 3, 3) and loaded.dtype == np.uint8
    assert loaded[0, 0].tolist() == [255, 0, 0] and loaded[1, 2].tolist() == [0, 0, 0]


def test_16_bit_and_exif_masks(tmp_path):
    ids = np.array([[0, 300], [7, 65535]], np.uint16)
    Image.fromarray(ids).save(tmp_path / "deep.png")
    assert load_mask(tmp_path / "deep.png").tolist() == ids.tolist()
    stored = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.png", exif=exif)
    assert (load_mask(tmp_path / "rot.png") == np.rot90(stored, k=-1)).all()


def test_numpy_mask_rules_and_errors():
    assert mask_from_array(np.array([[True, False]])).tolist() == [[1, 0]]
    assert load_mask(np.array([[0.0, 2.0]])).tolist() == [[0, 2]]
    assert load_mask(np.array([[0, 255]], np.int32)).tolist() == [[0, 1]]
    with pytest.raises(InvalidMaskError, match="non-integer"):
        load_mask(np.array([[0.2, 1.0]]))
    with pytest.raises(InvalidMaskError, match="negative"):
        load_mask(np.array([[-1, 1]]))
    with pytest.raises(InvalidMaskError, match="empty"):
        load_mask(np.zeros((0, 2), np.uint8))
    with pytest.raises(InvalidMaskError, match="shape"):
        load_mask(np.zeros((2, 2, 2), np.uint8))


def test_save_index_mask_round_trip(tmp_path):
    ids = np.array([[0, 1, 2], [3, 255, 0]], np.int64)
    save_index_mask(tmp_path / "out.png", ids)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "P"
        assert written.getpalette()[3:6] == default_palette()[1].tolist()
    assert (load_mask(tmp_path / "out.png") == ids).all()
    palette = np.array([[0, 0, 0], [9, 9, 9]], np.uint8)
    save_index_mask(tmp_path / "two.png", np.array([[0, 1]]), palette=palette)
    assert load_image(tmp_path / "two.png").tolist() == [[[0, 0, 0], [9, 9, 9]]]
    many = np.array([[0, 256], [1000, 65535]])
    save_index_mask(tmp_path / "many.png", many)
    assert (load_mask(tmp_path / "many.png") == many).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.png", "out.png", "two.png"]


def test_save_index_mask_errors(tmp_path):
    with pytest.raises(InvalidMaskError, match=r"\.png name"):
        save_index_mask(tmp_path / "m.jpg", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputMismatchError, match="palette"):
        save_index_mask(tmp_path / "m.png", np.array([[0, 5]]), palette=np.zeros((3, 3)))
    with pytest.raises(InvalidMaskError, match="65535"):
        save_index_mask(tmp_path / "m.png", np.array([[0, 70000]]))
    with pytest.raises(InvalidMaskError, match="integer"):
        save_index_mask(tmp_path / "m.png", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_save_image_round_trip(tmp_path):
    rgb = _rgb_blocks()
    save_image(tmp_path / "sub" / "x.png", rgb)
    assert (load_image(tmp_path / "sub" / "x.png") == rgb).all()
    save_image(tmp_path / "x.jpg", rgb, quality=90)
    jpeg = load_image(tmp_path / "x.jpg").astype(int)
    assert np.abs(jpeg - rgb)[:12].max() < 20 and np.abs(jpeg - rgb)[20:].max() < 20
    with pytest.raises(InvalidImageError, match="extension"):
        save_image(tmp_path / "x.unknown", rgb)


def test_overlay_blends_foreground_only():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [2, 0]])
    colors = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 200]], np.uint8)
    out = overlay(image, mask, colors, alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100] and out[1, 1].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [178, 50, 50]  # 0.5 * 100 + 0.5 * 255 = 177.5 -> 178
    assert out[1, 0].tolist() == [50, 50, 150]
    with pytest.raises(InputMismatchError, match="resize"):
        overlay(image, np.zeros((3, 3), int), colors)
    with pytest.raises(InputMismatchError, match="colors"):
        overlay(image, np.full((2, 2), 5), colors)


def test_default_palette_is_voc_and_distinct():
    palette = default_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len(np.unique(palette, axis=0)) == 256
