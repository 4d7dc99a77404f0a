"""Training memory: what dan-blocks' DAN v1/v2 keep for backward is no more than the release's structure keeps.

The release stand-in (benchmarks/release_reference.py, the release's modules and execution order) gets the same
weights through `to_release_state_dict` (strict). A training forward of each is run under
``torch.autograd.graph.saved_tensors_hooks`` and the bytes of the distinct storages saved for backward are summed
(parameters and buffers left out: both hold the same weights). The release runs ``LeakyReLU(0.2, True)``, which
saves only its output; an out-of-place LeakyReLU after a conv saves the conv's output as well, one extra feature
map per block (about 30 % more activation memory in a training step, issue 20). Gradients must stay the same.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dan_blocks
from dan_blocks.formats.official import to_release_state_dict
from dan_blocks.layers import CRB, DPCB, ChannelAttention, TwoConv

ROOT = Path(__file__).resolve().parents[2]

#: small DAN v1/v2 configurations (the release's widths, fewer blocks), built the same way in both structures
SMALL: dict[str, dict[str, Any]] = {"v1": {"nb": 2, "est_nb": 2}, "v2": {"nb": 1, "ng": 2, "est_nb": 2}}


def _release_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_reference", ROOT / "benchmarks" / "release_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def saved_bytes(module: nn.Module, run: object) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``run()`` runs (the benchmarks' counter,
    ``benchmarks/_bench_utils.saved_for_backward``: one measuring tool for both), ``module``'s weights left out."""
    spec = importlib.util.spec_from_file_location("_bench_utils", ROOT / "benchmarks" / "_bench_utils.py")
    assert spec is not None and spec.loader is not None
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return int(utils.saved_for_backward(module, run))


def _pair(version: str) -> tuple[dan_blocks.DAN, nn.Module]:
    torch.manual_seed(0)
    sizes = SMALL[version]
    model = (dan_blocks.dan_v1 if version == "v1" else dan_blocks.dan_v2)(4, **sizes).train()
    with torch.no_grad():  # smaller weights: the released init grows the features through the blocks
        for p in model.parameters():
            p.mul_(0.5)
    release = _release_module().ReleaseDAN(
        int(version[1]), 4, model.kernel_size, model.code_length, model.loop, **sizes
    ).train()
    release.load_state_dict(to_release_state_dict(model.state_dict()), strict=True)
    return model, release


def _data(model: dan_blocks.DAN) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 3, 12, 12, generator=gen)
    hr = torch.rand(2, 3, 48, 48, generator=gen)
    width = model.kernel_size**2 if model.output_kind == "kernel" else model.code_length
    return lr, hr, torch.rand(2, width, generator=gen) / width


def _loss(srs: list[Tensor], estimates: list[Tensor], hr: Tensor, target: Tensor) -> Tensor:
    """L1 on every SR and on every estimate (the estimator learns from the latter: the SR it sees is detached)."""
    sr_loss = sum((F.l1_loss(sr, hr) for sr in srs), torch.zeros(()))
    return sr_loss + sum((F.l1_loss(e.reshape(target.shape), target) for e in estimates), torch.zeros(()))


def _dan_loss(model: dan_blocks.DAN, lr: Tensor, hr: Tensor, target: Tensor) -> Tensor:
    out = model(lr)
    estimates = out.kernels if model.output_kind == "kernel" else out.codes
    return _loss(out.srs, list(estimates), hr, target)


def _release_loss(release: nn.Module, lr: Tensor, hr: Tensor, target: Tensor) -> Tensor:
    srs, estimates = release(lr)
    return _loss(srs, estimates, hr, target)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_training_forward_saves_no_more_than_the_release(version: str) -> None:
    model, release = _pair(version)
    lr, hr, target = _data(model)
    ours = saved_bytes(model, lambda: _dan_loss(model, lr, hr, target))
    theirs = saved_bytes(release, lambda: _release_loss(release, lr, hr, target))
    assert ours <= theirs, f"{version}: dan-blocks saves {ours} bytes for backward, the release {theirs}"
    assert ours >= 0.9 * theirs  # the same computation: nothing skipped that the release needs


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimized_training_forward_saves_no_more_than_the_release(version: str) -> None:
    model, release = _pair(version)
    fast = cast(dan_blocks.DAN, dan_blocks.optimize(copy.deepcopy(model), channels_last=False))
    lr, hr, target = _data(model)
    ours = saved_bytes(fast, lambda: _dan_loss(fast, lr, hr, target))
    theirs = saved_bytes(release, lambda: _release_loss(release, lr, hr, target))
    assert ours <= theirs, f"{version} optimize(): {ours} bytes saved for backward, the release {theirs}"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_training_loss_and_gradients_equal_the_release(version: str) -> None:
    model, release = _pair(version)
    lr, hr, target = _data(model)
    ours = _dan_loss(model, lr, hr, target)
    ours.backward()
    theirs = _release_loss(release, lr, hr, target)
    theirs.backward()
    assert abs(ours.item() - theirs.item()) <= 1e-5 * abs(theirs.item())
    grads: dict[str, Tensor] = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grads[name] = p.grad
    mapped = to_release_state_dict({**model.state_dict(), **grads})
    checked = 0
    for name, p in release.named_parameters():
        assert p.grad is not None, name
        got = mapped[name]
        scale = float(p.grad.abs().max().clamp_min(1e-12))
        assert float((got - p.grad).abs().max()) <= 1e-5 * scale, name
        checked += 1
    assert checked == len(grads)


def test_blocks_save_what_the_release_blocks_save() -> None:
    """TwoConv, CRB, DPCB and the channel-attention gate keep one map for conv -> LeakyReLU, as the release's
    ``LeakyReLU(0.2, True)`` does, with the same outputs."""
    release = _release_module()
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    code = torch.rand(2, 4)
    two = TwoConv(16, 16)
    reference = nn.Sequential(copy.deepcopy(two[0]), nn.LeakyReLU(0.2, True), copy.deepcopy(two[2]))
    assert saved_bytes(two, lambda: two(x)) == saved_bytes(reference, lambda: reference(x))
    torch.testing.assert_close(two(x), reference(x), rtol=0, atol=0)

    crb = CRB(16, 4)
    ref_crb = release._CRB(16, 4)
    ref_crb.load_state_dict(crb.state_dict(), strict=True)
    stretched = code[:, :, None, None].expand(-1, -1, 12, 12)
    assert saved_bytes(crb, lambda: crb(x, code)) <= saved_bytes(ref_crb, lambda: ref_crb([x, stretched]))
    torch.testing.assert_close(crb(x, code)[0], ref_crb([x, stretched])[0])

    block = DPCB(16, 16)
    ref_block = release._DPCB(16, 16, 3, 1)
    ref_block.load_state_dict(block.state_dict(), strict=True)
    cond = torch.rand(2, 16, 1, 1)
    assert saved_bytes(block, lambda: block(x, cond)) <= saved_bytes(ref_block, lambda: ref_block([x, cond]))

    gate = ChannelAttention(8, 4)
    pooled = torch.rand(2, 8, 1, 1, requires_grad=True)
    ref_gate = nn.Sequential(copy.deepcopy(gate.body[0]), nn.LeakyReLU(0.2, True), *copy.deepcopy(gate.body[2:]))
    assert saved_bytes(gate, lambda: gate.gate(pooled)) == saved_bytes(ref_gate, lambda: ref_gate(pooled))


def test_in_place_activation_keeps_gradients() -> None:
    """The in-place LeakyReLU gives the out-of-place chain's gradients (inputs at 0 included)."""
    torch.manual_seed(0)
    two = TwoConv(4, 4)
    x = torch.randn(1, 4, 6, 6)
    x[0, 0, :2] = 0
    x.requires_grad_(True)
    out = two(x)
    (gx,) = torch.autograd.grad(out.square().sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    plain = two[2](F.leaky_relu(two[0](x2), 0.2))
    (gx2,) = torch.autograd.grad(plain.square().sum(), x2)
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    torch.testing.assert_close(gx, gx2, rtol=0, atol=0)
