"""Mutual affine convolution (MAConv, MANet ICCV 2021) and its residual block."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SCALE_ACTIVATIONS", "MAConv", "MAConvBlock", "split_sizes"]

#: what ``MAConv(scale_activation=...)`` accepts
SCALE_ACTIVATIONS = ("sigmoid", "identity")


def split_sizes(channels: int, split: int) -> list[int]:
    """Channel counts of ``split`` groups: ``round(channels / split)`` each, the last one takes the rest."""
    sizes = [round(channels / split)] * (split - 1)
    sizes.append(channels - sum(sizes))
    if min(sizes) < 1:
        raise ValueError(f"cannot split {channels} channels into {split} non-empty groups (sizes {sizes})")
    return sizes


class MAConv(nn.Module):
    r"""Mutual affine convolution: each channel group is modulated by an affine map predicted from the others.

    The input channels are split into ``split`` groups $x_1, \dots, x_n$. For each group $i$, a
    1x1-conv MLP $F_i$ (conv ``r_i -> r_i // reduction``, ReLU, conv ``-> 2 c_i``) reads the other
    groups $\bar x_i = \mathrm{cat}(x_j)_{j \ne i}$ (``r_i`` channels) and gives a per-pixel scale and
    shift, $(\alpha_i, \beta_i) = F_i(\bar x_i)$ (channel halves, scale first). Then

    $$
    y_i = W_i * \big(x_i \odot a(\alpha_i) + \beta_i\big), \qquad y = \mathrm{cat}(y_1, \dots, y_n)
    $$

    with $W_i$ the group's own convolution (``c_i -> o_i`` channels) and $a$ the scale activation:
    ``"sigmoid"`` as in the MANet release (its code applies ``torch.sigmoid`` to the scale) or ``"identity"``
    (a raw, sigmoid-free scale). Groups: ``c_i = round(C_in / split)``, the last takes the rest; likewise
    ``o_i`` for the output channels (the release gives the last output group ``C_in - sum``, which only
    works when ``C_in == C_out``; here it is ``C_out - sum``).

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel_size, stride: of every group's convolution (3, 1).
        padding: of every group's convolution (None: ``kernel_size // 2``).
        bias: bias of the group convolutions (True).
        split: number of groups ``n`` (2, >= 2).
        reduction: squeeze ratio of the MLP (2).
        scale_activation: ``"sigmoid"`` (release) or ``"identity"``.

    Shape:
        (B, C_in, H, W) -> (B, C_out, H', W') with H', W' those of ``nn.Conv2d`` with the same settings.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        split: int = 2,
        reduction: int = 2,
        scale_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if split < 2:
            raise ValueError(f"MAConv needs split >= 2 (each group is modulated by the others), got {split}")
        if scale_activation not in SCALE_ACTIVATIONS:
            raise ValueError(f"MAConv scale_activation must be one of {SCALE_ACTIVATIONS}, got {scale_activation!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.split = split
        self.scale_activation = scale_activation
        self.in_splits = split_sizes(in_channels, split)
        self.out_splits = split_sizes(out_channels, split)
        pad = kernel_size // 2 if padding is None else padding
        self.fc = nn.ModuleList()
        self.conv = nn.ModuleList()
        for c_in, c_out in zip(self.in_splits, self.out_splits, strict=True):
            rest = in_channels - c_in
            hidden = rest // reduction
            if hidden < 1:
                raise ValueError(
                    f"MAConv: {rest} context channels // reduction {reduction} leaves no hidden channel; "
                    f"use more channels or a smaller reduction"
                )
            self.fc.append(
                nn.Sequential(nn.Conv2d(rest, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 2 * c_in, 1))
            )
            self.conv.append(nn.Conv2d(c_in, c_out, kernel_size, stride, pad, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MAConv expects (B, {self.in_channels}, H, W), got shape {list(x.shape)}")
        groups = torch.split(x, self.in_splits, dim=1)
        outputs = []
        for i, (fc, conv) in enumerate(zip(self.fc, self.conv, strict=True)):
            context = torch.cat(groups[:i] + groups[i + 1 :], dim=1)
            scale, shift = torch.chunk(fc(context), 2, dim=1)
            if self.scale_activation == "sigmoid":
                scale = torch.sigmoid(scale)
            outputs.append(conv(groups[i] * scale + shift))
        return torch.cat(outputs, dim=1)

    def extra_repr(self) -> str:
        return f"splits={self.in_splits}->{self.out_splits}, scale_activation={self.scale_activation!r}"


class MAConvBlock(nn.Module):
    r"""Residual MAConv block (MANet's ``MABlock``): $y = x + M_2(\mathrm{ReLU}(M_1(x)))$.

    Args:
        nf: channels (in = out).
        kernel_size: of the MAConvs (3).
        split, reduction, scale_activation: see `MAConv`.

    Shape:
        (B, nf, H, W) -> (B, nf, H, W)
    """

    def __init__(
        self, nf: int = 64, kernel_size: int = 3, split: int = 2, reduction: int = 2, scale_activation: str = "sigmoid"
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.body = nn.Sequential(
            MAConv(nf, nf, kernel_size, split=split, reduction=reduction, scale_activation=scale_activation),
            nn.ReLU(inplace=True),
            MAConv(nf, nf, kernel_size, split=split, reduction=reduction, scale_activation=scale_activation),
        )

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local, two MAConvs of ``k // 2`` pixels each."""
        return 2 * (self.kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
