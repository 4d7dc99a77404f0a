"""Issue 15, files: images come back in their own mode and depth, reruns resume, output paths are checked first."""

from __future__ import annotations

import os
import pathlib
import struct

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import dan_blocks
import dan_blocks.basicsr  # makes BasicSR importable: its MATLAB imresize is an expectation here
from dan_blocks.cli.main import main
from dan_blocks.formats import to_release_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCALE = 2


def _model() -> dan_blocks.DAN:
    torch.manual_seed(0)
    return dan_blocks.dan_v2(SCALE, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1).eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("model") / "m.pth"
    dan_blocks.save_model(_model(), path)
    return path


def _sr(*args: object) -> int:
    return main(["sr", "--no-progress", *map(str, args)])


def _png_header(path: pathlib.Path) -> tuple[int, int]:
    """(bit depth, colour type) read from the IHDR chunk's bytes (PNG spec: 0 grey, 4 grey+alpha, 6 RGBA)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def _expected_luma(grey: np.ndarray, max_value: int) -> np.ndarray:
    """BT.601 luma of the model's SR of the grey image replicated to RGB, in the input's range."""
    lr = torch.from_numpy(np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32) / max_value)
    with torch.no_grad():
        sr = _model()(lr.permute(2, 0, 1)[None]).sr[0].permute(1, 2, 0).numpy().astype(np.float64)
    luma = 0.299 * sr[:, :, 0] + 0.587 * sr[:, :, 1] + 0.114 * sr[:, :, 2]
    return np.clip(np.round(luma * max_value), 0, max_value)


def _expected_alpha(alpha: np.ndarray, max_value: int) -> np.ndarray:
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize  # MATLAB bicubic, as documented

    up = basicsr_imresize(alpha[:, :, None].astype(np.float64) / max_value, SCALE)[:, :, 0]
    return np.clip(np.round(up * max_value), 0, max_value)


@pytest.mark.parametrize("depth", [8, 16])
def test_grey_alpha_png_comes_back_grey_alpha(model_file, tmp_path, depth: int) -> None:
    rng = np.random.default_rng(3)
    max_value = 255 if depth == 8 else 65535
    dtype = np.uint8 if depth == 8 else np.uint16
    grey = cv2.GaussianBlur(rng.integers(0, max_value, (14, 13)).astype(np.float64), (3, 3), 1).astype(dtype)
    alpha = np.tile(np.linspace(0, max_value, 13).round().astype(dtype), (14, 1))
    src = tmp_path / "la.png"
    if depth == 8:
        Image.fromarray(np.dstack([grey, alpha]), "LA").save(src)  # a grey+alpha file made by another library
    else:  # Pillow writes no 16-bit LA: a hand-made PNG, colour type 4, bit depth 16 (PNG spec section 11.2.2)
        import zlib

        rows = np.dstack([grey, alpha]).astype(">u2").view(np.uint8).reshape(14, -1)
        raw = np.concatenate([np.zeros((14, 1), np.uint8), rows], axis=1).tobytes()

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

        src.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 13, 14, 16, 4, 0, 0, 0))
                        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert _png_header(src) == (depth, 4)
    assert cv2.imread(str(src), cv2.IMREAD_UNCHANGED).shape == (14, 13, 4)  # what OpenCV hands back

    assert _sr("-m", model_file, src, "-o", tmp_path / "out") == 0
    out = tmp_path / "out" / "la_x2.png"
    assert _png_header(out) == (depth, 4)  # grey+alpha at the input's depth, not RGBA
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # decoded by OpenCV: B = G = R = grey, then alpha
    assert got.dtype == dtype and got.shape == (28, 26, 4)
    assert np.abs(got[:, :, 0].astype(np.float64) - _expected_luma(grey, max_value)).max() <= 1
    assert np.abs(got[:, :, 3].astype(np.float64) - _expected_alpha(alpha, max_value)).max() <= 1
    if depth == 8:
        with Image.open(out) as im:
            assert im.mode == "LA"


def test_sixteen_bit_grey_and_rgb_stay_sixteen_bit(model_file, tmp_path) -> None:
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 65535, (12, 11)).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "g16.png"), grey)
    assert cv2.imwrite(str(tmp_path / "c16.png"), rng.integers(0, 65535, (12, 11, 3)).astype(np.uint16))
    assert cv2.imwrite(str(tmp_path / "g8.png"), (grey // 257).astype(np.uint8))
    assert _sr("-m", model_file, tmp_path / "g16.png", tmp_path / "c16.png", tmp_path / "g8.png",
               "-o", tmp_path / "out") == 0
    assert _png_header(tmp_path / "out" / "g16_x2.png") == (16, 0)
    assert _png_header(tmp_path / "out" / "c16_x2.png") == (16, 2)
    assert _png_header(tmp_path / "out" / "g8_x2.png") == (8, 0)
    got = cv2.imread(str(tmp_path / "out" / "g16_x2.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == (24, 22)
    assert np.abs(got.astype(np.float64) - _expected_luma(grey, 65535)).max() <= 1


def test_a_grey_alpha_tiff_is_refused_not_stripped_of_its_alpha(model_file, tmp_path, capsys) -> None:
    src = tmp_path / "la.tif"
    Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA").save(src)
    assert cv2.imread(str(src), cv2.IMREAD_UNCHANGED).ndim == 2  # OpenCV alone: the alpha plane is gone
    assert _sr("-m", model_file, src, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "la.tif" in err and "grey+alpha TIFF" in err
    assert not (tmp_path / "out" / "la_x2.tif").exists()


def _photos(folder: pathlib.Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.png"):
        assert cv2.imwrite(str(folder / name), rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))


def test_a_rerun_resumes_and_overwrite_recomputes(model_file, tmp_path, capsys) -> None:
    _photos(tmp_path / "in")
    out = tmp_path / "out"
    assert _sr("-m", model_file, tmp_path / "in", "-o", out) == 0
    real_kernel = np.load(out / "a_x2_kernel_png.npy")
    b_image = (out / "b_x2.png").read_bytes()
    np.save(out / "a_x2_kernel_png.npy", np.zeros(3))  # a marker: a skipped image's outputs stay as they are
    (out / "b_x2.png").unlink()  # as a run killed between b's kernel files and its image leaves it
    capsys.readouterr()

    assert _sr("-m", model_file, tmp_path / "in", "-o", out) == 0  # the partial run does not block the rerun
    err = capsys.readouterr().err
    assert "a.png: outputs exist, skipped (--overwrite recomputes them)" in err
    assert "1 image(s) written" in err and "1 already done" in err and "0 failed" in err
    assert np.array_equal(np.load(out / "a_x2_kernel_png.npy"), np.zeros(3))
    assert (out / "b_x2.png").read_bytes() == b_image  # b completed, the same as the first time

    assert _sr("-m", model_file, tmp_path / "in", "-o", out, "--overwrite") == 0
    assert np.array_equal(np.load(out / "a_x2_kernel_png.npy"), real_kernel)
    assert "2 image(s) written" in capsys.readouterr().err


def test_sr_help_and_docs_describe_the_rerun(capsys) -> None:
    assert main(["sr", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "outputs all exist is skipped" in text and "--overwrite recomputes" in text
    docs = (pathlib.Path(__file__).parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "--overwrite" in docs and "skipped" in docs


# -- output paths: an existing folder gets the default name; a file in the way is a usage error (exit 2) -----


def test_fit_pca_into_a_folder_uses_the_default_name(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    common = ["fit-pca", "--samples", "200", "--kernel-size", "11", "--code-length", "4"]
    assert main([*common, "-o", "existing"]) == 0
    assert main([*common, "--setting", "2", "-o", "new/"]) == 0
    for path in (tmp_path / "existing" / "setting1_k11_c4.pt", tmp_path / "new" / "setting2_k11_c4.pt"):
        saved = torch.load(path, weights_only=True)
        assert any(isinstance(v, torch.Tensor) and v.shape == (121, 4) for v in saved.values()), path
    assert "new/setting2_k11_c4.pt" in capsys.readouterr().out


@pytest.fixture()
def a_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "photo.png"
    path.write_bytes(b"not a folder")
    return path


def test_fit_pca_under_a_file_is_a_usage_error(tmp_path, a_file, capsys) -> None:
    for target in (a_file / "out.pt", a_file / "deeper" / "out.pt"):
        assert main(["fit-pca", "--samples", "200", "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file, not a folder" in err and "-o/--output" in err and "Traceback" not in err
    assert a_file.read_bytes() == b"not a folder"


def test_convert_into_a_folder_and_under_a_file(tmp_path, a_file, capsys) -> None:
    torch.manual_seed(0)
    model = dan_blocks.dan_v2(SCALE, pca=dan_blocks.default_pca(21, 10).matrix.clone(), nf=8, nb=1, ng=1, est_nf=8,
                              est_nb=1, est_tail_nf=8)
    release = tmp_path / "danv2_release.pth"
    torch.save(to_release_state_dict(model.state_dict()), release)
    assert main(["convert", str(release), str(a_file / "x.pth")]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    assert main(["convert", str(release), str(tmp_path / "out")]) == 0
    written = torch.load(tmp_path / "out" / "danv2_release_basicsr.pth", weights_only=True)
    assert written["params"].keys() == model.state_dict().keys()


def test_make_testset_and_sr_outputs_under_or_as_a_file(tmp_path, a_file, model_file, capsys) -> None:
    for out in (a_file / "set", a_file):
        assert main(["make-testset", "builtin:skimage-test", str(out), "--quiet", "--max-size", "16"]) == 2
        err = capsys.readouterr().err
        assert "OUT_DIR" in err and str(a_file) in err and "usage error" in err
    image = tmp_path / "x.png"
    assert cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert _sr("-m", model_file, image, "-o", a_file) == 2
    assert "it is a file, expected a folder" in capsys.readouterr().err
    assert _sr("-m", model_file, image, "-o", a_file / "sub") == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err
    assert a_file.read_bytes() == b"not a folder"


def test_fit_pca_never_replaces_a_file_without_overwrite(tmp_path, capsys) -> None:
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"my own PCA file")
    common = ["fit-pca", "--samples", "200", "--kernel-size", "11", "--code-length", "4", "-o", str(mine)]
    assert main(common) == 1
    assert "exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own PCA file"
    assert main([*common, "--overwrite"]) == 0
    saved = torch.load(mine, weights_only=True)
    assert any(isinstance(v, torch.Tensor) and v.shape == (121, 4) for v in saved.values())


def test_sr_removes_temporary_files_of_a_killed_run(tmp_path, capsys) -> None:
    """A kill between writing an image's temporary file and renaming it leaves `.NAME.tmp<pid>.png`; the next
    run removes it (its process is gone) and does not report it as a skipped input in an in-place run."""
    from dan_blocks.utils.files import temp_path

    model = tmp_path / "m.pth"
    dan_blocks.save_model(dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1), model)
    folder = tmp_path / "photos"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "a.png"), np.full((12, 10, 3), 90, np.uint8))
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: never a living process
    stale = temp_path(folder / "a_x2.png", keep_extension=True).replace(f"tmp{os.getpid()}", f"tmp{dead_pid}")
    pathlib.Path(stale).write_bytes(b"half an image")
    assert main(["sr", "-m", str(model), str(folder), "-o", str(folder), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert os.path.basename(stale) in err and "interrupted run" in err and "hidden file" not in err
    assert not os.path.exists(stale) and (folder / "a_x2.png").is_file()


@pytest.mark.parametrize("where", ["file", "under-file", "empty"])
def test_quickstart_output_folder_is_checked_first(tmp_path, monkeypatch, capsys, where: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    out = {"file": "afile", "under-file": "afile/sub", "empty": ""}[where]
    assert main(["quickstart", "--out", out]) == 2
    assert "usage error: --out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_text() == "mine"
