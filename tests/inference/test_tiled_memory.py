"""Tiled inference holds no whole LR feature map where it need not (issue 22: ``sr --tile`` bounds memory).

The checks look at the shapes each module really computes (forward hooks on the original modules): a module run
tile by tile sees tiles, one run on the whole image sees the whole LR grid. Exactness is checked against the
untiled model in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from dan_blocks.archs import DANv2, EstimatorV2
from dan_blocks.inference import tiled, upscale
from dan_blocks.utils import all_finite

H, W = 45, 38  # LR grid; tiles of 8 with a halo are far smaller in both sides


def _spatial_sizes(module: nn.Module, record: list[tuple[int, int]]) -> None:
    def hook(_m: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        record.append((int(output.shape[-2]), int(output.shape[-1])))

    module.register_forward_hook(hook)


def _small_dan(input_norm: bool) -> DANv2:
    torch.manual_seed(3)
    return DANv2(4, nf=8, nb=2, ng=2, est_nf=6, est_nb=2, est_tail_nf=12, est_input_norm=input_norm).eval().double()


class _Shapes(TorchFunctionMode):
    """Records the shape of every tensor a torch function returns (``torch.empty`` included)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                self.shapes.add(tuple(value.shape))
        return out


@pytest.mark.parametrize("input_norm", [False, True])
def test_estimator_trunk_runs_on_tiles_and_stays_exact(input_norm: bool) -> None:
    model = _small_dan(input_norm)
    lr = torch.rand(2, 3, H, W, dtype=torch.float64)
    with torch.no_grad():
        expected = model(lr)
    sizes: list[tuple[int, int]] = []
    for conv in (model.estimator.head_LR[0], model.estimator.head_HR[0], model.estimator.tail[0]):
        _spatial_sizes(conv, sizes)
    with _Shapes() as made:
        out = tiled(model, lr, 8)
    assert sizes, "the estimator's convolutions did not run"
    # no map of the estimator's 6 or 12 channels is ever made at the whole LR size (as whole sums of tiles were)
    assert (2, 3, 4 * H, 4 * W) in made.shapes  # the observer sees whole maps (the SR image)
    assert not {(2, c, H, W) for c in (6, 12)} & made.shapes
    # every estimator map is a tile with its halo (radius 2 + 2 blocks + 1), never the whole 45 x 38 grid
    radius = 2 + 2 * 2 + 1  # heads 2, two DPCBs of two 3x3 convs on either path, tail conv 1
    assert all(h <= 8 + 2 * radius and w <= 8 + 2 * radius and (h, w) != (H, W) for h, w in sizes)
    for got, want in zip(out.kernels, expected.kernels, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.sr, expected.sr, rtol=1e-10, atol=1e-10)


def test_pooled_trunk_mean_is_the_forward_input() -> None:
    """The protocol's contract, derived by hand: the estimate is the tail applied to the trunk's spatial mean."""
    torch.manual_seed(0)
    est = EstimatorV2(nf=8, num_blocks=1, tail_nf=16, input_norm=True).double().eval()
    lr = torch.rand(1, 3, 12, 10, dtype=torch.float64)
    sr = torch.rand(1, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        mean = lr.mean()
        trunk = est.pooled_trunk(sr, lr, mean.reshape(1, 1, 1, 1))
        pooled = trunk.mean(dim=(2, 3), keepdim=True)
        logits = torch.nn.functional.conv2d(pooled, est.tail[2].weight, est.tail[2].bias).flatten(1)
        torch.testing.assert_close(est(sr, lr), torch.softmax(logits, dim=1))


def _restorer_inputs(model: DANv2, **kwargs: object) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []

    def pre(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append((int(args[0].shape[-2]), int(args[0].shape[-1])))

    handle = model.restorer.register_forward_pre_hook(pre)
    lr = torch.rand(1, 3, H, W, dtype=torch.float64)
    with torch.no_grad():
        expected = model(lr).sr
    seen.clear()
    got = tiled(model, lr, 8, max_halo=1, **kwargs).sr  # type: ignore[arg-type]
    handle.remove()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    return seen


def test_map_budget_runs_a_wide_unit_per_tile() -> None:
    model = _small_dan(False)
    # no budget: the restorer (radius > max_halo) is split, its forward runs once on the whole grid
    assert (H, W) in _restorer_inputs(model, map_budget=None)
    # the budget prices the widest convolution input of the unit: head2's 10 code channels (nf is 8), so whole
    # maps of 10 float64 channels of 45 x 38, 136,800 bytes. Under that the restorer runs per tile as one unit
    # and never sees the whole grid; at exactly that it is split again
    assert 10 * H * W * 8 == 136_800
    per_tile = _restorer_inputs(model, map_budget=136_799)
    assert per_tile and all(size != (H, W) for size in per_tile)
    assert (H, W) in _restorer_inputs(model, map_budget=136_800)


@pytest.mark.parametrize("bad", [-1, 2.5, "1"])
def test_map_budget_is_checked(bad: object) -> None:
    model = _small_dan(False)
    lr = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises((TypeError, ValueError), match="map_budget"):
        upscale(model, lr, 4, map_budget=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_all_finite(dtype: torch.dtype, bad: float | None) -> None:
    x = torch.rand(1, 3, 20, 30, dtype=dtype).contiguous(memory_format=torch.channels_last)
    if bad is not None:
        x[0, 2, 19, 29] = bad
    assert all_finite(x) is bool(torch.isfinite(x).all())
    assert all_finite(torch.ones(3, dtype=torch.int64)) is True
    assert all_finite(torch.empty(0)) is True


def test_v1_block_branch_runs_on_tiles_and_stays_exact() -> None:
    """DAN v1's CRB: conv, LeakyReLU, conv on the fused (concatenated) features run per tile as one unit
    (`CRB.residual_branch`); only the branch's output is whole (the channel attention pools it)."""
    from dan_blocks.archs import DANv1

    torch.manual_seed(5)
    model = DANv1(4, nf=16, nb=3, est_nf=16, est_nb=2).eval().double()
    lr = torch.rand(2, 3, H, W, dtype=torch.float64)
    with torch.no_grad():
        expected = model(lr)
    with _Shapes() as made:
        out = tiled(model, lr, 8)
    torch.testing.assert_close(out.sr, expected.sr, rtol=1e-10, atol=1e-10)
    for got, want in zip(out.codes, expected.codes, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # the fused width: restorer 16 + 10 code channels, estimator 16 + 16 condition channels; never whole
    assert not {(2, 26, H, W), (2, 32, H, W)} & made.shapes
    assert (2, 16, H, W) in made.shapes  # the branch outputs and block outputs are whole (channel attention)
