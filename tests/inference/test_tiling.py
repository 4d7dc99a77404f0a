"""Exact tiled inference: ``upscale(model, lr, tile_size=T)`` equals the plain model's ``model(lr)``.

The reference is always the *plain* model (a deep copy taken before :func:`upscale` optimises the model in
place), so these tests cover :func:`dan_blocks.optimize` and the tiling copy together. Agreement is measured
per tensor as ``max |tiled - ref| / max |ref|`` (float32 summation order only).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dan_blocks
from dan_blocks.archs import (
    DAN,
    DANOutput,
    EstimatorV1,
    EstimatorV2,
    MANetEstimator,
    RestorerV1,
    RestorerV2,
    Upsampler,
)
from dan_blocks.inference import TiledModule, iter_tiles, local_radius, supports_tiling, tiled, upscale
from dan_blocks.layers import DPCB, DPCG

TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- helpers -------------------------------------------------------------------------------------------
def _rel(a: Tensor, b: Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    peak = b.abs().max().item()
    assert peak > 0, "the reference is all zeros: the test would prove nothing"
    return (a - b).abs().max().item() / peak


def _max_rel(out: DANOutput, ref: DANOutput) -> float:
    """Largest relative difference over every iteration's SR, code and kernel."""
    assert len(out.srs) == len(ref.srs) == len(out.codes) == len(ref.codes) == len(out.kernels) == len(ref.kernels)
    assert torch.equal(out.sr, out.srs[-1])
    diffs = [_rel(a, b) for a, b in zip(out.srs + out.codes, ref.srs + ref.codes, strict=True)]
    for a, b in zip(out.kernels, ref.kernels, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            diffs.append(_rel(a, b))
    return max(diffs)


def _reference(model: nn.Module, lr: Tensor) -> Any:
    """``model(lr)`` of a deep copy: the plain model, untouched by the in-place optimize of ``upscale``."""
    with torch.no_grad():
        return copy.deepcopy(model)(lr)


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Weights ~ N(0, 0.05) so outputs are not trivial; the layer giving kernel logits ~ N(0, 0.5) so kernels
    are far from uniform (near-uniform kernels have PCA codes ~1e-4 that float32 cancellation dominates)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        estimator = getattr(model, "estimator", None)
        logits = {EstimatorV2: lambda e: e.tail[2], MANetEstimator: lambda e: e.tail}
        for cls, get in logits.items():
            if isinstance(estimator, cls):
                get(estimator).weight.copy_(torch.randn(get(estimator).weight.shape, generator=gen) * 0.5)
    return model.eval()


def _rand(*shape: int, seed: int = 0) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _restorer(kind: str, scale: int) -> nn.Module:
    if kind == "v1":
        return RestorerV1(nf=8, nb=2, scale=scale, reduction=4)
    return RestorerV2(nf=8, nb=1, ng=2, scale=scale)


def _estimator(kind: str, scale: int) -> nn.Module:
    if kind == "v1":
        return EstimatorV1(nf=8, num_blocks=2, scale=scale, reduction=4)
    if kind == "v2":
        return EstimatorV2(nf=8, num_blocks=2, scale=scale, tail_nf=8)
    return MANetEstimator(nf=4, kernel_size=21, scale=scale, use_sr=kind == "manet")


def _dan(restorer: str, estimator: str, scale: int, seed: int = 0, loop: int = 2) -> DAN:
    model = DAN(_restorer(restorer, scale), _estimator(estimator, scale), dan_blocks.default_pca(21, 10, 1), loop=loop)
    return _randomise(model, seed)  # type: ignore[return-value]


def _n_tiles(size: tuple[int, int], tile: int) -> int:
    return math.ceil(size[0] / tile) * math.ceil(size[1] / tile)


# -- primitives --------------------------------------------------------------------------------------
def test_tiles_partition_the_grid_and_halos_are_clipped() -> None:
    count = torch.zeros(23, 17, dtype=torch.int64)
    for t in iter_tiles((23, 17), 5, 3):
        count[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert (t.ey0, t.ex0) == (max(0, t.y0 - 3), max(0, t.x0 - 3))
        assert (t.ey1, t.ex1) == (min(23, t.y1 + 3), min(17, t.x1 + 3))
    assert bool((count == 1).all())
    assert len(list(iter_tiles((23, 17), 5, 3))) == 5 * 4  # ceil(23/5) * ceil(17/5)


def test_local_radius_hand_computed() -> None:
    # x4 upsampler: 3x3 at LR (1) + 3x3 at 2x (0.5) + 3x3 at 4x (0.25) -> ceil(1.75) = 2
    assert local_radius(Upsampler(8, 3, 4)) == 2
    assert local_radius(Upsampler(8, 3, 3)) == 2  # 1 + 1/3
    assert local_radius(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 5, padding=2))) == 3
    assert local_radius(nn.Conv2d(1, 1, 3, padding=2, dilation=2)) == 2
    # EstimatorV1's head_HR: 9x9, stride 4, padding 4 on an SR image at 4x the grid reaches 4 SR = 1 LR pixel
    assert local_radius(nn.Conv2d(3, 8, 9, 4, 4), factor=4) == 1
    assert local_radius(nn.Conv2d(1, 1, 3, stride=2)) is None  # leaves the grid
    assert local_radius(nn.ReLU()) is None  # point-wise: not a unit of its own
    estimator = MANetEstimator(nf=4, kernel_size=5, scale=2)
    assert local_radius(estimator) == estimator.receptive_radius()
    assert local_radius(EstimatorV2(nf=8, num_blocks=1, scale=2, tail_nf=8)) is None  # global pooling inside
    assert local_radius(_dan("v2", "v1", 2)) is None
    # DPCB: two convs per path, each reaching k // 2: 2 for 3x3 (a precedence slip once gave 3)
    assert DPCB(8, 8, 3, 1).receptive_radius() == 2 and DPCB(8, 8, 5, 3).receptive_radius() == 4
    assert local_radius(DPCG(8, 8, 3, 1, num_blocks=10)) == 20
    # released v2 restorer: head 1 + 5 groups x 20 + fusion 1 + x4 upsampler 2
    assert local_radius(RestorerV2(nf=8, nb=10, ng=5, scale=4)) == 104


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate"])
def test_tiled_plain_chains_match_and_leave_the_grid_untiled(padding_mode: str) -> None:
    torch.manual_seed(0)
    chain = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, padding_mode=padding_mode),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 12, 5, padding=2, padding_mode=padding_mode),
        nn.PixelShuffle(2),
        nn.Conv2d(3, 3, 3, padding=1, padding_mode=padding_mode),
    ).eval()
    x = torch.randn(2, 2, 19, 26)
    with torch.no_grad():
        direct = chain(x)
    assert _rel(tiled(chain, x, 5, upsampler_tile=4), direct) <= TOL
    assert _rel(tiled(chain, x, 64), direct) <= TOL  # one tile larger than the image
    strided = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU()).eval()  # not tileable: run whole
    with torch.no_grad():
        assert torch.equal(tiled(strided, x, 5), strided(x))


# -- every built-in pairing -------------------------------------------------------------------------
#: scale -> (LR size, tile, upsampler tile): odd sizes, tiles much smaller than the image
_CASES = {2: ((23, 19), 5, 7), 3: ((17, 22), 6, 4), 4: ((25, 21), 7, 3)}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("estimator", ["v1", "v2", "manet", "manet_lr_only"])
@pytest.mark.parametrize("restorer", ["v1", "v2"])
def test_tiled_equals_untiled_for_every_builtin_pairing(restorer: str, estimator: str, scale: int) -> None:
    size, tile, up = _CASES[scale]
    assert 2 * tile < min(size) and up != tile
    model = _dan(restorer, estimator, scale, seed=scale)
    lr = _rand(2, 3, *size, seed=scale)
    ref = _reference(model, lr)
    assert supports_tiling(model) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a built-in model tiles every part: no warning
        out = upscale(model, lr, tile, upsampler_tile=up)
    assert supports_tiling(model) is None  # also once optimized
    assert _max_rel(out, ref) <= TOL, (restorer, estimator, scale)


@pytest.mark.parametrize(("restorer", "estimator"), [("v1", "v1"), ("v2", "v2"), ("v2", "manet")])
def test_plain_models_tile_exactly_without_optimize(restorer: str, estimator: str) -> None:
    model = _dan(restorer, estimator, 2, seed=7)
    lr = _rand(2, 3, 21, 16, seed=7)
    ref = _reference(model, lr)
    classes = [(name, type(m)) for name, m in model.named_modules()]
    out = upscale(model, lr, 5, optimize=False)  # default upsampler_tile
    assert _max_rel(out, ref) <= TOL
    assert [(name, type(m)) for name, m in model.named_modules()] == classes
    assert type(model) is DAN


def test_full_size_presets_tiled_at_a_small_image() -> None:
    torch.manual_seed(4)
    lr = torch.rand(1, 3, 17, 14)
    for model in (dan_blocks.dan_v1(4, loop=1).eval(), dan_blocks.dan_v2(4, loop=1).eval()):
        ref = _reference(model, lr)
        out = upscale(model, lr, 6, upsampler_tile=5)
        assert _max_rel(out, ref) <= TOL, type(model).__name__


def test_builtin_layers_run_on_tiles_of_the_requested_sizes() -> None:
    size, tile, up, scale = (26, 23), 6, 4, 4
    model = _dan("v2", "v2", scale, seed=11)
    lr = _rand(2, 3, *size, seed=11)
    ref = _reference(model, lr)
    dan_blocks.optimize(model)  # hooks on the optimized modules (upscale's optimize is then a no-op)
    seen: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {"block": [], "upsampler": []}

    def record(key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            result = output[0] if isinstance(output, tuple) else output
            seen[key].append((tuple(args[0].shape[-2:]), tuple(result.shape[-2:])))
        return hook

    block, upsampler = model.restorer.body[0].body[0], model.restorer.upscale
    handles = [block.register_forward_hook(record("block")), upsampler.register_forward_hook(record("upsampler"))]
    try:
        out = upscale(model, lr, tile, upsampler_tile=up, max_halo=2)  # the restorer and its groups split
    finally:
        for handle in handles:
            handle.remove()
    assert _max_rel(out, ref) <= TOL
    for key, unit_tile, factor in (("block", tile, 1), ("upsampler", up, scale)):
        radius = local_radius(block if key == "block" else upsampler)
        assert radius is not None
        assert len(seen[key]) == model.loop * _n_tiles(size, unit_tile), key
        for (h, w), (oh, ow) in seen[key]:
            assert h <= unit_tile + 2 * radius and w <= unit_tile + 2 * radius, (key, h, w)
            assert (oh, ow) == (factor * h, factor * w)


class _RecordingMANet(MANetEstimator):
    """MANetEstimator that records the (sr, lr) sizes its forward sees."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[tuple[int, ...] | None, tuple[int, ...]]] = []

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        self.seen.append((None if sr is None else tuple(sr.shape[-2:]), tuple(lr.shape[-2:])))
        return super().forward(sr, lr)


@pytest.mark.parametrize("use_sr", [True, False])
def test_manet_estimator_is_tiled_on_even_corners(use_sr: bool) -> None:
    scale, size, tile = 2, (37, 35), 7  # the halo (radius 14) is far smaller than the image
    estimator = _RecordingMANet(nf=4, kernel_size=21, scale=scale, use_sr=use_sr)
    model = _randomise(DAN(_restorer("v2", scale), estimator, dan_blocks.default_pca(21, 10, 1), loop=2), 13)
    lr = _rand(2, 3, *size, seed=13)
    ref = _reference(model, lr)
    estimator.seen.clear()
    out = upscale(model, lr, tile, upsampler_tile=5)
    assert _max_rel(out, ref) <= TOL
    even_tile = tile + tile % 2  # tile_multiple = 2
    assert len(estimator.seen) == model.loop * _n_tiles(size, even_tile)
    for sr_size, lr_size in estimator.seen:
        assert lr_size[0] * lr_size[1] < size[0] * size[1] and lr_size[0] < size[0]
        assert sr_size == (scale * lr_size[0], scale * lr_size[1])


# -- the protocol, implemented by modules of the test's own ------------------------------------------
class LocalRestorer(nn.Module):
    """``R(y, c) = shuffle(tanh(conv3x3(y) + W c))``: local within 1 LR pixel (global or per-pixel codes)."""

    def __init__(self, scale: int, code_length: int = 10, radius: int = 1) -> None:
        super().__init__()
        self.scale = self.output_scale = scale
        self.in_nc, self.code_length, self.radius = 3, code_length, radius
        self.weight = nn.Parameter(torch.randn(3 * scale * scale, 3, 3, 3) * 0.3)
        self.code_weight = nn.Parameter(torch.randn(3 * scale * scale, code_length) * 0.3)
        self.seen: list[tuple[int, ...]] = []

    def receptive_radius(self) -> int:
        return self.radius

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        self.seen.append(tuple(lr.shape[-2:]))
        if code.dim() == 2:
            bias = (code @ self.code_weight.T)[:, :, None, None]
        else:
            bias = torch.einsum("oc,bchw->bohw", self.code_weight, code)
        return F.pixel_shuffle(torch.tanh(F.conv2d(lr, self.weight, padding=1) + bias), self.scale)


class LocalEstimator(nn.Module):
    """Per-pixel codes from a 3x3 conv of the LR and a (2s+1)-conv of stride s of the SR: 1 LR pixel."""

    output_kind = "code"

    def __init__(self, scale: int, code_length: int = 10) -> None:
        super().__init__()
        self.scale, self.code_length = scale, code_length
        self.lr_weight = nn.Parameter(torch.randn(code_length, 3, 3, 3) * 0.3)
        self.sr_weight = nn.Parameter(torch.randn(code_length, 3, 2 * scale + 1, 2 * scale + 1) * 0.1)
        self.seen: list[tuple[int, ...]] = []

    def receptive_radius(self) -> int:
        return 1

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        self.seen.append(tuple(lr.shape[-2:]))
        s = self.scale
        return F.conv2d(lr, self.lr_weight, padding=1) + F.conv2d(sr, self.sr_weight, stride=s, padding=s)


@pytest.mark.parametrize("restorer", ["local", "v1", "v2"])
def test_custom_local_modules_are_tiled_exactly(restorer: str) -> None:
    scale, size, tile, up = 3, (22, 19), 5, 4
    torch.manual_seed(21)
    rest = LocalRestorer(scale) if restorer == "local" else _restorer(restorer, scale)
    est = LocalEstimator(scale)
    model = DAN(rest, est, dan_blocks.default_pca(21, 10, 1), loop=3).eval()
    if restorer != "local":
        _randomise(model.restorer, 21)
    lr = _rand(2, 3, *size, seed=21)
    ref = _reference(model, lr)
    assert ref.codes[0].dim() == 4  # per-pixel codes reach the restorer from the second iteration on
    est.seen.clear()
    if isinstance(rest, LocalRestorer):
        rest.seen.clear()
    assert supports_tiling(model) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = upscale(model, lr, tile, upsampler_tile=up)
    assert _max_rel(out, ref) <= TOL
    assert len(est.seen) == model.loop * _n_tiles(size, tile)
    assert all(h <= tile + 2 and w <= tile + 2 for h, w in est.seen)
    if isinstance(rest, LocalRestorer):  # an upsampling unit that is not a conv chain: tiled with tile_size
        assert len(rest.seen) == model.loop * _n_tiles(size, tile)
        assert all(h <= tile + 2 and w <= tile + 2 for h, w in rest.seen)


def test_an_understated_radius_is_caught() -> None:
    """Negative control: a module declaring radius 0 for a 3x3 conv gives wrong tile borders, so the
    comparison above does detect a tiling mismatch (and tiling did happen)."""
    torch.manual_seed(22)
    model = DAN(LocalRestorer(2, radius=0), LocalEstimator(2), dan_blocks.default_pca(21, 10, 1), loop=1).eval()
    lr = _rand(1, 3, 15, 14, seed=22)
    ref = _reference(model, lr)
    assert _max_rel(upscale(model, lr, 4), ref) > 1e-3


# -- modules that do not implement the protocol -----------------------------------------------------
class FunctionalConv(nn.Module):
    """A leaf holding a weight applied with ``F.conv2d``: local, but the tiler cannot know it."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, channels, 3, 3) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, padding=1)


class PreFilteredRestorer(nn.Module):
    """``RestorerV2(y + P(y), c)`` with the undeclared ``P``; records the module its forward runs on."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale, self.in_nc, self.code_length = scale, 3, 10
        self.prefilter = FunctionalConv()
        self.restorer = RestorerV2(nf=8, nb=1, ng=1, scale=scale)
        self.calls: list[nn.Module] = []

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        self.calls.append(self)
        return self.restorer(lr + self.prefilter(lr), code)  # type: ignore[no-any-return]


def _prefiltered_dan() -> DAN:
    return _randomise(DAN(PreFilteredRestorer(2), _estimator("v2", 2), dan_blocks.default_pca(21, 10, 1), loop=2), 31)


def test_undeclared_leaf_with_parameters_warns_or_raises_naming_it() -> None:
    model = _prefiltered_dan()
    lr = _rand(2, 3, 17, 15, seed=31)
    ref = _reference(model, lr)
    reason = supports_tiling(model)
    assert reason is not None and "FunctionalConv" in reason and "prefilter" in reason
    with pytest.warns(UserWarning, match="FunctionalConv"):
        out = upscale(model, lr, 5)
    assert _max_rel(out, ref) <= TOL  # runs untiled there, still exact
    with pytest.raises(TypeError, match="FunctionalConv"):
        upscale(model, lr, 5, fallback="error")
    with pytest.warns(UserWarning, match="FunctionalConv"):
        out = tiled(model, lr, 5)
    assert _max_rel(out, ref) <= TOL
    with warnings.catch_warnings():  # untiled, nothing to warn about
        warnings.simplefilter("error")
        assert _max_rel(upscale(model, lr), ref) <= TOL
        assert _max_rel(upscale(model, lr, fallback="error"), ref) <= TOL


def test_tiling_copy_shares_parameters_and_leaves_the_model_alone() -> None:
    model = _prefiltered_dan()
    lr = _rand(1, 3, 16, 13, seed=32)
    ref = _reference(model, lr)
    dan_blocks.optimize(model)
    classes = [(name, type(m)) for name, m in model.named_modules()]
    params = {name: (p, p.detach().clone()) for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    children = {name: list(m._modules.items()) for name, m in model.named_modules()}
    model.restorer.calls.clear()
    with pytest.warns(UserWarning, match="FunctionalConv"):
        out = upscale(model, lr, 4, upsampler_tile=3)
    assert _max_rel(out, ref) <= TOL
    # the model is as optimize left it: same classes, same children, same parameter objects and values
    assert [(name, type(m)) for name, m in model.named_modules()] == classes
    assert {name: list(m._modules.items()) for name, m in model.named_modules()} == children
    assert not any(isinstance(m, TiledModule) for m in model.modules())
    for name, (p, value) in params.items():
        assert model.get_parameter(name) is p and torch.equal(p, value), name
    for name, value in buffers.items():
        assert torch.equal(model.get_buffer(name), value), name
    # the forward ran on a copy holding the very same parameters (and the untiled leaf itself)
    proxies = set(model.restorer.calls)
    assert len(proxies) == 1
    proxy = proxies.pop()
    assert proxy is not model.restorer and type(proxy) is type(model.restorer)
    assert proxy.prefilter is model.restorer.prefilter
    assert {id(p) for p in proxy.parameters()} == {id(p) for p in model.restorer.parameters()}
    assert any(isinstance(m, TiledModule) for m in proxy.modules())


# -- arguments ---------------------------------------------------------------------------------------
def test_untiled_is_model_forward_without_gradients() -> None:
    model = _dan("v2", "v2", 2, seed=41)
    lr = _rand(1, 3, 9, 8, seed=41).requires_grad_()
    ref = _reference(model, lr)
    for out in (upscale(model, lr), upscale(model, lr, 4)):
        assert not out.sr.requires_grad
        assert _max_rel(out, ref) <= TOL


def test_output_device_cpu_gives_the_same_result() -> None:
    model = _dan("v1", "manet", 2, seed=42)
    lr = _rand(2, 3, 15, 13, seed=42)
    ref = _reference(model, lr)
    for device in ("cpu", torch.device("cpu")):
        out = upscale(model, lr, 5, upsampler_tile=3, output_device=device)
        assert out.sr.device.type == "cpu"
        assert _max_rel(out, ref) <= TOL


@pytest.mark.parametrize("bad", [0, -3, True, False, 4.0, 2.5, "8"])
def test_bad_tile_sizes_are_named(bad: Any) -> None:
    model = _dan("v1", "v1", 2)
    lr = _rand(1, 3, 8, 8)
    with pytest.raises(TypeError, match="tile_size"):
        upscale(model, lr, bad)
    with pytest.raises(TypeError, match="upsampler_tile"):
        upscale(model, lr, 4, upsampler_tile=bad)


def test_bad_inputs_are_named() -> None:
    model = _dan("v1", "v1", 2)
    good = _rand(1, 3, 8, 8)
    for lr in (
        _rand(3, 8, 8),  # not 4-d
        _rand(1, 1, 3, 8, 8),
        torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8),  # integer dtype
        _rand(1, 1, 8, 8),  # wrong channel count
        _rand(1, 4, 8, 8),
        good.double(),  # dtype differing from the float32 weights
    ):
        with pytest.raises(ValueError, match=r"\blr\b"):
            upscale(model, lr, 4)
        with pytest.raises(ValueError, match=r"\blr\b"):
            upscale(model, lr)
    with pytest.raises(ValueError, match="output_device"):
        upscale(model, good, 4, output_device="not-a-device")
    for fallback in ("ignore", "raise", None):
        with pytest.raises(ValueError, match="fallback"):
            upscale(model, good, 4, fallback=fallback)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model"):
        upscale(lambda x: x, good, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_halo", [None, 0, 2, 200])
def test_max_halo_picks_the_unit_size_and_stays_exact(max_halo: int | None) -> None:
    # default (16): a v2 restorer is tiled block by block; None or a large bound: the whole restorer per tile
    size, tile = (27, 22), 6
    model = _dan("v2", "v2", 2, seed=21)
    lr = _rand(2, 3, *size, seed=21)
    ref = _reference(model, lr)
    dan_blocks.optimize(model)
    seen: list[tuple[int, ...]] = []
    handle = model.restorer.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
    try:
        out = upscale(model, lr, tile, max_halo=max_halo)
    finally:
        handle.remove()
    assert _max_rel(out, ref) <= TOL
    radius = model.restorer.receptive_radius()
    whole_restorer = max_halo is None or max_halo >= radius
    assert len(seen) == model.loop * (_n_tiles(size, tile) if whole_restorer else 1)
    if whole_restorer:
        assert all(h <= tile + 2 * radius and w <= tile + 2 * radius for h, w in seen)
    else:
        assert seen == [size] * model.loop
