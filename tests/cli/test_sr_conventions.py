"""``dan-blocks sr`` with the field's conventions (Real-ESRGAN's inference script): default output folder,
--suffix, --ext, --outscale, --kernels/--no-kernels, device / precision / threads options, aliases, help."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from _helpers import run_sr as _sr
from _helpers import write_photo as _photo

import dan_blocks
from dan_blocks.cli.main import main
from dan_blocks.cli.sr import build_parser, kernel_names, output_names
from dan_blocks.inference.image import autocast_dtype

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_default_output_folder_is_results(model_file, tmp_path, monkeypatch) -> None:
    _photo(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    assert _sr("-m", model_file, "a.png") == 0
    assert sorted(os.listdir(tmp_path / "results")) == ["a_x2.png", "a_x2_kernel_png.npy", "a_x2_kernel_png.png"]


def test_suffix_ext_and_no_kernels(model_file, tmp_path) -> None:
    _photo(tmp_path / "a.jpg")
    out = tmp_path / "o"
    assert _sr("-m", model_file, "-i", tmp_path / "a.jpg", "-o", out, "--suffix", "big", "--ext", "png",
               "--no-kernels") == 0
    assert os.listdir(out) == ["a_big.png"]
    assert cv2.imread(str(out / "a_big.png")).shape == (20, 24, 3)
    assert _sr("-m", model_file, tmp_path / "a.jpg", "--out", out, "--suffix", "", "--no_kernels") == 0  # aliases
    assert sorted(os.listdir(out)) == ["a.jpg", "a_big.png"]


def test_empty_suffix_never_replaces_the_input(model_file, tmp_path, capsys) -> None:
    original = _photo(tmp_path / "a.png")
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path, "--suffix", "") == 1
    assert "would replace an input" in capsys.readouterr().err
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png")), original)


def test_outscale_is_a_lanczos_resize_of_the_model_output(model_file, tmp_path) -> None:
    _photo(tmp_path / "a.png", (10, 13, 3))
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "s2", "--precision", "fp32") == 0
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "s", "-s", "3.5", "--no-kernels") == 0
    x2 = cv2.imread(str(tmp_path / "s2" / "a_x2.png"))
    got = cv2.imread(str(tmp_path / "s" / "a_x3.5.png"))
    assert got.shape == (int(10 * 3.5), int(13 * 3.5), 3)  # Real-ESRGAN's int(side * outscale)
    # independent derivation: the x2 result resized with OpenCV's Lanczos (there from 8-bit, here from floats)
    expected = cv2.resize(x2.astype(np.float32), (got.shape[1], got.shape[0]), interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(got.astype(np.float32) - np.clip(expected, 0, 255)).max() <= 1.5
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "s", "--outscale", "2", "--no-kernels") == 0
    assert np.array_equal(cv2.imread(str(tmp_path / "s" / "a_x2.png")), x2)  # the model's own scale: no resize


def test_output_names_with_suffix_and_scales() -> None:
    assert output_names(["a/z.tif"], 2) == ["z_x2"]
    assert output_names(["a/z.tif"], 3.5) == ["z_x3.5"]
    assert output_names(["a/z.tif"], 4, "out") == ["z_out"]
    assert output_names(["a/z.tif"], 4, "") == ["z"]
    assert kernel_names("a_x4", "in/a.JPG") == ("a_x4_kernel_jpg.png", "a_x4_kernel_jpg.npy")


def test_bad_device_gpu_id_and_values_are_usage_errors(model_file, tmp_path, capsys) -> None:
    _photo(tmp_path / "a.png")
    cases = [
        (("--device", "tpu"), "--device tpu"),
        (("--device", "cuda:x"), "cuda:N"),
        (("-g", "-1"), "--gpu-id"),
        (("--device", "cpu", "-g", "0"), "contradicts"),
        (("--threads", "0"), "--threads"),
        (("--outscale", "0"), "--outscale"),
        (("--tile", "-3"), "--tile"),
        (("--precision", "fp8"), "--precision"),
        (("--ext", "gif"), "--ext"),
    ]
    if not torch.cuda.is_available():
        cases.append((("--device", "cuda:0"), "no CUDA GPU"))
        cases.append((("-g", "1"), "no CUDA GPU"))
    for extra, needle in cases:
        assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "o", *extra) == 2, extra
        assert needle in capsys.readouterr().err, extra
    assert not (tmp_path / "o").exists()
    assert _sr("-m", model_file, "-o", tmp_path / "o") == 2
    assert "no input" in capsys.readouterr().err


def test_threads_option_sets_torch_threads(model_file, tmp_path) -> None:
    _photo(tmp_path / "a.png")
    before = torch.get_num_threads()
    try:
        assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "o", "--threads", "2") == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tile_zero_is_untiled_and_tile_gives_the_same_pixels(model_file, tmp_path) -> None:
    _photo(tmp_path / "a.png", (17, 15, 3))
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "u", "-t", "0") == 0
    assert _sr("-m", model_file, tmp_path / "a.png", "-o", tmp_path / "t", "--tile", "6") == 0
    untiled = cv2.imread(str(tmp_path / "u" / "a_x2.png")).astype(int)
    tiled = cv2.imread(str(tmp_path / "t" / "a_x2.png")).astype(int)
    assert np.abs(untiled - tiled).max() <= 1  # exact tiling: float summation order only


def test_precision_auto_is_fp32_on_cpu_and_low_precision_on_cuda() -> None:
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") == torch.bfloat16
    assert autocast_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("half", "cpu")
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert autocast_dtype("auto", "cuda") == expected


def test_help_has_examples_aliases_and_is_torch_free() -> None:
    text = build_parser().format_help()
    assert "examples:" in text and "dan-blocks sr" in text.split("examples:")[1]
    for spelling in ("-o, --output, --out", "--opt, -opt", "--quiet, --no-progress", "-m, --model",
                     "--upsampler-tile, --upsampler_tile", "-g, --gpu-id, --gpu_id", "--kernels, --no-kernels"):
        assert spelling in text, spelling
    import subprocess
    import sys

    code = "import sys; from dan_blocks.cli.sr import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tiled_sr_with_input_norm(tmp_path) -> None:
    torch.manual_seed(3)
    model = dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, est_input_norm=True).eval()
    dan_blocks.save_model(model, tmp_path / "m.pth")
    _photo(tmp_path / "a.png", (40, 36, 3))
    for device in ("cuda", "cuda:0"):
        out = tmp_path / device.replace(":", "_")
        assert _sr("-m", tmp_path / "m.pth", tmp_path / "a.png", "-o", out, "--device", device, "--tile", "16",
                   "--precision", "fp32") == 0
    assert _sr("-m", tmp_path / "m.pth", tmp_path / "a.png", "-o", tmp_path / "c", "--device", "cpu") == 0
    gpu = cv2.imread(str(tmp_path / "cuda" / "a_x2.png")).astype(int)
    cpu = cv2.imread(str(tmp_path / "c" / "a_x2.png")).astype(int)
    assert np.abs(gpu - cpu).max() <= 1
    assert _sr("-m", tmp_path / "m.pth", tmp_path / "a.png", "-o", tmp_path / "g", "-g", "0", "--tile", "16") == 0


def test_tiled_run_shows_progress_within_the_image(model_file, tmp_path, monkeypatch, capsys) -> None:
    import tqdm

    finals: dict[str, tuple[int, int | None]] = {}

    class Recording(tqdm.tqdm):  # type: ignore[type-arg]
        def close(self) -> None:
            finals[str(self.desc)] = (self.n, self.total)
            super().close()

    monkeypatch.setattr(tqdm, "tqdm", Recording)
    _photo(tmp_path / "a.png", (17, 15, 3))
    assert main(["sr", "-m", str(model_file), str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--tile", "6"]) == 0
    assert "tiles" in capsys.readouterr().err
    # 3 x 3 SR tiles per restorer pass (upsampler tile = min(6, 128)), 2 iterations
    assert finals["tiles"] == (18, 18)
    assert finals["sr"] == (1, 1)
