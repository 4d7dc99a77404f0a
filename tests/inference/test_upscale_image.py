"""``dan_blocks.upscale_image``: a path, a PIL image or a NumPy array in, the same kind out, with the pixels
that ``dan-blocks sr`` writes (bit depth, grey, alpha and EXIF orientation kept alike)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import dan_blocks
from dan_blocks.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model() -> dan_blocks.DAN:
    torch.manual_seed(0)
    return dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("ui")
    model = _model()
    dan_blocks.save_model(model, root / "m.pth")
    rng = np.random.default_rng(3)
    inputs = root / "in"
    inputs.mkdir()
    images = {
        "rgb8.png": rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
        "rgb16.png": rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16),
        "grey8.png": rng.integers(0, 256, (9, 11), dtype=np.uint8),
        "grey16.tif": rng.integers(0, 65536, (9, 11), dtype=np.uint16),
        "rgba8.png": rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
    }
    for name, pixels in images.items():
        assert cv2.imwrite(str(inputs / name), pixels)
    Image.fromarray(rng.integers(0, 256, (9, 11, 2), dtype=np.uint8), "LA").save(inputs / "greya8.png")
    rotated = Image.fromarray(rng.integers(0, 256, (7, 10, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 8
    rotated.save(inputs / "rotated.png", exif=exif.tobytes())
    out = root / "out"
    assert main(["sr", "--quiet", "-m", str(root / "m.pth"), str(inputs), "-o", str(out), "--no-kernels"]) == 0
    return {"root": root, "in": inputs, "out": out, "model": dan_blocks.load_model(root / "m.pth").eval()}


NAMES = ["rgb8.png", "rgb16.png", "grey8.png", "grey16.tif", "rgba8.png", "greya8.png", "rotated.png"]


@pytest.mark.parametrize("name", NAMES)
def test_path_in_equals_the_file_sr_writes(files: dict, name: str) -> None:
    stem, ext = name.rsplit(".", 1)
    written = cv2.imread(str(files["out"] / f"{stem}_x2.{ext}"), cv2.IMREAD_UNCHANGED)
    got = dan_blocks.upscale_image(files["model"], files["in"] / name)
    assert isinstance(got, np.ndarray)
    assert got.dtype == written.dtype and got.shape == written.shape
    assert np.array_equal(got, written)  # byte-equal pixels


def test_numpy_in_keeps_layout_and_dtype(files: dict) -> None:
    model = files["model"]
    for name in ("rgb8.png", "rgb16.png", "grey8.png", "rgba8.png"):
        pixels = cv2.imread(str(files["in"] / name), cv2.IMREAD_UNCHANGED)
        got = dan_blocks.upscale_image(model, pixels)
        stem = name.rsplit(".", 1)[0]
        written = cv2.imread(str(files["out"] / f"{stem}_x2.png"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == pixels.dtype and got.shape == (18, 22, *pixels.shape[2:])
        assert np.array_equal(got, written)
    single = cv2.imread(str(files["in"] / "grey8.png"), cv2.IMREAD_UNCHANGED)[:, :, None]
    assert dan_blocks.upscale_image(model, single).shape == (18, 22, 1)


def test_pil_in_gives_the_same_mode(files: dict) -> None:
    model = files["model"]
    for name, mode in (("rgb8.png", "RGB"), ("grey8.png", "L"), ("rgba8.png", "RGBA"), ("greya8.png", "LA")):
        with Image.open(files["in"] / name) as picture:
            assert picture.mode == mode
            got = dan_blocks.upscale_image(model, picture)
        assert isinstance(got, Image.Image) and got.mode == mode and got.size == (22, 18)
        stem = name.rsplit(".", 1)[0]
        with Image.open(files["out"] / f"{stem}_x2.png") as written:
            assert np.array_equal(np.asarray(got), np.asarray(written.convert(mode)))
    with Image.open(files["in"] / "rotated.png") as picture:  # EXIF orientation applied, as sr does
        got = dan_blocks.upscale_image(model, picture)
    assert got.size == (14, 20)
    with Image.open(files["out"] / "rotated_x2.png") as written:
        assert np.array_equal(np.asarray(got), np.asarray(written))


def test_return_kernel_and_outscale(files: dict) -> None:
    model = files["model"]
    pixels = cv2.imread(str(files["in"] / "rgb8.png"))
    image, kernel = dan_blocks.upscale_image(model, pixels, return_kernel=True)
    assert image.shape == (18, 22, 3)
    assert kernel.shape == (21, 21) and abs(float(kernel.sum()) - 1) < 1e-4  # a v2 kernel sums to 1
    assert dan_blocks.upscale_image(model, pixels, outscale=1.5).shape == (13, 16, 3)  # int(9*1.5), int(11*1.5)
    tiled = dan_blocks.upscale_image(model, pixels, 5)
    assert np.abs(tiled.astype(int) - image.astype(int)).max() <= 1


def test_bad_inputs_are_named(files: dict) -> None:
    model = files["model"]
    with pytest.raises(TypeError, match="file path, a PIL image or a NumPy array"):
        dan_blocks.upscale_image(model, [1, 2, 3])
    with pytest.raises(OSError, match="float32"):
        dan_blocks.upscale_image(model, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(OSError, match="channel layout"):
        dan_blocks.upscale_image(model, np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="outscale"):
        dan_blocks.upscale_image(model, np.zeros((4, 4, 3), np.uint8), outscale=0)
    with pytest.raises(OSError, match=r"missing\.png"):
        dan_blocks.upscale_image(model, files["root"] / "missing.png")
