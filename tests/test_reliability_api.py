"""Issue 15, Python API and ``sr`` flags: bad images, sizes and devices are refused naming the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import dan_blocks
from dan_blocks.cli.main import main
from dan_blocks.inference import iter_tiles, tiled, upscale
from dan_blocks.inference.tiling import TileSizeError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> dan_blocks.DAN:
    torch.manual_seed(0)
    return dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1).eval()


def _lr(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("shape", [(1, 3, 0, 0), (1, 3, 0, 8), (1, 3, 8, 0), (0, 3, 8, 8)])
def test_empty_images_are_refused(model, shape) -> None:
    for call in (lambda x: upscale(model, x), lambda x: upscale(model, x, 4), lambda x: tiled(model, x, 4)):
        with pytest.raises(ValueError, match=r"lr must hold at least one pixel .*" + str(shape).replace("(", r"\(")
                           .replace(")", r"\)")):
            call(torch.zeros(shape))


def test_float64_input_is_refused_naming_both_dtypes(model) -> None:
    with pytest.raises(ValueError, match=r"lr is torch\.float64 .* weights are torch\.float32"):
        upscale(model, _lr(1, 3, 8, 8).double())
    # the documented way: cast to the model's dtype (the result is the model's own)
    lr = _lr(1, 3, 8, 8).double()
    weight = next(model.parameters())
    with torch.no_grad():
        expected = model(lr.float()).sr
    assert torch.allclose(upscale(model, lr.to(weight)).sr, expected, atol=1e-6)
    # a float64 model takes float64 input
    double = dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1).double().eval()
    assert upscale(double, lr).sr.dtype == torch.float64


BAD_SIZES: list[Any] = [0, -1, True, False, 2.5, 4.0, "8", None]


@pytest.mark.parametrize("bad", BAD_SIZES)
def test_bad_sizes_are_named_everywhere(model, bad) -> None:
    lr = _lr(1, 3, 8, 8)
    checks: list[tuple[str, Any]] = [
        ("tile_size", lambda: tiled(model, lr, bad)),
        ("tile_size", lambda: list(iter_tiles((8, 8), bad, 1))),
    ]
    if bad is not None:  # None is fine where it means "default" / "untiled"
        checks += [
            ("upsampler_tile", lambda: tiled(model, lr, 4, upsampler_tile=bad)),
            ("upsampler_tile", lambda: upscale(model, lr, 4, upsampler_tile=bad)),
            ("tile_size", lambda: upscale(model, lr, bad)),
        ]
    if bad not in (0, None):  # 0 is a valid halo
        checks += [
            ("max_halo", lambda: upscale(model, lr, 4, max_halo=bad)),
            ("max_halo", lambda: tiled(model, lr, 4, max_halo=bad)),
            ("halo", lambda: list(iter_tiles((8, 8), 4, bad))),
        ]
    for name, call in checks:
        with pytest.raises(TileSizeError, match=rf"\b{name} must be an integer >= \d") as info:
            call()
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)  # catchable as either


def test_upsampler_tile_zero_is_no_longer_the_default(model) -> None:
    lr = _lr(1, 3, 9, 7)
    with pytest.raises(ValueError, match="upsampler_tile must be an integer >= 1 or None, got 0"):
        tiled(model, lr, 4, upsampler_tile=0)  # was silently replaced by min(tile_size, 128)
    with pytest.raises(ValueError, match="upsampler_tile is only used with tile_size"):
        upscale(model, lr, upsampler_tile=4)  # was silently ignored


def test_numpy_integers_are_sizes(model) -> None:
    lr = _lr(1, 3, 9, 7)
    with torch.no_grad():
        expected = model(lr).sr
    out = upscale(model, lr, np.int64(4), upsampler_tile=np.int32(3), max_halo=np.int16(2))
    assert torch.allclose(out.sr, expected, atol=1e-5)
    assert len(list(iter_tiles((9, 7), np.int64(4), 1))) == 3 * 2


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:99", "mps", "gpu", "not-a-device", 3.5])
def test_devices_this_machine_lacks_are_named(model, device) -> None:
    have_cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    if (str(device).startswith("cuda") and have_cuda and device != "cuda:99") or (
            device == "mps" and mps is not None and mps.is_available()):
        pytest.skip("this machine has that device")
    if device == "cuda:99" and have_cuda and torch.cuda.device_count() > 99:
        pytest.skip("this machine has that many GPUs")
    lr = _lr(1, 3, 8, 8)
    for call in (lambda: upscale(model, lr, 4, output_device=device),
                 lambda: tiled(model, lr, 4, output_device=device)):
        with pytest.raises(ValueError, match=r"output_device") as info:
            call()
        assert repr(device) in str(info.value)


# -- the same through `dan-blocks sr`: usage errors (exit 2) before any image is read --------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, model) -> str:
    path = tmp_path_factory.mktemp("m") / "m.pth"
    dan_blocks.save_model(model, path)
    return str(path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tile", "-1"], "--tile: must be >= 1 (or 0: untiled), got -1"),
        (["--tile", "2.5"], "invalid int value: '2.5'"),
        (["--tile", "4", "--upsampler-tile", "0"], "--upsampler-tile must be >= 1, got 0"),
        (["--upsampler-tile", "4"], "--upsampler-tile is used only with --tile"),
        (["--device", "gpu"], "--device gpu: expected auto, cpu, cuda or cuda:N"),
    ],
)
def test_sr_flags_are_usage_errors(model_file, tmp_path, capsys, flags, message) -> None:
    image = tmp_path / "x.png"
    import cv2

    assert cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert main(["sr", "-m", model_file, str(image), "-o", str(tmp_path / "out"), "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sr_device_cuda_without_cuda_is_a_usage_error(model_file, tmp_path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["sr", "-m", model_file, str(tmp_path), "-o", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "--device cuda: this torch sees no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lr", "error", "fragment"),
    [
        (torch.rand(1, 3, 0, 0), ValueError, "at least one pixel, got shape (1, 3, 0, 0)"),
        (torch.rand(1, 3, 6, 6, dtype=torch.float64), TypeError, "weights are torch.float32 but the LR batch is "
                                                                 "torch.float64"),
        (torch.zeros(1, 3, 6, 6, dtype=torch.uint8), TypeError, "divide by 255 first"),
        (np.zeros((1, 3, 6, 6), np.float32), TypeError, "as a torch.Tensor (B, C, H, W), got ndarray"),
    ],
    ids=["empty", "float64", "uint8", "numpy"],
)
def test_the_model_itself_names_a_bad_batch(model, lr, error, fragment: str) -> None:
    with pytest.raises(error) as info:
        model(lr)
    assert fragment in str(info.value)


def test_autocast_still_takes_the_weights_other_dtype(model) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_lr(1, 3, 6, 6).to(torch.bfloat16))
    assert out.sr.shape == (1, 3, 12, 12)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"nf": "8"}, "DANv2: nf must be int, got '8' (str)"),
        ({"scale": 2.0}, "DANv2: scale must be int, got 2.0 (float)"),
        ({"loop": True}, "DANv2: loop must be int, got True (bool)"),
        ({"est_input_norm": "no"}, "DANv2: est_input_norm must be bool, got 'no' (str)"),
    ],
)
def test_constructor_arguments_of_the_wrong_type_are_named(kwargs, fragment: str) -> None:
    with pytest.raises(TypeError) as info:  # OptionValueError is a TypeError and a ValueError
        dan_blocks.DANv2(**kwargs)
    assert fragment in str(info.value)
