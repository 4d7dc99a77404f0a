"""ChannelAttention, CRB, DPCB and DPCG against their equations written with torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dan_blocks import CRB, DPCB, DPCG, ChannelAttention

torch.manual_seed(0)


def _conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)


def _attention_reference(x: torch.Tensor, ca: ChannelAttention) -> torch.Tensor:
    w1, w2 = ca.body[0], ca.body[2]
    pooled = x.sum(dim=(2, 3), keepdim=True) / (x.shape[2] * x.shape[3])
    hidden = F.leaky_relu(F.conv2d(pooled, w1.weight, w1.bias), 0.2)
    return x * torch.sigmoid(F.conv2d(hidden, w2.weight, w2.bias))


def test_channel_attention_formula() -> None:
    ca = ChannelAttention(32, reduction=16)
    x = torch.randn(2, 32, 7, 5)
    assert ca.body[0].out_channels == 2  # 32 // 16
    torch.testing.assert_close(ca(x), _attention_reference(x, ca))


def test_channel_attention_rejects_too_few_channels() -> None:
    with pytest.raises(ValueError, match="channels"):
        ChannelAttention(8, reduction=16)


def _crb_reference(feat: torch.Tensor, code: torch.Tensor, crb: CRB) -> torch.Tensor:
    b, _, h, w = feat.shape
    code_map = code.reshape(b, -1, 1, 1) * torch.ones(1, 1, h, w)  # stretch written as a product
    x = torch.cat([feat, code_map], dim=1)
    x = F.leaky_relu(_conv(x, crb.body[0]), 0.2)
    x = _conv(x, crb.body[2])
    return feat + _attention_reference(x, crb.body[3])


@pytest.mark.parametrize("cond_shape", ["flat", "1x1", "map"])
def test_crb_equals_cat_convs_attention(cond_shape: str) -> None:
    crb = CRB(32, 10)
    feat, code = torch.randn(2, 32, 9, 6), torch.randn(2, 10)
    cond = {"flat": code, "1x1": code[:, :, None, None], "map": code[:, :, None, None].repeat(1, 1, 9, 6)}[cond_shape]
    out, cond_out = crb(feat, cond)
    torch.testing.assert_close(out, _crb_reference(feat, code, crb))
    assert cond_out is cond


def test_crb_spatial_condition_of_other_size_is_nearest_stretched() -> None:
    crb = CRB(16, 4)
    feat, small = torch.randn(1, 16, 8, 6), torch.randn(1, 4, 4, 3)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(crb(feat, small)[0], crb(feat, big)[0])
    with pytest.raises(ValueError, match="does not match"):
        CRB(16, 4, fusion_kwargs={"stretch_mode": "error"})(feat, small)


def test_crb_never_mutates_inputs() -> None:
    crb = CRB(16, 4)
    feat, cond = torch.randn(2, 16, 5, 5), torch.randn(2, 4)
    feat0, cond0 = feat.clone(), cond.clone()
    crb(feat, cond)
    assert torch.equal(feat, feat0) and torch.equal(cond, cond0)


def test_crb_bad_shapes_name_what_was_expected() -> None:
    crb = CRB(16, 4)
    with pytest.raises(ValueError, match=r"features \(B, 16, H, W\)"):
        crb(torch.randn(2, 15, 5, 5), torch.randn(2, 4))
    with pytest.raises(ValueError, match="condition"):
        crb(torch.randn(2, 16, 5, 5), torch.randn(2, 5))


def _dpcb_reference(f: torch.Tensor, c: torch.Tensor, blk: DPCB) -> tuple[torch.Tensor, torch.Tensor]:
    b1 = _conv(F.leaky_relu(_conv(f, blk.body1[0]), 0.2), blk.body1[2])
    b2 = _conv(F.leaky_relu(_conv(c, blk.body2[0]), 0.2), blk.body2[2])
    return f + b1 * b2, c + b2


@pytest.mark.parametrize("cond_hw", [(1, 1), (6, 7)])
def test_dpcb_formula(cond_hw: tuple[int, int]) -> None:
    blk = DPCB(16, 16, ksize=3, cond_ksize=1 if cond_hw == (1, 1) else 3)
    f, c = torch.randn(2, 16, 6, 7), torch.randn(2, 16, *cond_hw)
    out_f, out_c = blk(f, c)
    ref_f, ref_c = _dpcb_reference(f, c, blk)
    torch.testing.assert_close(out_f, ref_f)
    torch.testing.assert_close(out_c, ref_c)


@pytest.mark.parametrize("residual", ["add", "double"])
def test_dpcg_formula(residual: str) -> None:
    grp = DPCG(8, 8, 3, 1, num_blocks=3, residual=residual)
    f, c = torch.randn(2, 8, 5, 4), torch.randn(2, 8, 1, 1)
    bf, bc = f, c
    for blk in grp.body:
        bf, bc = _dpcb_reference(bf, bc, blk)
    want = (2 * bf, 2 * bc) if residual == "double" else (f + bf, c + bc)
    got = grp(f, c)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_dpcg_double_reproduces_the_release_in_place_aliasing() -> None:
    """Mimic the release's list mutation literally and check "double" equals it."""
    grp = DPCG(8, 8, 3, 1, num_blocks=2, residual="double")
    x = [torch.randn(1, 8, 4, 4), torch.randn(1, 8, 1, 1)]
    expected = grp(x[0], x[1])
    for blk in grp.body:  # the release's block: x[0] = x[0] + f1*f2; x[1] = x[1] + f2; return x (same list)
        f1, f2 = blk.body1(x[0]), blk.body2.gate(x[1])  # B1 and B2 of the paper
        x[0], x[1] = x[0] + f1 * f2, x[1] + f2
    y = x  # body returned the very same list
    y[0], y[1] = x[0] + y[0], x[1] + y[1]
    torch.testing.assert_close(expected[0], y[0])
    torch.testing.assert_close(expected[1], y[1])


def test_dpcb_dpcg_bad_arguments() -> None:
    narrow = DPCB(16, 8)  # the code cannot take the residual c + B2(c): it passes on unchanged
    code = torch.randn(1, 8, 1, 1)
    assert narrow(torch.randn(1, 16, 3, 3), code)[1] is code
    with pytest.raises(ValueError, match="residual"):
        DPCG(8, 8, residual="sum")
    with pytest.raises(ValueError, match="DPCB expects"):
        DPCB(8, 8)(torch.randn(1, 4, 3, 3), torch.randn(1, 8, 1, 1))


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
    nf=st.sampled_from([16, 32]), cond=st.integers(1, 12),
)
def test_crb_shapes_hypothesis(b: int, h: int, w: int, nf: int, cond: int) -> None:
    out, c = CRB(nf, cond)(torch.randn(b, nf, h, w), torch.randn(b, cond))
    assert out.shape == (b, nf, h, w) and c.shape == (b, cond)


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), spatial=st.booleans())
def test_dpcg_shapes_hypothesis(b: int, h: int, w: int, spatial: bool) -> None:
    c = torch.randn(b, 8, h, w) if spatial else torch.randn(b, 8, 1, 1)
    f_out, c_out = DPCG(8, 8, 3, 1, num_blocks=1)(torch.randn(b, 8, h, w), c)
    assert f_out.shape == (b, 8, h, w) and c_out.shape == c.shape


@pytest.mark.parametrize("make", [lambda: CRB(16, 4), lambda: DPCG(16, 16, 3, 1, 2), lambda: ChannelAttention(16)])
def test_gradients_reach_every_parameter(make) -> None:
    m = make()
    args = (torch.randn(2, 16, 5, 5),) if isinstance(m, ChannelAttention) else (
        torch.randn(2, 16, 5, 5), torch.randn(2, 4) if isinstance(m, CRB) else torch.randn(2, 16, 1, 1))
    out = m(*args)
    (out if isinstance(out, torch.Tensor) else out[0] + out[1].mean()).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
