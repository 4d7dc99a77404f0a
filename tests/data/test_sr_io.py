"""`dan_blocks.data.sr_io.read_input` on TIFFs as other software writes them: every EXIF orientation, and RGBA
with unassociated alpha (ExtraSamples 2), compared with what PIL shows."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from dan_blocks.data.sr_io import read_input


def _pixels(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def _as_read(path: pathlib.Path) -> np.ndarray:
    """read_input's planes as (H, W, C) in [0, 255], RGB(A)."""
    image = read_input(str(path))
    planes = [image.rgb[0]] + ([image.alpha[0]] if image.alpha is not None else [])
    return np.concatenate([p.numpy() for p in planes]).transpose(1, 2, 0) * 255


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_is_turned_as_its_orientation_tag_says(tmp_path: pathlib.Path, orientation: int) -> None:
    # OpenCV 5 turns TIFFs itself (read_input turned them twice: 2-4 came back mirrored) and fails on 5-8
    # ("cannot decode the image")
    path = tmp_path / "page.tif"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_pixels((12, 20, 3))).save(path, exif=exif)
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(path)), dtype=np.float32)
    got = _as_read(path)
    assert got.shape == viewer.shape
    assert np.abs(got - viewer).max() < 1e-3


def test_an_rgba_tiff_with_unassociated_alpha_keeps_its_colours(tmp_path: pathlib.Path) -> None:
    # OpenCV multiplied the colours by the alpha (ExtraSamples 2 is what PIL, GIMP and most editors write)
    pixels = _pixels((12, 20, 4))
    path = tmp_path / "logo.tif"
    Image.fromarray(pixels, "RGBA").save(path)
    assert Image.open(path).tag_v2.get(338) == (2,)  # unassociated alpha, as the test means
    assert np.abs(_as_read(path) - pixels).max() < 1e-3


def test_write_array_names_a_full_disk(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV only returns False; the message was "cannot write the image" on a full disk
    import errno
    import os

    import dan_blocks.data.sr_io as sr_io

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sr_io.cv2, "imwrite", lambda path, array: False)
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        sr_io.write_array(str(tmp_path / "a_x2.png"), np.zeros((4, 4, 3), np.uint8))
    assert info.value.errno == errno.ENOSPC and "a_x2.png" in str(info.value) and "no space left" in str(info.value)
    assert os.listdir(tmp_path) == []  # no temporary file left
