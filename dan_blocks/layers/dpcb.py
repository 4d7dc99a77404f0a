"""Dual-Path Conditional Block (DPCB) and Group (DPCG), DAN v2's building blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capture import is_capturing as _capturing

__all__ = ["DPCB", "DPCG", "RESIDUAL_MODES", "fused_conv_leaky_relu"]

RESIDUAL_MODES = ("add", "double")
_FUSABLE_DTYPES = (torch.float32, torch.bfloat16)


def _can_fuse(x: Tensor, conv: nn.Conv2d) -> bool:
    return (
        not _capturing()
        and x.device.type == "cpu"
        and x.dtype in _FUSABLE_DTYPES
        and conv.weight.dtype == x.dtype
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
    )


def fused_conv_leaky_relu(x: Tensor, conv: nn.Conv2d, negative_slope: float) -> Tensor:
    r""":math:`\delta(W * x + b)` (LeakyReLU after ``conv``) in one oneDNN call when that is exact and possible.

    oneDNN applies the LeakyReLU as a post-op while the convolution output is still in cache (the same
    arithmetic as the two-step eager path, bit for bit). Used only for inference on the CPU in float32 or
    bfloat16 without autocast and outside graph capture; otherwise (training, CUDA, tracing, ONNX export)
    it is ``F.leaky_relu(conv(x))``.

    Shape: (B, C_in, H, W) -> (B, C_out, H', W') in the input's memory format.
    """
    if _can_fuse(x, conv):
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
            "leaky_relu", [negative_slope], "",
        )
    return F.leaky_relu(conv(x), negative_slope)


def _linear_1x1(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 conv on a (B, C, 1, 1) map as a matrix product (B, C) @ W^T: no im2col for a single pixel."""
    weight = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])
    return F.linear(x.flatten(1), weight, conv.bias)[:, :, None, None]


def _two_convs(c_in: int, c_out: int, ksize: int, negative_slope: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, ksize, 1, ksize // 2),
        nn.LeakyReLU(negative_slope),
        nn.Conv2d(c_out, c_out, ksize, 1, ksize // 2),
    )


class DPCB(nn.Module):
    r"""Dual-path conditional block (DAN v2).

    .. math::
        f' = f + B_1(f) \odot B_2(c), \qquad c' = c + B_2(c)

    with :math:`B_1` = conv(k) -> LeakyReLU(0.2) -> conv(k) on the basic path (``body1``) and :math:`B_2` =
    conv(k_c) -> LeakyReLU(0.2) -> conv(k_c) on the condition path (``body2``). :math:`B_2(c)` is computed
    once and used on both paths. A (B, C, 1, 1) condition broadcasts over the feature map, which is how the
    v2 Restorer conditions on a global code at the cost of 1x1 convs on a 1x1 map.

    Args:
        nf: channels of the basic path.
        cond_nf: channels of the condition path; must equal ``nf`` because of the residual :math:`c + B_2(c)`.
        ksize: kernel size of the basic path (3).
        cond_ksize: kernel size of the condition path (1 in the Restorer, 3 in the Estimator).
        negative_slope: LeakyReLU slope (0.2).

    Fast path (:attr:`fast_path`, on by default; see :func:`~dan_blocks.archs.set_fast_path`): the
    LeakyReLU is fused into the first conv (oneDNN post-op, inference on the CPU), the update is one
    ``addcmul`` and a global (B, C, 1, 1) condition goes through its 1x1 convs as matrix products. Same
    numbers as the plain path up to float rounding (tested <= 1e-5 relative).

    Shape:
        feat: (B, nf, H, W); cond: (B, nf, 1, 1) or (B, nf, H, W) -> (feat', cond') of the same shapes.
    """

    #: use the fused/fast implementation (class default; instances may override)
    fast_path: bool = True

    def __init__(
        self, nf: int = 64, cond_nf: int = 64, ksize: int = 3, cond_ksize: int = 1, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if cond_nf != nf:
            raise ValueError(
                f"DPCB needs cond_nf == nf for its condition residual c + B2(c); got nf={nf}, cond_nf={cond_nf}"
            )
        if ksize % 2 == 0 or cond_ksize % 2 == 0:
            raise ValueError(f"DPCB kernel sizes must be odd, got ksize={ksize}, cond_ksize={cond_ksize}")
        self.nf = nf
        self.negative_slope = negative_slope
        self.body1 = _two_convs(nf, nf, ksize, negative_slope)
        self.body2 = _two_convs(cond_nf, nf, cond_ksize, negative_slope)

    def condition(self, cond: Tensor) -> Tensor:
        """:math:`B_2(c)`, the gate shared by both paths; shape as ``cond``."""
        first, last = self.body2[0], self.body2[2]
        if (
            self.fast_path
            and cond.shape[-1] == 1
            and cond.shape[-2] == 1
            and first.kernel_size == (1, 1)
            and last.kernel_size == (1, 1)
        ):
            return _linear_1x1(F.leaky_relu(_linear_1x1(cond, first), self.negative_slope), last)
        if self.fast_path:
            return last(fused_conv_leaky_relu(cond, first, self.negative_slope))
        return self.body2(cond)

    def basic(self, feat: Tensor) -> Tensor:
        """:math:`B_1(f)` on the basic path; shape as ``feat``."""
        if self.fast_path:
            return self.body1[2](fused_conv_leaky_relu(feat, self.body1[0], self.negative_slope))
        return self.body1(feat)

    def forward(self, feat: Tensor, cond: Tensor, basic: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``basic``: :math:`B_1(f)` if already known (DAN reuses it when ``feat`` depends on the LR only)."""
        if feat.dim() != 4 or cond.dim() != 4 or feat.shape[1] != self.nf or cond.shape[1] != self.nf:
            raise ValueError(
                f"DPCB expects features (B, {self.nf}, H, W) and a condition (B, {self.nf}, 1|H, 1|W), got "
                f"{feat.shape} and {cond.shape}"
            )
        if basic is not None and basic.shape != feat.shape:
            raise ValueError(f"DPCB basic must have the features' shape {list(feat.shape)}, got {list(basic.shape)}")
        if torch.jit.is_scripting():
            return self._forward_plain(feat, cond, basic)
        if self.fast_path:
            return self._forward_fast(feat, cond, basic)
        return self._forward_plain(feat, cond, basic)

    def _forward_plain(self, feat: Tensor, cond: Tensor, basic: Tensor | None) -> tuple[Tensor, Tensor]:
        gate = self.body2(cond)
        return feat + (self.body1(feat) if basic is None else basic) * gate, cond + gate

    @torch.jit.unused
    def _forward_fast(self, feat: Tensor, cond: Tensor, basic: Tensor | None) -> tuple[Tensor, Tensor]:
        gate = self.condition(cond)
        return torch.addcmul(feat, self.basic(feat) if basic is None else basic, gate), cond + gate


class DPCG(nn.Module):
    r"""Dual-path conditional group: ``num_blocks`` DPCBs and a group residual.

    ``residual="add"`` (the intended design):

    .. math::  (f', c') = (f, c) + \mathrm{body}(f, c)

    ``residual="double"`` reproduces the DAN v2 release, whose blocks overwrite the input list in place so
    that its "residual" adds the body output to itself:

    .. math::  (f', c') = 2\,\mathrm{body}(f, c)

    The released v2 weights only reproduce with ``"double"``; train new models with ``"add"``. Either way
    the inputs are never modified here.

    Args:
        nf: channels of the basic path, as in :class:`DPCB`.
        cond_nf: channels of the condition path (must equal ``nf``).
        ksize: kernel size of the basic path.
        cond_ksize: kernel size of the condition path.
        num_blocks: number of DPCBs (10 in the Restorer, 5 in the Estimator).
        residual: ``"add"`` or ``"double"``.
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        as :class:`DPCB`.
    """

    def __init__(
        self,
        nf: int = 64,
        cond_nf: int = 64,
        ksize: int = 3,
        cond_ksize: int = 1,
        num_blocks: int = 10,
        residual: str = "add",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if residual not in RESIDUAL_MODES:
            raise ValueError(f"DPCG residual must be one of {RESIDUAL_MODES}, got {residual!r}")
        if num_blocks < 1:
            raise ValueError(f"DPCG needs num_blocks >= 1, got {num_blocks}")
        self.residual = residual
        self.body = nn.ModuleList(
            DPCB(nf, cond_nf, ksize, cond_ksize, negative_slope) for _ in range(num_blocks)
        )

    def forward(self, feat: Tensor, cond: Tensor, first_basic: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``first_basic``: :math:`B_1(f)` of the first block, if already known (see :class:`DPCB`)."""
        f, c = feat, cond
        for index, block in enumerate(self.body):
            f, c = block(f, c, first_basic if index == 0 else None)
        if self.residual == "double":
            return f + f, c + c
        return feat + f, cond + c

    def extra_repr(self) -> str:
        return f"num_blocks={len(self.body)}, residual={self.residual!r}"
