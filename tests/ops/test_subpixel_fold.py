"""Folding the linear upsampler into one sub-pixel conv (`Upsampler`'s fast form) gives the chain's numbers.

References: the chain of ``F.conv2d`` / ``F.pixel_shuffle`` calls spelled out on the modules' weights in
float64; the folded weight against impulse responses of the chain (a forward derivation, where the code uses a
backward pass); receptive radii derived by hand.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dan_blocks import optimize
from dan_blocks.archs import Upsampler
from dan_blocks.ops import chain_geometry, fold_subpixel_chain, folded_forward

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CL = torch.channels_last


def rel(a: Tensor, b: Tensor) -> float:
    a64, b64 = a.detach().double(), b.detach().double()
    return float((a64 - b64).abs().max() / b64.abs().max())


def folded_upsampler(nf: int, out_nc: int, scale: int, channels_last: bool = False) -> Upsampler:
    """``optimize(Upsampler(...))`` in eval mode (NCHW weights unless ``channels_last``)."""
    up = optimize(Upsampler(nf, out_nc, scale).eval(), channels_last=channels_last)
    assert type(up) is Upsampler and up.fast
    return up


def chain64(up: nn.Sequential, x: Tensor) -> Tensor:
    """The upsampler written out with F ops in float64 (each conv zero-pads its own input)."""
    x = x.double()
    for layer in up:
        if isinstance(layer, nn.PixelShuffle):
            x = F.pixel_shuffle(x, layer.upscale_factor)
        else:
            x = F.conv2d(x, layer.weight.double(), layer.bias.double(), 1, layer.padding)
    return x


# x4: out cell Y reads conv3 at 4Y-1..4Y+4 -> 2x rows 2Y-1..2Y+2 -> conv2 2Y-2..2Y+3 -> LR Y-1..Y+1 -> Y-2..Y+2
@pytest.mark.parametrize(("scale", "expected"), [(2, (2, 2)), (3, (3, 2)), (4, (4, 2)), (8, (8, 2))])
def test_chain_geometry_by_hand(scale: int, expected: tuple[int, int]) -> None:
    assert chain_geometry(list(Upsampler(8, 3, scale))) == expected


def test_chain_geometry_single_conv_and_5x5() -> None:
    assert chain_geometry([nn.Conv2d(4, 3, 3, 1, 1)]) == (1, 1)
    assert chain_geometry([nn.Conv2d(4, 8, 5, 1, 2), nn.PixelShuffle(2), nn.Conv2d(2, 1, 3, 1, 1)]) == (2, 3)


def test_folded_weight_equals_impulse_responses() -> None:
    """Row (o, p, q) of the folded weight is the chain's response at output pixel (2Y+p, 2X+q) to a unit input
    at (c, Y + ky - R, X + kx - R): computed here by running the chain forward on every impulse."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, 1, 1), nn.PixelShuffle(2), nn.Conv2d(2, 2, 3, 1, 1)]
    folded = fold_subpixel_chain(layers, dtype=torch.float64)
    scale, radius = folded.scale, folded.radius
    size, centre = 9, 4  # big enough that no padding reaches the centre cell
    with torch.no_grad():
        for c in range(3):
            for ky in range(2 * radius + 1):
                for kx in range(2 * radius + 1):
                    impulse = torch.zeros(1, 3, size, size, dtype=torch.float64)
                    impulse[0, c, centre + ky - radius, centre + kx - radius] = 1.0
                    x = impulse
                    for layer in layers:
                        x = (F.pixel_shuffle(x, 2) if isinstance(layer, nn.PixelShuffle)
                             else F.conv2d(x, layer.weight.double(), None, 1, 1))
                    cell = x[0, :, 2 * centre:2 * centre + 2, 2 * centre:2 * centre + 2].reshape(-1)
                    torch.testing.assert_close(folded.weight[:, c, ky, kx], cell, rtol=0, atol=1e-12)
    assert folded.weight.shape == (2 * scale * scale, 3, 2 * radius + 1, 2 * radius + 1)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("shape", [(1, 64, 24, 24), (2, 64, 9, 13), (1, 64, 8, 31), (1, 64, 3, 5), (1, 64, 1, 1)])
def test_upsampler_fold_equals_chain(scale: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(scale)
    nf = 64 if scale <= 4 else 8  # the x8 fold in float64 takes seconds at 64 channels
    up = folded_upsampler(nf, 3, scale)
    x = torch.randn(shape[0], nf, *shape[2:])
    with torch.no_grad():
        got = up(x)
    assert up._fold_cache is not None or min(shape[-2:]) < 8  # the fold ran (or the input is too small for it)
    expected = chain64(up, x)
    assert got.shape == expected.shape == (shape[0], 3, scale * shape[2], scale * shape[3])
    assert rel(got, expected) < 1e-5


def test_fold_borders_exact_at_every_pixel() -> None:
    """Every border pixel (where intermediate zero padding matters) matches, not only the maximum error."""
    torch.manual_seed(1)
    up = folded_upsampler(16, 3, 4)
    x = torch.randn(1, 16, 12, 10) * 3
    with torch.no_grad():
        got = up(x).double()
    expected = chain64(up, x)
    interior_only = F.pixel_shuffle(F.conv2d(x.double(), *(t.double() for t in (up.folded().weight,
                                                                                 up.folded().bias)), 1, 2), 4)
    assert (interior_only - expected).abs()[..., :8, :].max() > 1e-3  # the plain fold is wrong at the border
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fold_channels_last_and_inference_mode() -> None:
    torch.manual_seed(2)
    up = folded_upsampler(32, 3, 4, channels_last=True)
    assert up[0].weight.is_contiguous(memory_format=CL)
    x = torch.randn(1, 32, 16, 16).contiguous(memory_format=CL)
    with torch.inference_mode():
        got = up(x)
    assert rel(got, chain64(up, x)) < 1e-5


def test_fold_cache_follows_weight_changes() -> None:
    torch.manual_seed(3)
    up = folded_upsampler(16, 3, 2)
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        up(x)
        first = up._fold_cache
        up[0].weight.mul_(2.0)  # in place (an optimiser step)
        assert rel(up(x), chain64(up, x)) < 1e-5
        assert up._fold_cache is not first
        other = Upsampler(16, 3, 2)
        up.load_state_dict(other.state_dict())  # copy_ into the same tensors
        assert rel(up(x), chain64(other, x)) < 1e-5
        up64 = copy.deepcopy(up).double()  # dtype change
        assert up64(x.double()).dtype == torch.float64
        assert rel(up64(x.double()), chain64(other, x)) < 1e-10
        up[2].weight = nn.Parameter(torch.randn_like(up[2].weight))  # a parameter replaced
        assert rel(up(x), chain64(up, x)) < 1e-5
        optimize(up)  # channels_last now: the weights are new tensors, the fold follows
        assert up[0].weight.is_contiguous(memory_format=CL)
        assert rel(up(x), chain64(up, x)) < 1e-5


def test_training_uses_the_chain_and_gradients_flow() -> None:
    torch.manual_seed(4)
    up = optimize(Upsampler(16, 3, 4), channels_last=False)
    assert up.training and type(up) is Upsampler and up.fast
    x = torch.randn(1, 16, 12, 12, requires_grad=True)
    up(x).square().sum().backward()
    assert up._fold_cache is None  # no fold when gradients are needed
    grad = x.grad.clone()
    x64 = x.detach().double().requires_grad_()
    chain64(up, x64).square().sum().backward()
    assert rel(grad, x64.grad) < 1e-5


def test_plain_upsampler_runs_the_chain() -> None:
    """Without its fast flag the block is the nn.Sequential chain and caches nothing."""
    torch.manual_seed(7)
    up = Upsampler(16, 3, 2).eval()
    assert up.fast is False
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        got = up(x)
    assert "_fold_cache" not in vars(up)
    assert rel(got, chain64(up, x)) < 1e-5


def test_fold_cache_is_per_instance_and_not_shared_by_copies() -> None:
    torch.manual_seed(8)
    up = folded_upsampler(16, 3, 2)
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        up(x)
        twin = copy.deepcopy(up)
        other = folded_upsampler(16, 3, 2)
        assert "_fold_cache" not in vars(other)  # the cache lives on the instance that folded
        twin[0].weight.mul_(-1.0)
        assert rel(twin(x), chain64(twin, x)) < 1e-5
        assert rel(up(x), chain64(up, x)) < 1e-5


def test_fold_rejects_non_linear_or_strided_layers() -> None:
    with pytest.raises(TypeError, match=r"only nn\.Conv2d and nn\.PixelShuffle"):
        fold_subpixel_chain([nn.Conv2d(4, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 3, 3, 1, 1)])
    with pytest.raises(ValueError, match="stride 1, zero padding"):
        fold_subpixel_chain([nn.Conv2d(4, 3, 3, 2, 1)])
    with pytest.raises(ValueError, match=r"ends with an nn\.Conv2d"):
        fold_subpixel_chain([nn.Conv2d(4, 16, 3, 1, 1), nn.PixelShuffle(2)])


def test_folded_forward_single_pixel_radius_zero() -> None:
    """A chain of 1x1 convs folds to radius 0: the conv needs no border handling."""
    torch.manual_seed(5)
    layers = [nn.Conv2d(4, 12, 1), nn.PixelShuffle(2), nn.Conv2d(3, 2, 1)]
    x = torch.randn(2, 4, 5, 6)
    folded = fold_subpixel_chain(layers)
    assert folded.radius == 0
    expected = x.double()
    for layer in layers:
        expected = (F.pixel_shuffle(expected, 2) if isinstance(layer, nn.PixelShuffle)
                    else F.conv2d(expected, layer.weight.double(), layer.bias.double()))
    with torch.no_grad():
        assert rel(folded_forward(x, folded, layers), expected) < 1e-5


@pytest.mark.parametrize("size", [(12, 12), (13, 17), (20, 9)])
def test_generic_chain_with_5x5_and_mixed_shuffles(size: tuple[int, int]) -> None:
    """Any conv/pixel-shuffle chain: 5x5 conv, PS(3), 3x3 conv, PS(2), 3x3 conv (three border corrections)."""
    torch.manual_seed(6)
    layers = nn.Sequential(nn.Conv2d(4, 18, 5, 1, 2), nn.PixelShuffle(3), nn.Conv2d(2, 8, 3, 1, 1),
                           nn.PixelShuffle(2), nn.Conv2d(2, 2, 3, 1, 1))
    folded = fold_subpixel_chain(list(layers))
    assert (folded.scale, len(folded.suffixes)) == (6, 2)
    x = torch.randn(2, 4, *size)
    with torch.no_grad():
        got = folded_forward(x, folded, list(layers))
    torch.testing.assert_close(got.double(), chain64(layers, x), rtol=1e-5, atol=1e-5)


def test_folded_forward_needs_the_suffix_folds() -> None:
    layers = [nn.Conv2d(4, 12, 3, 1, 1), nn.PixelShuffle(2), nn.Conv2d(3, 2, 3, 1, 1)]
    bare = fold_subpixel_chain(layers, suffixes=False)
    with pytest.raises(ValueError, match="suffix folds"):
        folded_forward(torch.randn(1, 4, 12, 12), bare, layers)
