"""Exact tiled inference: ``upscale(model, lr, tile_size=T)`` equals the untiled ``DAN.forward``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dan_blocks
from dan_blocks.archs import DAN, MANetEstimator, RestorerV2, Upsampler
from dan_blocks.inference import conv_radius, iter_tiles, map_tiles, sum_tiles, supports_tiling, upscale

TOL = 1e-5


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors run faster on one thread (and far faster when the cores are shared); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _max_diff(a: dan_blocks.DANOutput, b: dan_blocks.DANOutput) -> float:
    assert len(a.srs) == len(b.srs) == len(a.codes) == len(b.codes) == len(a.kernels) == len(b.kernels)
    diffs = [(x - y).abs().max().item() for x, y in zip(a.srs + a.codes, b.srs + b.codes, strict=True)]
    for x, y in zip(a.kernels, b.kernels, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.shape == y.shape
            diffs.append((x - y).abs().max().item())
    assert a.sr.shape == b.sr.shape and a.sr is a.srs[-1]
    return max(diffs)


def _reference(model: nn.Module, lr: torch.Tensor) -> dan_blocks.DANOutput:
    with torch.no_grad():
        return model(lr)


# -- primitives --------------------------------------------------------------------------------------
def test_tiles_partition_the_grid_and_halos_are_clipped() -> None:
    count = torch.zeros(23, 17, dtype=torch.int64)
    for t in iter_tiles((23, 17), 5, 3):
        count[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert (t.ey0, t.ex0) == (max(0, t.y0 - 3), max(0, t.x0 - 3))
        assert (t.ey1, t.ex1) == (min(23, t.y1 + 3), min(17, t.x1 + 3))
    assert bool((count == 1).all())
    assert len(list(iter_tiles((23, 17), 5, 3))) == 5 * 4  # ceil(23/5) * ceil(17/5)


def test_conv_radius_hand_computed() -> None:
    # x4 upsampler: 3x3 at LR (1) + 3x3 at 2x (0.5) + 3x3 at 4x (0.25) -> ceil(1.75) = 2
    assert conv_radius(Upsampler(8, 3, 4)) == 2
    assert conv_radius([nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)]) == 3
    assert conv_radius(nn.Conv2d(1, 1, 3, padding=2, dilation=2)) == 2
    with pytest.raises(ValueError, match="strided"):
        conv_radius(nn.Conv2d(1, 1, 3, stride=2))


def test_map_tiles_matches_a_direct_conv_stack_and_needs_its_halo() -> None:
    torch.manual_seed(0)
    w1, w2 = torch.randn(4, 2, 3, 3), torch.randn(3, 4, 5, 5)

    def stack(x: torch.Tensor) -> torch.Tensor:  # radius 1 + 2 = 3, written with the functional API
        return F.conv2d(F.leaky_relu(F.conv2d(x, w1, padding=1), 0.2), w2, padding=2)

    x = torch.randn(2, 2, 19, 26)
    direct = stack(x)
    tiled = map_tiles(stack, [(x, 1)], (19, 26), 6, 3)
    assert (tiled - direct).abs().max().item() < 1e-5
    short = map_tiles(stack, [(x, 1)], (19, 26), 6, 2)  # negative control: a halo below the radius is wrong
    assert (short - direct).abs().max().item() > 1e-3
    total = sum_tiles(stack, [(x, 1)], (19, 26), 7, 3)
    assert torch.allclose(total, direct.sum(dim=(2, 3)), atol=1e-3, rtol=1e-5)


def test_map_tiles_with_an_upscaling_function_and_a_second_resolution() -> None:
    torch.manual_seed(1)
    up = Upsampler(4, 3, 2)
    lr, hr = torch.randn(1, 4, 11, 9), torch.randn(1, 3, 22, 18)
    with torch.no_grad():
        direct = up(lr) + hr
        tiled = map_tiles(lambda a, b: up(a) + b, [(lr, 1), (hr, 2)], (11, 9), 4, conv_radius(up), out_factor=2)
    assert tiled.shape == (1, 3, 22, 18)
    assert (tiled - direct).abs().max().item() < 1e-5


# -- DAN v1 / v2 ---------------------------------------------------------------------------------------
def _v1(scale: int) -> DAN:
    return dan_blocks.dan_v1(scale, nf=16, nb=3, est_nf=16, est_nb=2, loop=2).eval()


def _v2(scale: int) -> DAN:
    return dan_blocks.dan_v2(scale, nf=16, nb=2, ng=3, est_nf=16, est_nb=2, est_tail_nf=16, loop=2).eval()


@pytest.mark.parametrize(
    ("build", "scale", "size", "tiles"),
    [
        (_v1, 4, (23, 19), (5, 8)),
        (_v1, 3, (17, 22), (6,)),
        (_v1, 2, (21, 13), (4,)),
        (_v2, 4, (23, 19), (5, 9)),
        (_v2, 3, (17, 22), (6,)),
        (_v2, 2, (21, 13), (4,)),
    ],
)
def test_tiled_equals_untiled_reduced_presets(build, scale: int, size: tuple[int, int], tiles: tuple[int, ...]) -> None:
    torch.manual_seed(scale)
    model = build(scale)
    lr = torch.rand(2, 3, *size)
    ref = _reference(model, lr)
    for tile in tiles:
        assert tile * 2 < min(size)  # tiles much smaller than the image
        out = upscale(model, lr, tile, upsampler_tile=tile - 1)
        assert _max_diff(out, ref) <= TOL, (type(model).__name__, scale, tile)


def test_v2_groups_per_pass_and_small_upsampler_tiles_stay_exact() -> None:
    torch.manual_seed(3)
    model = _v2(4)
    lr = torch.rand(1, 3, 19, 25)
    ref = _reference(model, lr)
    for groups in (1, 2):
        out = upscale(model, lr, 6, groups_per_pass=groups, upsampler_tile=3)
        assert _max_diff(out, ref) <= TOL


def _realistic_range(model: DAN, lr: torch.Tensor) -> DAN:
    """Rescale the last conv of seeded weights so that SR values are O(1), as a trained model's are.

    Random v2 weights with the release's doubling group residual give |SR| ~ 100, where float32 rounding
    alone exceeds an absolute 1e-5; the architecture is unchanged."""
    peak = _reference(model, lr).sr.abs().max()
    last = model.restorer.upscale[-1]
    with torch.no_grad():
        last.weight /= peak
        last.bias /= peak
    return model


def test_full_size_presets_tiled_at_a_small_image() -> None:
    torch.manual_seed(4)
    lr = torch.rand(1, 3, 17, 14)
    for model in (dan_blocks.dan_v1(4, loop=1).eval(), dan_blocks.dan_v2(4, loop=1).eval()):
        model = _realistic_range(model, lr)
        ref = _reference(model, lr)
        out = upscale(model, lr, 6, groups_per_pass=1, upsampler_tile=5)
        assert _max_diff(out, ref) <= TOL, type(model).__name__


def test_untiled_is_model_forward_without_gradients() -> None:
    model = _v2(2)
    lr = torch.rand(1, 3, 9, 8, requires_grad=True)
    out = upscale(model, lr)
    assert not out.sr.requires_grad
    assert _max_diff(out, _reference(model, lr)) == 0.0


def test_unsupported_models_fall_back_with_a_warning_or_raise() -> None:
    torch.manual_seed(5)
    estimator = MANetEstimator(nf=8, kernel_size=21, scale=2)
    model = DAN(RestorerV2(nf=16, nb=1, ng=1, scale=2), estimator, dan_blocks.default_pca(21, 10), loop=1).eval()
    assert supports_tiling(model) is not None
    lr = torch.rand(1, 3, 12, 12)
    with pytest.warns(UserWarning, match="MANetEstimator"):
        out = upscale(model, lr, 4)
    assert _max_diff(out, _reference(model, lr)) == 0.0
    with pytest.raises(TypeError, match="cannot tile"):
        upscale(model, lr, 4, fallback="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upscale(_v1(2), torch.rand(1, 3, 8, 8), 4)  # supported: no warning


def test_bad_inputs_are_named() -> None:
    model = _v1(2)
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        upscale(model, torch.rand(3, 8, 8), 4)
    with pytest.raises(ValueError, match="3-channel"):
        upscale(model, torch.rand(1, 1, 8, 8), 4)
    with pytest.raises(ValueError, match="tile_size"):
        upscale(model, torch.rand(1, 3, 8, 8), 0)
