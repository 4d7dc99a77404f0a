"""``dan-blocks sr`` with hostile inputs (issue 22): nothing hangs, nothing is silently skipped or lost."""

from __future__ import annotations

import os
import pathlib
import threading

import cv2
import numpy as np
import pytest
import torch
from _helpers import run_sr as _sr
from _helpers import tiny_sr_model as _model
from _helpers import write_photo as _photo
from PIL import Image, ImageOps

import dan_blocks
from dan_blocks.data.sr_io import apply_orientation, read_input

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_in_a_folder_is_named_not_read(model_file, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(_sr("-m", model_file, folder, "-o", tmp_path / "o")))
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader so that the test run can end, then fail
        with open(folder / "pipe.png", "wb"):
            pass
        pytest.fail("sr hung on a named pipe")
    assert result == [1]  # named as a failure: an input the user put there was not read
    err = capsys.readouterr().err
    assert "pipe.png: a named pipe, not a regular file: not read" in err
    assert (tmp_path / "o" / "a_x2.png").is_file()
    assert _sr("-m", model_file, folder / "pipe.png", "-o", tmp_path / "o2") == 1  # explicit: named too
    assert "a named pipe" in capsys.readouterr().err


def test_png_and_jpg_of_one_name_keep_their_own_kernel_files(model_file, tmp_path) -> None:
    _photo(tmp_path / "a.png", seed=1)
    _photo(tmp_path / "a.jpg", seed=2)
    out = tmp_path / "o"
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", out) == 0
    png_kernel = np.load(out / "a_x2_kernel_png.npy")
    assert _sr("-m", model_file, tmp_path / "a.jpg", "-o", out) == 0
    assert np.array_equal(np.load(out / "a_x2_kernel_png.npy"), png_kernel)  # not overwritten
    assert (out / "a_x2_kernel_jpg.npy").is_file() and (out / "a_x2.jpg").is_file()
    # the same name in one format (--ext png): a.jpg's result is not taken for a.png's, nor replaces it
    png_image = (out / "a_x2.png").read_bytes()
    assert _sr("-m", model_file, tmp_path / "a.jpg", "-o", out, "--ext", "png") == 1
    assert (out / "a_x2.png").read_bytes() == png_image


def test_an_explicit_input_named_like_an_output_is_processed(model_file, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    _photo(out / "scan_x4.png")
    assert _sr("-m", model_file, out / "scan_x4.png", "-o", out) == 0
    assert (out / "scan_x4_x2.png").is_file()
    assert "1 image(s) written" in capsys.readouterr().err


def test_earlier_outputs_at_another_scale_are_not_read_again(model_file, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _photo(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    assert _sr("-m", model_file, folder, "-o", folder) == 0  # into the input folder
    capsys.readouterr()
    assert _sr("-m", model_file, folder, "-o", folder, "--outscale", "4") == 0  # another scale, same folder
    err = capsys.readouterr().err
    assert sorted(os.listdir(folder)) == [
        "a.png", "a_x2.png", "a_x2_kernel_png.npy", "a_x2_kernel_png.png",
        "a_x4.png", "a_x4_kernel_png.npy", "a_x4_kernel_png.png", "notes.txt",
    ]
    for name in ("a_x2.png", "a_x2_kernel_png.png"):
        assert f"{name}: in the output folder and named like an output" in err  # named, not silently skipped
    assert "notes.txt" in err


def _orientation_case(path: pathlib.Path, orientation: int) -> np.ndarray:
    pixels = np.random.default_rng(orientation).integers(0, 255, (6, 9, 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif.tobytes(), **({"quality": 100} if path.suffix == ".jpg" else {}))
    with Image.open(path) as shown:  # independent derivation: PIL's own viewer transform
        return np.asarray(ImageOps.exif_transpose(shown).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(tmp_path, orientation: int) -> None:
    for ext in (".png", ".jpg"):
        path = tmp_path / f"o{orientation}{ext}"
        expected = _orientation_case(path, orientation)
        got = np.round(read_input(str(path)).rgb[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        assert got.shape == expected.shape, (orientation, ext)
        assert np.array_equal(got, expected), (orientation, ext)
    assert apply_orientation(np.zeros((2, 3)), 6).shape == (3, 2)


def test_sr_output_of_a_rotated_phone_photo_is_upright(model_file, tmp_path) -> None:
    _orientation_case(tmp_path / "phone.jpg", 6)  # stored 6 x 9, shown 9 x 6
    assert _sr("-m", model_file, tmp_path / "phone.jpg", "-o", tmp_path / "o") == 0
    assert cv2.imread(str(tmp_path / "o" / "phone_x2.jpg")).shape == (18, 12, 3)


def test_pages_frames_and_other_formats_are_named(model_file, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(folder / "multi.tif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (folder / "photo.heic").write_bytes(b"\0" * 16)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "w.webp", lossless=True)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "b.bmp")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "g.gif")
    assert _sr("-m", model_file, folder, "-o", tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert "multi.tif: holds 2 pages/frames" in err
    assert "anim.gif: holds 2 pages/frames" in err
    assert "photo.heic: .heic images are not supported" in err
    assert sorted(n for n in os.listdir(tmp_path / "o") if "kernel" not in n) == ["b_x2.bmp", "g_x2.png", "w_x2.webp"]


def test_an_unwritable_output_folder_is_found_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    _photo(tmp_path / "a.png")
    out = tmp_path / "o"
    out.mkdir()
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    # the model file does not even exist: the output folder is checked first (exit 2, not the model's error)
    assert _sr("-m", tmp_path / "missing.pth", tmp_path / "a.png", "-o", out) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_nan_weights_are_an_error_and_write_nothing(tmp_path, capsys) -> None:
    model = _model()
    with torch.no_grad():
        next(model.restorer.parameters()).fill_(float("nan"))
    dan_blocks.save_model(model, tmp_path / "nan.pth")
    _photo(tmp_path / "a.png")
    code = _sr("-m", tmp_path / "nan.pth", tmp_path / "a.png", "-o", tmp_path / "o")
    assert code == 1
    err = capsys.readouterr().err
    assert "NaN" in err or "non-finite" in err
    assert not (tmp_path / "o" / "a_x2.png").exists()


def test_no_kernels_does_not_take_another_inputs_image_as_done(model_file, tmp_path, capsys) -> None:
    # a.png run first, then a.jpg --ext png --no-kernels: a_x2.png is a.png's result (its kernel files say so);
    # it was counted "already done" for a.jpg
    _photo(tmp_path / "a.png", seed=1)
    _photo(tmp_path / "a.jpg", seed=2)
    out = tmp_path / "o"
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", out) == 0
    before = (out / "a_x2.png").read_bytes()
    assert _sr("-m", model_file, tmp_path / "a.jpg", "-o", out, "--ext", "png", "--no-kernels") == 1
    err = capsys.readouterr().err
    assert "a_x2_kernel_png.npy" in err and "another input's result" in err
    assert (out / "a_x2.png").read_bytes() == before
    # its own earlier result still counts as done
    own = tmp_path / "own"
    assert _sr("-m", model_file, tmp_path / "a.jpg", "-o", own, "--ext", "png") == 0
    assert _sr("-m", model_file, tmp_path / "a.jpg", "-o", own, "--ext", "png", "--no-kernels") == 0
    assert "already done" in capsys.readouterr().err


def test_an_output_too_large_for_its_format_is_refused_before_the_work(model_file, tmp_path, monkeypatch,
                                                                      capsys) -> None:
    # WebP holds at most 16383 px a side: a 10 x 12 image at --outscale 2000 (24000 px) used to be computed
    # (gigabytes), then "cannot write the image"
    _photo(tmp_path / "a.webp")
    calls: list[int] = []
    import dan_blocks.inference.image as image_module

    original = image_module.super_resolve_image
    monkeypatch.setattr(image_module, "super_resolve_image", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert _sr("-m", model_file, tmp_path / "a.webp", "-o", tmp_path / "o", "--outscale", "2000") == 1
    err = capsys.readouterr().err
    assert "24000 x 20000" in err and "16383" in err
    assert calls == [] and not list((tmp_path / "o").iterdir())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_model_file_that_is_a_named_pipe_is_named(tmp_path, capsys) -> None:
    os.mkfifo(tmp_path / "model.pth")  # its size is 0: it was called "empty (0 bytes)"
    _photo(tmp_path / "a.png")
    assert _sr("-m", tmp_path / "model.pth", tmp_path / "a.png", "-o", tmp_path / "o") == 1
    assert "model.pth is a named pipe, not a regular file" in capsys.readouterr().err


def test_an_outscale_resize_larger_than_the_free_memory_is_refused_before_the_work(model_file, tmp_path, monkeypatch,
                                                                                   capsys) -> None:
    # a JPEG at --outscale 600 (38400 px a side, ~50 GB to resize) was killed by the system after minutes
    import dan_blocks.data.sr_io as sr_io

    _photo(tmp_path / "a.png")  # 10 x 12: x3 is 30 x 36 = 1080 pixels, 3 planes
    monkeypatch.setattr(sr_io, "_memory_available", lambda: 1080 * 3 * sr_io.RESIZE_BYTES_PER_SAMPLE - 1)
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "o", "--outscale", "3") == 1
    assert "36 x 30 pixels" in capsys.readouterr().err
    # the model's own scale resizes nothing: not refused
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "o", "--outscale", "2") == 0


def test_what_an_ext_cannot_hold_is_named(model_file, tmp_path, capsys) -> None:
    # --ext jpg dropped an alpha plane and 16-bit depth without a word (exit 0 either way: it was asked for)
    cv2.imwrite(str(tmp_path / "logo.png"), np.full((8, 8, 4), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((8, 8, 3), 40000, np.uint16))
    _photo(tmp_path / "plain.png")
    assert _sr("-m", model_file, tmp_path, "-o", tmp_path / "o", "--ext", "jpg") == 0
    err = capsys.readouterr().err
    assert "logo.png: its alpha plane is dropped (JPG holds none)" in err
    assert "deep.png: it is written in 8 bits (JPG holds no 16-bit samples)" in err
    assert "plain.png:" not in err
    assert cv2.imread(str(tmp_path / "o" / "logo_x2.jpg"), cv2.IMREAD_UNCHANGED).shape == (16, 16, 3)
