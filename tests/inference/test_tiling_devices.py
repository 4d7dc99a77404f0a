"""Tiled inference keeps every tensor on the input's device (SR maps may be stored on ``output_device``), the
dtype of autocast, one SR buffer on request (``keep_srs=False``) and reports progress per tile.

The device check runs on this CPU with FakeTensorMode: tensors claim ``cuda`` without a GPU, and any op mixing
devices raises "Expected all tensors to be on the same device" exactly as CUDA does (issue 20: ``sr --tile
--device cuda`` failed so with an ``est_input_norm`` estimator, whose ``sr - lr.mean()`` met an SR image kept on
the CPU).
"""

from __future__ import annotations

import copy

import pytest
import torch
from _helpers import randomise
from torch._subclasses.fake_tensor import FakeTensorMode

from dan_blocks.archs.presets import DANv2
from dan_blocks.inference import tiled, upscale


def _small_v2(input_norm: bool = True, seed: int = 0) -> DANv2:
    model = DANv2(4, nf=8, nb=1, ng=2, est_nf=8, est_nb=1, est_tail_nf=8, est_input_norm=input_norm, loop=3)
    return randomise(model, seed).eval()  # type: ignore[return-value]


@pytest.mark.parametrize("input_norm", [True, False])
def test_fake_cuda_tiled_with_cpu_output_device(input_norm: bool) -> None:
    model = _small_v2(input_norm)
    with FakeTensorMode(allow_non_fake_inputs=True):
        on_gpu = model.to("cuda")
        lr = torch.rand(1, 3, 24, 20, device="cuda")
        out = tiled(on_gpu, lr, 8, output_device="cpu")  # raised a device mismatch before the fix
        assert out.sr.device.type == "cpu"
        assert all(s.device.type == "cpu" for s in out.srs)
        assert out.kernels[-1].device.type == "cuda"
        out = tiled(on_gpu, lr, 8, output_device="cpu", keep_srs=False)
        assert out.sr.device.type == "cpu" and len(out.srs) == 1


def test_fake_cuda_mixing_devices_is_what_fails() -> None:
    """The fake-device check is real: a CPU tensor meeting a CUDA one raises."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.ones(2, 2, device="cuda")
        b = torch.ones(2, 2)
        with pytest.raises(Exception, match=r"same device|two devices|devices"):
            _ = a - b


def test_output_device_result_equals_untiled_with_input_norm() -> None:
    model = _small_v2(True, seed=3)
    reference = copy.deepcopy(model)
    lr = torch.rand(1, 3, 20, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = reference(lr)
    out = upscale(model, lr, 7, output_device="cpu")
    assert torch.allclose(out.sr, ref.sr, rtol=0, atol=1e-5 * float(ref.sr.abs().max()))


def test_autocast_dtype_follows_into_tiles() -> None:
    model = _small_v2(True, seed=4)
    reference = copy.deepcopy(model)
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = reference(lr)
        out = upscale(model, lr, 6)
    assert out.sr.dtype == ref.sr.dtype == torch.bfloat16
    assert out.kernels[-1].dtype == ref.kernels[-1].dtype
    diff = (out.sr.float() - ref.sr.float()).abs().max()
    assert float(diff) <= 0.05 * float(ref.sr.float().abs().max())  # bf16 rounding, in another order


@pytest.mark.parametrize("tile", [None, 6])
def test_keep_srs_false_uses_one_sr_buffer(tile: int | None) -> None:
    model = _small_v2(True, seed=5)
    reference = copy.deepcopy(model)
    lr = torch.rand(1, 3, 16, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = reference(lr)
    seen: list[int] = []
    # proxies share the module's hook dicts: this hook sees every SR image handed to the estimator
    hook = model.estimator.register_forward_pre_hook(lambda _m, args: seen.append(args[0].data_ptr()))
    try:
        out = upscale(model, lr, tile, keep_srs=False, optimize=False)
        assert len(seen) == model.loop and len(set(seen)) == 1  # one buffer for every iteration
        seen.clear()
        full = upscale(model, lr, tile, keep_srs=True, optimize=False)
        assert len(set(seen)) == model.loop  # without the option every iteration has its own image
    finally:
        hook.remove()
    scale = float(ref.sr.abs().max())
    assert len(out.srs) == 1 and out.srs[0] is out.sr
    assert torch.allclose(out.sr, ref.sr, rtol=0, atol=1e-5 * scale)
    assert torch.allclose(full.sr, ref.sr, rtol=0, atol=1e-5 * scale)
    for mine, theirs in zip(out.kernels, ref.kernels, strict=True):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-6)


def test_progress_reports_every_sr_tile() -> None:
    model = _small_v2(False, seed=6)
    lr = torch.rand(1, 3, 16, 12)
    calls: list[tuple[int, int]] = []
    upscale(model, lr, 8, upsampler_tile=8, progress=lambda done, total: calls.append((done, total)))
    tiles = 2 * 2  # ceil(16 / 8) * ceil(12 / 8) SR tiles per restorer pass
    assert calls.count((tiles, tiles)) == model.loop  # each iteration runs the upsampler over every tile once
    assert len(calls) == tiles * model.loop and all(total == tiles for _, total in calls)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tiled_input_norm_matches_untiled() -> None:
    model = _small_v2(True, seed=7).cuda()
    reference = copy.deepcopy(model)
    lr = torch.rand(1, 3, 40, 36, device="cuda")
    with torch.no_grad():
        ref = reference(lr)
    out = upscale(model, lr, 16, output_device="cpu", keep_srs=False)
    assert out.sr.device.type == "cpu"
    assert torch.allclose(out.sr, ref.sr.cpu(), rtol=0, atol=1e-4 * float(ref.sr.abs().max()))


@pytest.mark.parametrize(
    ("size", "tile", "halo", "multiple"), [((23, 17), 5, 3, 1), ((40, 9), 16, 4, 2), ((7, 7), 8, 2, 1)]
)
def test_uniform_tiles_have_one_shape_and_enough_context(size, tile, halo, multiple) -> None:
    from dan_blocks.inference import iter_tiles

    height, width = size
    count = torch.zeros(size, dtype=torch.int64)
    shapes = set()
    for t in iter_tiles(size, tile, halo, uniform=True, multiple=multiple):
        count[t.y0 : t.y1, t.x0 : t.x1] += 1
        shapes.add((t.ey1 - t.ey0, t.ex1 - t.ex0))
        assert 0 <= t.ey0 <= t.y0 and t.y1 <= t.ey1 <= height and 0 <= t.ex0 <= t.x0 and t.x1 <= t.ex1 <= width
        # at least `halo` pixels of context on every side, unless that side is the grid's border
        assert t.y0 - t.ey0 >= min(halo, t.y0) and t.ey1 - t.y1 >= min(halo, height - t.y1)
        assert t.x0 - t.ex0 >= min(halo, t.x0) and t.ex1 - t.x1 >= min(halo, width - t.x1)
        assert t.ey0 % multiple == 0 and t.ex0 % multiple == 0
    assert bool((count == 1).all())
    if multiple == 1:
        assert shapes == {(min(height, tile + 2 * halo), min(width, tile + 2 * halo))}


def test_a_unit_before_a_global_average_is_pooled_tile_by_tile() -> None:
    """The estimator's tail (conv -> global average): the pooling sees a 1 x 1 map, the conv only tiles, and
    the kernels equal the untiled ones."""
    model = _small_v2(True, seed=8)
    reference = copy.deepcopy(model)
    lr = torch.rand(1, 3, 20, 18, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = reference(lr)
    conv, pool = model.estimator.tail[0], model.estimator.tail[1]
    conv_sizes: list[tuple[int, int]] = []
    pool_inputs: list[tuple[int, ...]] = []
    hooks = [conv.register_forward_hook(lambda _m, _a, out: conv_sizes.append(tuple(out.shape[-2:]))),
             pool.register_forward_pre_hook(lambda _m, args: pool_inputs.append(tuple(args[0].shape)))]
    try:
        out = upscale(model, lr, 7, optimize=False)
    finally:
        for hook in hooks:
            hook.remove()
    assert pool_inputs and all(shape[-2:] == (1, 1) for shape in pool_inputs)
    assert conv_sizes and all(h * w < 20 * 18 for h, w in conv_sizes)  # never the whole map
    for mine, theirs in zip(out.kernels, ref.kernels, strict=True):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-6)
    assert torch.allclose(out.sr, ref.sr, rtol=0, atol=1e-5 * float(ref.sr.abs().max()))
