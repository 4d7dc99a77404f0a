"""Bad input to the degradation ops, the data readers, the paired dataset, the kernel metrics and make-testset
gets a clear error naming the argument or file and what was expected (a hostile user's tour)."""

from __future__ import annotations

import json
import math
import pathlib
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

import dan_blocks
from dan_blocks.basicsr.blindsr_paired_dataset import BlindSRPairedDataset
from dan_blocks.cli.main import main
from dan_blocks.data import list_images, make_testset, read_image, read_kernel
from dan_blocks.data.sr_io import read_input, sr_to_array
from dan_blocks.data.testsets import center_crop
from dan_blocks.degradations import (
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    IsotropicGaussianKernel,
    SpatiallyVariantDegradation,
    add_gaussian_noise,
    anisotropic_gaussian_kernel,
    blur,
    build_degradation,
    imresize,
    isotropic_gaussian_kernel,
    quantize,
    random_disturb,
)
from dan_blocks.metrics import kernel_error, kernel_psnr

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMG = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))


# --- 1. degradation functions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [math.inf, -math.inf, math.nan, 0, -0.5])
def test_imresize_refuses_a_scale_that_is_not_a_finite_positive_number(scale: float) -> None:
    with pytest.raises(ValueError, match=r"imresize: scale must be a finite number > 0"):
        imresize(IMG, scale)


@pytest.mark.parametrize("scale", ["0.5", None, [0.5], True])
def test_imresize_refuses_a_scale_of_the_wrong_type(scale: object) -> None:
    with pytest.raises(TypeError, match=r"imresize: scale must be a finite number > 0"):
        imresize(IMG, scale)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scale"):
        dan_blocks.degradations.Imresize(scale)  # type: ignore[arg-type]


def test_imresize_refuses_an_integer_image_with_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"torch\.uint8"):
        imresize((IMG * 255).to(torch.uint8), 0.5)


@pytest.mark.parametrize("sigma", [math.nan, math.inf, 0.0, torch.tensor([1.0, math.nan])])
def test_isotropic_kernels_refuse_non_finite_or_non_positive_sigmas(sigma: object) -> None:
    with pytest.raises(ValueError, match="isotropic_gaussian_kernel: sigma must be finite and > 0"):
        isotropic_gaussian_kernel(sigma)  # type: ignore[arg-type]


def test_isotropic_kernel_refuses_a_string_sigma() -> None:
    with pytest.raises(TypeError, match="sigma must be a tensor, a number or a list of numbers, got 'wide'"):
        isotropic_gaussian_kernel("wide")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "name"),
    [((math.nan, 1.0, 0.0), "sigma_x"), ((1.0, math.inf, 0.0), "sigma_y"), ((1.0, 1.0, math.nan), "theta")],
)
def test_anisotropic_kernels_refuse_non_finite_parameters(args: tuple[float, float, float], name: str) -> None:
    with pytest.raises(ValueError, match=f"anisotropic_gaussian_kernel: {name} must be finite"):
        anisotropic_gaussian_kernel(*args)


def test_kernel_samplers_refuse_non_finite_ranges() -> None:
    with pytest.raises(ValueError, match=r"degradation sigma must be a number or \[low, high\] of numbers \(finite\)"):
        IsotropicGaussianKernel(21, [0.2, math.inf])
    with pytest.raises(ValueError, match="degradation theta"):
        AnisotropicGaussianKernel(11, theta=[0.0, math.nan])
    with pytest.raises(ValueError, match="degradation disturb_high must be a finite number >= 0, got -1"):
        AnisotropicGaussianKernel(11, disturb_high=-1)
    with pytest.raises(ValueError, match="degradation sigmas must be a non-empty list of finite positive numbers"):
        FixedGaussianKernel(21, sigmas=[1.0, math.nan])


@pytest.mark.parametrize("high", [-2.0, -0.1, math.inf, math.nan])
def test_random_disturb_refuses_a_range_that_can_make_taps_negative(high: float) -> None:
    kernels = isotropic_gaussian_kernel(torch.tensor([1.0, 2.0]), 11)
    with pytest.raises(ValueError, match=r"random_disturb: high .* must be a finite number >= 0"):
        random_disturb(kernels, torch.Generator().manual_seed(0), high=high)
    out = random_disturb(kernels, torch.Generator().manual_seed(0), high=0.5)
    assert (out >= 0).all() and torch.allclose(out.sum(dim=(1, 2)), torch.ones(2))


def test_quantize_levels_follow_its_contract() -> None:
    x = torch.tensor([0.0, 0.2, 0.6, 1.0])
    assert quantize(x, 1).tolist() == [0.0, 0.0, 1.0, 1.0]  # L = 1: the two values 0 and 1
    assert quantize(x, 4).tolist() == [0.0, 0.25, 0.5, 1.0]
    for levels in (0, -3):
        with pytest.raises(ValueError, match=rf"quantize: levels .* must be an integer >= 1, got {levels}"):
            quantize(x, levels)
    for levels in (2.5, "255", True):
        with pytest.raises(TypeError, match="quantize: levels"):
            quantize(x, levels)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"torch\.int64"):
        quantize(torch.tensor([0, 1]))


def test_blur_refuses_non_finite_kernels_and_integer_images() -> None:
    kernel = torch.full((5, 5), 1 / 25)
    for bad in (math.nan, math.inf):
        broken = kernel.clone()
        broken[2, 2] = bad
        with pytest.raises(ValueError, match="blur: kernel taps must be finite"):
            blur(IMG, broken)
    with pytest.raises(TypeError, match=r"blur: img must be a floating tensor .*got torch\.uint8"):
        blur((IMG * 255).to(torch.uint8), kernel)
    assert blur(IMG, kernel).dtype == torch.float32


def test_add_gaussian_noise_refuses_negative_or_non_finite_levels() -> None:
    for level in (-0.1, math.nan, math.inf, torch.tensor([0.1]), torch.tensor([-0.1])):
        if isinstance(level, torch.Tensor) and level.item() >= 0:
            assert add_gaussian_noise(IMG, level, torch.Generator().manual_seed(0)).shape == IMG.shape
            continue
        with pytest.raises(ValueError, match=r"add_gaussian_noise: level .*(finite|>= 0)"):
            add_gaussian_noise(IMG, level)
    with pytest.raises(TypeError, match="add_gaussian_noise: level"):
        add_gaussian_noise(IMG, "ten")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"torch\.uint8"):
        add_gaussian_noise((IMG * 255).to(torch.uint8), 0.1)


@pytest.mark.parametrize("key", ["sigma", "kernel"])
def test_build_degradation_names_a_string_sigma(key: str) -> None:
    opt: dict = {"preset": "setting1", "scale": 2}
    opt[key] = "wide" if key == "sigma" else {"sigma": "wide"}
    with pytest.raises(TypeError, match=r"degradation sigma must be a number or \[low, high\] of numbers, got 'wide'"):
        build_degradation(opt)


def test_build_degradation_refuses_a_bad_sigma_range_name_or_scale() -> None:
    with pytest.raises(ValueError, match=r"unknown sigma_range \[1, 2\]; accepted: \['paper', 'release'\]"):
        build_degradation({"preset": "setting1", "scale": 2, "sigma_range": [1, 2]})
    with pytest.raises(TypeError, match="degradation preset 'setting1': scale must be an integer >= 1, got '2'"):
        build_degradation({"preset": "setting1", "scale": "2"})


@pytest.mark.parametrize(
    ("noise", "error", "message"),
    [
        ({"level": "ten"}, TypeError, r"degradation noise level must be a number or \[low, high\] .* got 'ten'"),
        ({"level": -5}, ValueError, r"degradation noise level .*must be a finite number >= 0, got -5"),
        ({"level": [10, 1]}, ValueError, r"degradation noise level .*low <= high, got \[10, 1\]"),
        ({"level": [-1, 1]}, ValueError, r"degradation noise level must be >= 0, got \[-1, 1\]"),
        ({"level": 0.1, "rate_clean": 2}, ValueError, r"rate_clean must be in \[0, 1\], got 2"),
        (0.1, TypeError, r"degradation noise must be \{level"),
    ],
)
def test_noise_options_are_refused_when_the_degradation_is_built(noise: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_degradation({"preset": "setting1", "scale": 2, "noise": noise})
    with pytest.raises(error, match=message.replace("degradation", "SpatiallyVariantDegradation")):
        SpatiallyVariantDegradation(scale=2, kernel_size=5, noise=noise)  # type: ignore[arg-type]


def test_spatially_variant_degradation_names_a_string_sigma() -> None:
    with pytest.raises(TypeError, match=r"SpatiallyVariantDegradation sigma must be a number .* got 'wide'"):
        build_degradation({"type": "SpatiallyVariantDegradation", "scale": 2, "sigma": "wide"})


# --- 2. data readers ------------------------------------------------------------------------------------------------


def _pixels(shape: tuple[int, ...] = (10, 12, 3), dtype: type = np.uint8) -> np.ndarray:
    high = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(0).integers(0, high, shape, dtype=dtype)


def test_a_png_named_jpg_is_read_and_checked_as_the_png_it_is(tmp_path: pathlib.Path) -> None:
    bgr = _pixels()
    assert cv2.imwrite(str(tmp_path / "real.png"), bgr)
    shutil.copy(tmp_path / "real.png", tmp_path / "named.jpg")
    assert np.array_equal(read_image(tmp_path / "named.jpg"), bgr[:, :, ::-1])  # lossless: the PNG's pixels
    data = (tmp_path / "real.png").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) - 20])
    with pytest.raises(OSError, match=r"cut\.jpg: the PNG file is truncated \(it ends before its IEND chunk\)"):
        read_image(tmp_path / "cut.jpg")


def test_a_jpeg_named_png_is_checked_as_a_jpeg(tmp_path: pathlib.Path) -> None:
    assert cv2.imwrite(str(tmp_path / "real.jpg"), _pixels((32, 32, 3)))
    data = (tmp_path / "real.jpg").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(OSError, match=r"cut\.png: the JPEG file is truncated"):
        read_image(tmp_path / "cut.png")


def test_sr_output_of_a_16_bit_png_named_jpg_is_an_8_bit_jpeg_array(tmp_path: pathlib.Path) -> None:
    bgr16 = _pixels((6, 5, 3), np.uint16)
    assert cv2.imwrite(str(tmp_path / "deep.png"), bgr16)
    shutil.copy(tmp_path / "deep.png", tmp_path / "deep.jpg")
    image = read_input(str(tmp_path / "deep.jpg"))
    assert image.max_value == 65535 and image.mode == "rgb"
    sr = torch.from_numpy(bgr16[:, :, ::-1].astype(np.float32) / 65535).permute(2, 0, 1)[None]
    out = sr_to_array(sr, image, 1, str(tmp_path / "deep_x1.jpg"))
    assert out.dtype == np.uint8  # what a JPEG file holds: no saturated 16-bit values
    assert np.abs(out.astype(np.int64) - np.round(bgr16 / 65535 * 255)).max() <= 0
    assert sr_to_array(sr, image, 1, str(tmp_path / "deep_x1.png")).dtype == np.uint16


def test_dan_blocks_sr_on_a_png_named_jpg_writes_a_jpeg(tmp_path: pathlib.Path, capsys) -> None:
    torch.manual_seed(0)
    model = dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1).eval()
    dan_blocks.save_model(model, tmp_path / "m.pth")
    assert cv2.imwrite(str(tmp_path / "photo.png"), _pixels((12, 10, 3)))
    shutil.copy(tmp_path / "photo.png", tmp_path / "photo.jpg")
    code = main(["sr", "-m", str(tmp_path / "m.pth"), str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "out"),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    written = tmp_path / "out" / "photo_x2.jpg"
    assert written.read_bytes()[:2] == b"\xff\xd8"  # the format its name says
    assert cv2.imread(str(written)).shape == (24, 20, 3)


def test_read_kernel_names_a_damaged_or_pickled_npy(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.full((3, 3), 1 / 9, np.float32))
    damaged = tmp_path / "damaged.npy"
    damaged.write_bytes(b"\x93NUMPY\x07\x00" + good.read_bytes()[8:])  # format version 7
    with pytest.raises(ValueError, match=r"cannot read kernel file '.*damaged\.npy': not a valid NumPy \.npy"):
        read_kernel(damaged)
    short = tmp_path / "short.npy"
    short.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"short\.npy"):
        read_kernel(short)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"cannot read kernel file '.*pickled\.npy'"):
        read_kernel(pickled)
    text = tmp_path / "text.npy"
    np.save(text, np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"text\.npy.* must hold real numbers, got dtype <U1"):
        read_kernel(text)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match=r"nan\.npy.* has NaN or infinite taps"):
        read_kernel(nan)
    assert read_kernel(good).shape == (3, 3)


def test_an_image_folder_that_is_a_file_is_called_a_file(tmp_path: pathlib.Path, capsys) -> None:
    a_file = tmp_path / "photos"
    a_file.write_bytes(b"not a folder")
    with pytest.raises(NotADirectoryError, match=r"image folder .*photos is a file, expected a folder"):
        list_images(a_file)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(tmp_path / "missing")
    assert main(["make-testset", str(a_file), str(tmp_path / "out"), "--quiet"]) == 1
    assert "photos is a file, expected a folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- 3. paired dataset ------------------------------------------------------------------------------------------------


@pytest.fixture()
def testset(tmp_path: pathlib.Path) -> pathlib.Path:
    hr = tmp_path / "hr"
    hr.mkdir()
    assert cv2.imwrite(str(hr / "a.png"), _pixels((24, 26, 3)))
    make_testset(hr, tmp_path / "set", protocol="aniso", scale=2, kernel_size=5, progress=False)
    return tmp_path / "set"


def test_a_truncated_manifest_is_named(testset: pathlib.Path) -> None:
    manifest = testset / "manifest.json"
    manifest.write_text(manifest.read_text()[:45])
    with pytest.raises(ValueError, match=r"test-set manifest '.*manifest\.json' is not valid JSON"):
        BlindSRPairedDataset({"dataroot": str(testset), "scale": 2})
    manifest.write_text('{"scale": 2, "pairs": [{"lr": 3}]}')
    with pytest.raises(ValueError, match=r"manifest\.json' has no valid 'pairs' list"):
        BlindSRPairedDataset({"dataroot": str(testset), "scale": 2})


def test_a_manifest_lr_of_the_wrong_size_is_refused(testset: pathlib.Path) -> None:
    dataset = BlindSRPairedDataset({"dataroot": str(testset), "scale": 2})
    assert dataset[0]["lq"].shape == (3, 12, 13) and dataset[0]["gt"].shape == (3, 24, 26)
    assert cv2.imwrite(str(testset / "lr_x2" / "a.png"), _pixels((13, 17, 3)))
    with pytest.raises(ValueError, match=r"LR '.*lr_x2/a\.png' / GT '.*gt/a\.png': the LR is 13x17, expected 12x13"):
        dataset[0]
    assert cv2.imwrite(str(testset / "lr_x2" / "a.png"), _pixels((10, 13, 3)))  # smaller: no silent crop either
    with pytest.raises(ValueError, match="the LR is 10x13, expected 12x13"):
        dataset[0]


def test_div2krk_layout_keeps_its_mod_crop(tmp_path: pathlib.Path) -> None:
    for folder in ("gt", "lr_x2"):
        (tmp_path / folder).mkdir()
    assert cv2.imwrite(str(tmp_path / "gt" / "img_1_gt.png"), _pixels((25, 27, 3)))
    assert cv2.imwrite(str(tmp_path / "lr_x2" / "im_1.png"), _pixels((12, 13, 3)))
    item = BlindSRPairedDataset({"dataroot": str(tmp_path), "scale": 2})[0]
    assert item["gt"].shape == (3, 24, 26)


# --- 4. kernel metrics ------------------------------------------------------------------------------------------------


def test_kernel_metrics_name_both_shapes_of_mismatched_maps() -> None:
    est, ref = torch.rand(2, 441, 4, 4), torch.rand(2, 441, 3, 3)
    for metric in (kernel_error, kernel_psnr):
        with pytest.raises(ValueError, match=r"estimate \(2, 441, 4, 4\) and truth \(2, 441, 3, 3\)"):
            metric(est, ref)
    assert kernel_error(est, torch.rand(2, 21, 21)).shape == (2,)  # a global kernel is compared with every pixel
    assert kernel_error(est, torch.rand(2, 441, 1, 1)).shape == (2,)


def test_kernel_metrics_refuse_numpy_inputs() -> None:
    k = np.full((1, 3, 3), 1 / 9)
    for metric in (kernel_error, kernel_psnr):
        with pytest.raises(TypeError, match="expected torch tensors, got ndarray for estimate"):
            metric(k, torch.from_numpy(k))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected torch tensors, got ndarray for truth"):
            metric(torch.from_numpy(k), k)  # type: ignore[arg-type]


# --- 5. make-testset ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "--scale must be an integer >= 1, got 0"),
        (["--scale", "-2"], "--scale must be an integer >= 1, got -2"),
        (["--scale", "5"], r"Gaussian8 is defined for scales \[2, 3, 4\], got --scale 5"),
        (["--kernel-size", "20"], "--kernel-size must be a positive odd integer .* got 20"),
        (["--kernel-size", "0"], "--kernel-size must be a positive odd integer .* got 0"),
        (["--protocol", "aniso", "--sigma", "3", "1"], r"--sigma .*low <= high, got \(3\.0, 1\.0\)"),
        (["--protocol", "aniso", "--sigma", "-1", "2"], r"--sigma .*must be > 0, got \(-1\.0, 2\.0\)"),
        (["--max-size", "0"], "--max-size must be an integer >= 1, got 0"),
        (["--sigma", "1", "2"], "--sigma only applies to --protocol aniso"),
        (["--no-disturb"], "--no-disturb only applies to --protocol aniso"),
    ],
)
def test_make_testset_usage_errors_come_before_any_folder(
    tmp_path: pathlib.Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["make-testset", "builtin:skimage-test", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert "usage error" in err and re.search(message, err), err
    assert not out.exists()


def test_make_testset_library_checks_before_making_folders(tmp_path: pathlib.Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    assert cv2.imwrite(str(hr / "a.png"), _pixels((24, 24, 3)))
    with pytest.raises(ValueError, match="scale must be an integer >= 1, got 0"):
        make_testset(hr, tmp_path / "out", scale=0, progress=False)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        make_testset(hr, tmp_path / "out", protocol="aniso", scale=2, kernel_size=0, progress=False)
    with pytest.raises(ValueError, match="smaller than the kernel"):  # the first image fails: nothing is made
        make_testset(hr, tmp_path / "out", protocol="aniso", scale=2, kernel_size=51, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="max_size must be an integer >= 1, got 0"):
        center_crop(np.zeros((4, 4, 3), np.uint8), 0)
    assert center_crop(np.zeros((6, 4, 3), np.uint8), 3).shape == (3, 3, 3)
    manifest = make_testset(hr, tmp_path / "ok", protocol="aniso", scale=2, kernel_size=5, progress=False)
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["kernel_size"] == manifest["kernel_size"] == 5


def test_finite_checks_never_synchronise_an_accelerator() -> None:
    """The NaN checks of the per-batch parameters run on CPU tensors only: on another device they would stall
    the training loop on a host synchronisation per batch. A meta tensor (no data, no sync possible) passes."""
    from dan_blocks.degradations.checks import check_finite

    check_finite(torch.full((4, 21, 21), float("nan"), device="meta"), "kernels")
    with pytest.raises(ValueError, match="kernels must be finite"):
        check_finite(torch.full((4, 21, 21), float("nan")), "kernels")
