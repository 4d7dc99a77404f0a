"""The fast forms that :func:`dan_blocks.optimize` switches on give the plain blocks' numbers, each against a
derivation; the functions of `dan_blocks.ops` behind them too.

References are written independently of the code under test: the stretched code concatenated and convolved
with ``F.conv2d``, the block equations spelled out with ``F`` ops on the modules' weights, hand-computed
border sums, and the plain model on identical weights (``optimize(copy.deepcopy(plain))`` is the fast one).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dan_blocks import optimize
from dan_blocks.archs import DAN, DANOutput, EstimatorV1, EstimatorV2, MANetEstimator, RestorerV1, RestorerV2, SROnly
from dan_blocks.layers import CRB, DPCB, ChannelAttention, PCAEncoder, StretchConcat, TwoConv
from dan_blocks.ops import (
    can_use_constant_channels,
    conv_lrelu_conv,
    conv_with_constant_channels,
    fused_conv_leaky_relu,
    is_capturing,
    linear_1x1,
    pointwise_gate,
    tensor_state,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CL = torch.channels_last


def rel(a: Tensor, b: Tensor) -> float:
    a64, b64 = a.detach().double(), b.detach().double()
    return float((a64 - b64).abs().max() / b64.abs().max())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- conv with a constant (stretched) code


@pytest.mark.parametrize("ksize", [3, 5])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(1, 1), (2, 5), (3, 3), (4, 5), (7, 9), (12, 11)])
def test_conv_with_constant_channels_equals_conv_of_concat(ksize: int, batch: int, size: tuple[int, int]) -> None:
    torch.manual_seed(ksize * 100 + batch)
    conv = nn.Conv2d(6 + 4, 7, ksize, 1, ksize // 2)
    feat = torch.randn(batch, 6, *size)
    code = torch.randn(batch, 4)
    stretched = code[:, :, None, None].expand(-1, -1, *size)
    expected = F.conv2d(torch.cat((feat, stretched), 1), conv.weight, conv.bias, 1, ksize // 2)
    got = conv_with_constant_channels(feat, conv, code)
    assert got.shape == expected.shape
    assert rel(got, expected) < 1e-6


def test_conv_with_constant_channels_hand_computed_borders() -> None:
    # weight 1 on the code channel only, no bias, zero features: every output counts its taps inside the image
    conv = nn.Conv2d(1 + 1, 1, 3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 1] = 1.0
        conv.bias.zero_()
    out = conv_with_constant_channels(torch.zeros(1, 1, 4, 5), conv, torch.tensor([[2.0]]))
    taps = torch.tensor([[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]], dtype=torch.float32)
    torch.testing.assert_close(out[0, 0], 2.0 * taps, rtol=0, atol=0)


def test_conv_with_constant_channels_rejects_other_convs_and_shapes() -> None:
    with pytest.raises(ValueError, match="stride 1"):
        conv_with_constant_channels(torch.zeros(1, 2, 4, 4), nn.Conv2d(3, 2, 3, 2, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="F \\+ C = 3"):
        conv_with_constant_channels(torch.zeros(1, 2, 4, 4), nn.Conv2d(3, 2, 3, 1, 1), torch.zeros(1, 2))


def test_conv_with_constant_channels_gradients() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(5 + 3, 6, 3, 1, 1)
    feat = torch.randn(2, 5, 6, 7, requires_grad=True)
    code = torch.randn(2, 3, requires_grad=True)
    grads = torch.autograd.grad(conv_with_constant_channels(feat, conv, code).square().sum(),
                                (feat, code, conv.weight, conv.bias))
    cat = torch.cat((feat, code[:, :, None, None].expand(-1, -1, 6, 7)), 1)
    ref = torch.autograd.grad(F.conv2d(cat, conv.weight, conv.bias, 1, 1).square().sum(),
                              (feat, code, conv.weight, conv.bias))
    for g, r in zip(grads, ref, strict=True):
        assert rel(g, r) < 1e-5


# ---------------------------------------------------------------- blocks against their equations


def _crb_equation(block: CRB, feat: Tensor, code: Tensor) -> Tensor:
    c = code if code.dim() == 4 else code[:, :, None, None]
    c = c.expand(-1, -1, feat.shape[-2], feat.shape[-1])
    w1, w2 = block.body[0], block.body[2]
    ca1, ca2 = block.body[3].body[0], block.body[3].body[2]
    r = F.conv2d(F.leaky_relu(F.conv2d(torch.cat((feat, c), 1), w1.weight, w1.bias, 1, 1), 0.2), w2.weight, w2.bias,
                 1, 1)
    pooled = r.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(F.conv2d(F.leaky_relu(F.conv2d(pooled, ca1.weight, ca1.bias), 0.2), ca2.weight, ca2.bias))
    return feat + r * gate


def _plain_and_fast(block: nn.Module, layout: str) -> tuple[nn.Module, nn.Module]:
    """(the plain block, its optimised copy), both in ``layout``."""
    fast = optimize(copy.deepcopy(block), channels_last=layout == "channels_last")
    if layout == "channels_last":
        block.to(memory_format=CL)
    return block, fast


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("code_shape", ["flat", "1x1", "map"])
def test_crb_fast_equals_equation(layout: str, code_shape: str) -> None:
    torch.manual_seed(1)
    block = CRB(16, 5, reduction=4)
    feat = torch.randn(2, 16, 7, 6)
    code = {"flat": torch.randn(2, 5), "1x1": torch.randn(2, 5, 1, 1), "map": torch.randn(2, 5, 7, 6)}[code_shape]
    expected = _crb_equation(block, feat, code)
    plain, fast = _plain_and_fast(block, layout)
    assert type(plain) is CRB and type(fast) is CRB
    assert fast.fusion.fast and fast.body[3].fast and not plain.fusion.fast and not plain.body[3].fast
    if layout == "channels_last":
        assert fast.body[0].weight.is_contiguous(memory_format=CL)
        feat = feat.contiguous(memory_format=CL)
    for model in (fast, plain):
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                out, cond = model(feat, code)
            assert cond is code
            assert rel(out, expected) < 1e-5


@pytest.mark.parametrize("cond_ksize", [1, 3])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_dpcb_fast_equals_equation(cond_ksize: int, layout: str) -> None:
    torch.manual_seed(2)
    block = DPCB(8, 8, 3, cond_ksize)
    feat = torch.randn(3, 8, 5, 9)
    cond = torch.randn(3, 8, 1, 1) if cond_ksize == 1 else torch.randn(3, 8, 5, 9)

    def two(x: Tensor, seq: nn.Sequential) -> Tensor:
        a, b = seq[0], seq[2]
        p = a.kernel_size[0] // 2
        return F.conv2d(F.leaky_relu(F.conv2d(x, a.weight, a.bias, 1, p), 0.2), b.weight, b.bias, 1, p)

    gate = two(cond, block.body2)
    basic = two(feat, block.body1)
    expected_f, expected_c = feat + basic * gate, cond + gate
    plain, fast = _plain_and_fast(block, layout)
    assert type(plain) is DPCB and type(fast) is DPCB
    assert fast.body1.fast and fast.body2.fast and not plain.body1.fast
    if layout == "channels_last":
        feat, cond = feat.contiguous(memory_format=CL), cond.contiguous(memory_format=CL)
    for model in (fast, plain):
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                f, c = model(feat, cond)
            assert rel(f, expected_f) < 1e-5 and rel(c, expected_c) < 1e-5


def test_fused_conv_leaky_relu_matches_two_steps_and_keeps_autograd() -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(6, 10, 3, 1, 1)
    x = torch.randn(2, 6, 9, 8)
    expected = F.leaky_relu(F.conv2d(x, conv.weight, conv.bias, 1, 1), 0.2)
    with torch.no_grad():
        for inp in (x, x.contiguous(memory_format=CL)):
            torch.testing.assert_close(fused_conv_leaky_relu(inp, conv, 0.2), expected, rtol=1e-6, atol=1e-6)
        low = fused_conv_leaky_relu(x.bfloat16(), copy.deepcopy(conv).bfloat16(), 0.2)
    assert low.dtype == torch.bfloat16
    assert rel(low.float(), expected) < 2e-2
    out = fused_conv_leaky_relu(x, conv, 0.2)  # grad enabled: the differentiable two-step path
    out.sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


# ---------------------------------------------------------------- whole DAN: fast vs plain on identical weights


def _tiny_dan(version: str, scale: int, estimator: str = "release", seed: int = 0) -> DAN:
    torch.manual_seed(seed)
    k, c = 5, 4
    pca = PCAEncoder.from_matrix(torch.linalg.qr(torch.randn(k * k, c, generator=_gen(seed)))[0])
    if version == "v1":
        restorer: nn.Module = RestorerV1(nf=16, nb=2, scale=scale, code_length=c, reduction=4)
        est: nn.Module = EstimatorV1(nf=8, num_blocks=1, scale=scale, code_length=c, reduction=4)
    else:
        restorer = RestorerV2(nf=8, nb=2, ng=2, scale=scale, code_length=c)
        est = EstimatorV2(nf=8, num_blocks=2, scale=scale, kernel_size=k, tail_nf=8)
    if estimator == "manet":
        est = MANetEstimator(nf=8, kernel_size=k, scale=scale)
    return DAN(restorer, est, pca, loop=2)


def _pair(version: str, scale: int, estimator: str = "release") -> tuple[DAN, DAN]:
    """(optimised, plain) on identical weights."""
    plain = _tiny_dan(version, scale, estimator)
    fast = optimize(copy.deepcopy(plain))
    assert type(fast) is DAN and type(plain) is DAN
    assert fast.restorer.upscale.fast and not plain.restorer.upscale.fast
    return fast, plain


def _assert_outputs_agree(a: DANOutput, b: DANOutput, tol: float = 1e-5) -> None:
    assert rel(a.sr, b.sr) < tol
    for x, y in zip(a.srs, b.srs, strict=True):
        assert rel(x, y) < tol
    for x, y in zip(a.codes, b.codes, strict=True):
        assert rel(x, y) < tol
    for x, y in zip(a.kernels, b.kernels, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            assert rel(x, y) < tol


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_dan_fast_equals_plain(version: str, scale: int) -> None:
    fast, plain = _pair(version, scale)
    lr = torch.rand(2, 3, 7, 5, generator=_gen(scale))
    with torch.no_grad():
        ref = plain(lr)
        out = fast(lr)
        sr = fast.super_resolve(lr)
    _assert_outputs_agree(out, ref)
    assert rel(sr, ref.sr) < 1e-5
    # layouts: fast weights channels_last, plain NCHW (also after running); outputs in the caller's (NCHW) format
    assert fast.restorer.head.weight.is_contiguous(memory_format=CL) if version == "v1" else \
        fast.restorer.head1.weight.is_contiguous(memory_format=CL)
    assert all(p.is_contiguous() for p in plain.parameters())
    assert fast.restorer.upscale.fast
    assert out.sr.is_contiguous(memory_format=CL) and sr.is_contiguous(memory_format=CL)  # follow the weights
    # a channels_last caller gets channels_last back
    with torch.no_grad():
        last = fast.super_resolve(lr.contiguous(memory_format=CL))
    assert last.is_contiguous(memory_format=CL) and rel(last, ref.sr) < 1e-5


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_per_pixel_code_maps_fall_back_exactly(version: str) -> None:
    fast, plain = _pair(version, 2, estimator="manet")
    lr = torch.rand(2, 3, 6, 7, generator=_gen(5))
    with torch.no_grad():
        ref, out = plain(lr), fast(lr)
    assert ref.codes[0].shape == (2, 4, 6, 7)
    _assert_outputs_agree(out, ref)


def _count_calls(model: DAN) -> dict[str, int]:
    """Live counts of the restorer's and the estimator's forward calls."""
    calls = {"restorer": 0, "estimator": 0}

    def count(name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            calls[name] += 1
        return hook

    model.restorer.register_forward_hook(count("restorer"))
    model.estimator.register_forward_hook(count("estimator"))
    return calls


def test_super_resolve_skips_only_the_last_estimator_pass() -> None:
    """``loop`` restorer and ``loop - 1`` estimator passes (the last estimate would be unused), in the plain and
    the optimised model alike; ``forward`` stays complete."""
    fast, plain = _pair("v2", 2)
    calls, plain_calls = _count_calls(fast), _count_calls(plain)
    lr = torch.rand(1, 3, 5, 6, generator=_gen(6))
    with torch.no_grad():
        sr = fast.super_resolve(lr)
        assert calls == {"restorer": 2, "estimator": 1}
        out = fast(lr)
        ref = plain.super_resolve(lr)
    assert calls == {"restorer": 4, "estimator": 3}  # forward stays complete
    assert len(out.srs) == len(out.codes) == len(out.kernels) == 2
    assert plain_calls == {"restorer": 2, "estimator": 1}  # the plain model skips it too
    assert rel(sr, ref) < 1e-5
    assert rel(SROnly(fast)(lr), out.sr) < 1e-5


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_training_gradients_agree(version: str) -> None:
    fast, plain = _pair(version, 2)
    fast.train()
    plain.train()
    lr = torch.rand(2, 3, 6, 5, generator=_gen(7))
    hr = torch.rand(2, 3, 12, 10, generator=_gen(8))
    grads = []
    for model in (fast, plain):
        out = model(lr)
        loss = F.l1_loss(out.sr, hr) + out.codes[-1].abs().mean()
        grads.append(torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad],
                                         allow_unused=True))
    for g, r in zip(*grads, strict=True):
        if r is None:
            assert g is None
            continue
        assert (g - r).abs().max() <= 1e-5 * r.abs().max() + 1e-8


def test_optimize_without_channels_last_keeps_nchw_weights() -> None:
    plain = _tiny_dan("v2", 2)
    fast = optimize(copy.deepcopy(plain), channels_last=False)
    assert fast.restorer.upscale.fast
    lr = torch.rand(1, 3, 5, 5, generator=_gen(9))
    with torch.no_grad():
        ref, out = plain(lr), fast(lr)
    assert all(p.is_contiguous() for p in fast.parameters())  # nothing converted, before or while running
    _assert_outputs_agree(out, ref)
    optimize(fast)  # channels_last now: the weights are converted once, the outputs stay the same
    assert fast.restorer.head1.weight.is_contiguous(memory_format=CL)
    with torch.no_grad():
        _assert_outputs_agree(fast(lr), ref)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # shape checks become constants: expected here
def test_traced_sr_only_stays_size_generic() -> None:
    fast, plain = _pair("v1", 2)
    with torch.no_grad():
        traced = torch.jit.trace(SROnly(fast), torch.rand(1, 3, 6, 6), check_trace=False)
        other = torch.rand(1, 3, 5, 9, generator=_gen(10))
        assert rel(traced(other), fast(other).sr) < 1e-5
        assert rel(traced(other), plain(other).sr) < 1e-5


# ---------------------------------------------------------------- the other functions of dan_blocks.ops


def _two_conv_equation(x: Tensor, first: nn.Conv2d, last: nn.Conv2d, slope: float) -> Tensor:
    p1, p2 = first.kernel_size[0] // 2, last.kernel_size[0] // 2
    hidden = F.leaky_relu(F.conv2d(x.double(), first.weight.double(), first.bias.double(), 1, p1), slope)
    return F.conv2d(hidden, last.weight.double(), last.bias.double(), 1, p2)


def test_linear_1x1_is_the_conv_on_one_pixel() -> None:
    torch.manual_seed(11)
    conv = nn.Conv2d(6, 5, 1)
    x = torch.randn(3, 6, 1, 1)
    expected = (conv.weight.double()[:, :, 0, 0] @ x.double()[:, :, 0, 0].T).T + conv.bias.double()
    got = linear_1x1(x, conv)
    assert got.shape == (3, 5, 1, 1)
    assert rel(got[:, :, 0, 0], expected) < 1e-6


@pytest.mark.parametrize(("ksize", "size"), [(1, (1, 1)), (1, (5, 6)), (3, (1, 1)), (3, (6, 5))])
def test_conv_lrelu_conv_equals_the_chain(ksize: int, size: tuple[int, int]) -> None:
    torch.manual_seed(12)
    first, last = nn.Conv2d(4, 7, ksize, 1, ksize // 2), nn.Conv2d(7, 4, ksize, 1, ksize // 2)
    x = torch.randn(2, 4, *size)
    expected = _two_conv_equation(x, first, last, 0.2)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert rel(conv_lrelu_conv(x, first, 0.2, last), expected) < 1e-5
    block = TwoConv(4, 4, ksize)
    fast = optimize(copy.deepcopy(block))
    assert fast.fast and not block.fast
    with torch.no_grad():
        assert rel(fast(x), _two_conv_equation(x, block[0], block[2], 0.2)) < 1e-5


def test_pointwise_gate_equals_the_channel_attention_equation() -> None:
    torch.manual_seed(13)
    block = ChannelAttention(16, reduction=4)
    x = torch.randn(3, 16, 5, 7)
    pooled = x.double().mean(dim=(2, 3), keepdim=True)
    a, b = block.body[0], block.body[2]
    gate = torch.sigmoid(F.conv2d(F.leaky_relu(F.conv2d(pooled, a.weight.double(), a.bias.double()), 0.2),
                                  b.weight.double(), b.bias.double()))
    assert rel(pointwise_gate(block.body, x.mean(dim=(2, 3), keepdim=True)), gate) < 1e-6
    fast = optimize(copy.deepcopy(block))
    assert fast.fast and not block.fast
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert rel(fast(x), x.double() * gate) < 1e-5
    # another body (no sigmoid at the end) runs as it is
    other = nn.Sequential(nn.Conv2d(16, 4, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 16, 1), nn.Tanh())
    torch.testing.assert_close(pointwise_gate(other, pooled.float()), other(pooled.float()))


def test_can_use_constant_channels_only_for_same_convs() -> None:
    assert can_use_constant_channels(nn.Conv2d(4, 4, 3, 1, 1))
    assert can_use_constant_channels(nn.Conv2d(4, 4, 5, 1, 2))
    assert not can_use_constant_channels(nn.Conv2d(4, 4, 3, 2, 1))  # strided
    assert not can_use_constant_channels(nn.Conv2d(4, 4, 3, 1, 0))  # no padding
    assert not can_use_constant_channels(nn.Conv2d(4, 4, 3, 1, 1, padding_mode="reflect"))
    assert not can_use_constant_channels(nn.Conv2d(4, 4, 2, 1, 1))  # even kernel
    assert not can_use_constant_channels(nn.Conv2d(4, 4, 3, 1, 1, groups=2))

    class MyConv(nn.Conv2d):
        pass

    assert not can_use_constant_channels(MyConv(4, 4, 3, 1, 1))  # its forward may differ
    assert not can_use_constant_channels(nn.Linear(4, 4))


@pytest.mark.parametrize("code_shape", ["flat", "1x1", "map"])
def test_stretch_concat_fused_conv_fast_and_fallbacks(code_shape: str) -> None:
    """The fast form for a global code, the plain concatenation for a code map or a conv it cannot split: the
    same numbers as conv(cat(f, stretched c)) either way."""
    torch.manual_seed(14)
    fusion = StretchConcat(6, 3)
    feat = torch.randn(2, 6, 7, 5)
    code = {"flat": torch.randn(2, 3), "1x1": torch.randn(2, 3, 1, 1), "map": torch.randn(2, 3, 7, 5)}[code_shape]
    stretched = code.reshape(2, 3, 1, 1).expand(-1, -1, 7, 5) if code_shape != "map" else code
    cat = torch.cat((feat, stretched), 1).double()
    optimize(fusion)
    assert fusion.fast
    for conv in (nn.Conv2d(9, 4, 3, 1, 1), nn.Conv2d(9, 4, 3, 1, 1, padding_mode="replicate")):
        pad = F.pad(cat, (1, 1, 1, 1), mode="replicate") if conv.padding_mode == "replicate" else F.pad(
            cat, (1, 1, 1, 1))
        expected = F.conv2d(pad, conv.weight.double(), conv.bias.double())
        out, cond = fusion.fused_conv(conv, feat, code)
        assert cond is code and rel(out, expected) < 1e-5


def test_is_capturing_and_tensor_state() -> None:
    assert is_capturing() is False
    t = torch.zeros(3)
    before = tensor_state(t)
    assert tensor_state(t) == before
    t.add_(1.0)
    assert tensor_state(t) != before  # an in-place change is seen
    with torch.inference_mode():
        inf = torch.zeros(3)
        first = tensor_state(inf)
        inf.add_(1.0)  # no version counter: the content fingerprint sees it
        assert tensor_state(inf) != first
