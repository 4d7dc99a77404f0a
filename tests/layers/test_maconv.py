"""MAConv / MAConvBlock against the mutual-affine equation written with F.conv2d, and a hand-computed case."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from dan_blocks.layers import MAConv, MAConvBlock
from dan_blocks.layers.maconv import split_sizes


def _reference(x: torch.Tensor, m: MAConv, sigmoid: bool = True) -> torch.Tensor:
    """y_i = W_i * (x_i * a(alpha_i) + beta_i), (alpha_i, beta_i) = MLP_i(other groups), by channel indices."""
    bounds = [0]
    for size in m.in_splits:
        bounds.append(bounds[-1] + size)
    outs = []
    for i in range(len(m.in_splits)):
        own = list(range(bounds[i], bounds[i + 1]))
        others = [c for c in range(x.shape[1]) if c not in own]
        fc1, fc2 = m.fc[i][0], m.fc[i][2]
        hidden = F.relu(F.conv2d(x[:, others], fc1.weight, fc1.bias))
        affine = F.conv2d(hidden, fc2.weight, fc2.bias)
        alpha, beta = affine[:, : len(own)], affine[:, len(own) :]
        if sigmoid:
            alpha = 1.0 / (1.0 + torch.exp(-alpha))
        conv = m.conv[i]
        outs.append(F.conv2d(x[:, own] * alpha + beta, conv.weight, conv.bias, conv.stride, conv.padding))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize(
    ("c_in", "c_out", "split", "stride", "activation"),
    [(8, 8, 2, 1, "sigmoid"), (7, 5, 3, 1, "sigmoid"), (6, 10, 2, 2, "identity"), (9, 9, 3, 1, "identity")],
)
def test_maconv_matches_formula(c_in: int, c_out: int, split: int, stride: int, activation: str) -> None:
    torch.manual_seed(1)
    m = MAConv(c_in, c_out, 3, stride=stride, split=split, reduction=2, scale_activation=activation)
    x = torch.randn(2, c_in, 9, 7)
    out = m(x)
    assert out.shape == (2, c_out, (9 - 1) // stride + 1, (7 - 1) // stride + 1)
    torch.testing.assert_close(out, _reference(x, m, activation == "sigmoid"))


def test_split_sizes() -> None:
    assert split_sizes(8, 2) == [4, 4]
    assert split_sizes(7, 3) == [2, 2, 3]
    assert split_sizes(5, 3) == [2, 2, 1]
    with pytest.raises(ValueError, match="non-empty"):
        split_sizes(2, 3)


def test_maconv_hand_computed() -> None:
    # 2 channels, 1x1 convs: group 0 is modulated by channel 1 and vice versa
    m = MAConv(2, 2, kernel_size=1, split=2, reduction=1, scale_activation="identity")
    with torch.no_grad():
        for i, (w1, b1, ws, wt, wc) in enumerate([(2.0, 0.5, 1.5, -1.0, 3.0), (-1.0, 1.0, 0.5, 2.0, -2.0)]):
            m.fc[i][0].weight.fill_(w1)
            m.fc[i][0].bias.fill_(b1)
            m.fc[i][2].weight.copy_(torch.tensor([ws, wt]).view(2, 1, 1, 1))
            m.fc[i][2].bias.zero_()
            m.conv[i].weight.fill_(wc)
            m.conv[i].bias.fill_(0.25)
    x = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)
    # both hidden units are cut by the ReLU (2*(-2)+0.5 < 0, -1*3+1 < 0): scale = shift = 0, y = bias
    assert m(x).flatten().tolist() == pytest.approx([0.25, 0.25])
    x = torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1)
    # group 0: h = relu(2*1+0.5) = 2.5; scale 3.75, shift -2.5; x0' = -1*3.75-2.5 = -6.25; y0 = 3*-6.25+0.25
    # group 1: h = relu(-1*-1+1) = 2; scale 1, shift 4; x1' = 1*1+4 = 5; y1 = -2*5+0.25
    assert m(x).flatten().tolist() == pytest.approx([-18.5, -9.75])


def test_maconv_block_is_residual() -> None:
    block = MAConvBlock(6, split=3)
    with torch.no_grad():
        for conv in block.body[2].conv:
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.randn(1, 6, 5, 5)
    torch.testing.assert_close(block(x), x)


def test_maconv_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    block = MAConvBlock(8, split=2)
    block(torch.randn(2, 8, 6, 6)).square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_maconv_bad_inputs() -> None:
    with pytest.raises(ValueError, match="split >= 2"):
        MAConv(4, 4, split=1)
    with pytest.raises(ValueError, match="scale_activation"):
        MAConv(4, 4, scale_activation="tanh")
    with pytest.raises(ValueError, match="hidden channel"):
        MAConv(2, 2, reduction=2)
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        MAConv(4, 4)(torch.randn(1, 3, 5, 5))


def test_maconv_dtype_agnostic() -> None:
    m = MAConv(4, 4).double()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    assert m(x).dtype == torch.float64
    torch.testing.assert_close(m(x), _reference(x, m))


def test_maconv_block_scripts_and_compiles() -> None:
    torch.manual_seed(0)
    block = MAConvBlock(8, split=3)
    x = torch.randn(1, 8, 5, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated upstream, still supported
        scripted = torch.jit.script(block)
    torch.testing.assert_close(scripted(x), block(x))
    torch._dynamo.reset()
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), block(x))
