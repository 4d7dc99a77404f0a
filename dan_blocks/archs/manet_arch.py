"""MANet-style spatially variant kernel estimator (MANet, ICCV 2021) that plugs into DAN's alternation."""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import MAConvBlock
from .checks import check_estimator_inputs, check_image
from .registry import register_arch

__all__ = ["MANetEstimator"]


@register_arch
class MANetEstimator(nn.Module):
    r"""Per-pixel kernel estimator: a one-level U-Net of `MAConvBlock` on the LR image.

    Layout (MANet's): ``head`` 3x3 conv ``in_nc -> nf``; ``down`` = ``num_blocks`` MAConv blocks (nf) and a 2x2
    stride-2 conv ``nf -> 2 nf``; ``body`` = ``num_blocks`` blocks (2 nf); ``up`` = 2x2 stride-2 transposed conv
    ``2 nf -> nf`` and ``num_blocks`` blocks (nf); ``tail`` 3x3 conv ``nf -> k²``; a softmax over the k² taps of
    every pixel. With $f_1 = \mathrm{head}(y)\,[+\,H(\hat x)]$, $f_2 = \mathrm{down}(f_1)$:

    $$
    K = \mathrm{softmax}_{k^2}\Big(\mathrm{tail}\big(\mathrm{up}(\mathrm{body}(f_2) + f_2) + f_1\big)\Big),
    \qquad \textstyle\sum_{t} K_{b,t,i,j} = 1 \ \ \forall\, b, i, j
    $$

    SR branch (``use_sr=True``, dan-blocks' addition so the estimator takes part in DAN's alternation):
    $H$ = conv of size ``4s+1``, stride ``s``, padding ``2s`` (like DAN v2's ``head_HR``) maps the SR
    image to LR size; its features are added to the LR head's. ``use_sr=False`` is MANet as published: the SR
    argument is ignored and the estimate depends on the LR image only (then it does not improve across DAN's
    iterations).

    Padding: the LR image is replicate-padded on the right and bottom to a multiple of ``pad_multiple`` (the SR
    image by ``s`` times that) and the output cropped back. MANet's release pads to a multiple of 8, and its
    weights need that (kernels within ~16 px of the bottom and right borders depend on it): `load_model` builds
    MANet's files with ``pad_multiple=8``; the default 2 is the least the U-Net's halving needs.

    Output layout: (B, k*k, h, w), channel ``t = r * k + c`` is kernel tap (row r, column c) of the kernel at LR
    pixel (i, j): the per-pixel layout `encode()` and
    `DAN` take (``kernel.view(B, k, k, h, w)`` gives the k x k kernels).

    Args:
        in_nc: image channels (3).
        nf: U-Net width at LR size (128, MANet's ``manet_nf``); 2 nf at half size.
        num_blocks: MAConv blocks per level (1, MANet's ``manet_nb``).
        kernel_size: ``k`` (21).
        scale: SR factor ``s`` of the SR branch.
        use_sr: add the SR branch (True) or be LR-only as MANet (False).
        split, reduction, scale_activation: of every `MAConv` (2, 2, ``"sigmoid"``).
        pad_multiple: replicate-pad the LR image to a multiple of this (2; MANet's release: 8); even.

    Shape:
        sr: (B, in_nc, s h, s w) (ignored, may be None, when ``use_sr=False``); lr: (B, in_nc, h, w)
        -> kernels (B, k*k, h, w)
    """

    output_kind: Literal["kernel", "code"] = "kernel"
    #: tiling protocol: tiles start on multiples of the padding multiple (the U-Net halves the resolution once,
    #: and the replicate padding of a border tile then reaches as far as on the whole image)
    tile_multiple = 2
    #: tiling protocol: the forward pads the LR image, so the U-Net's parts cannot be tiled one by one
    tile_as_unit = True

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 128,
        num_blocks: int = 1,
        kernel_size: int = 21,
        scale: int = 4,
        use_sr: bool = True,
        split: int = 2,
        reduction: int = 2,
        scale_activation: str = "sigmoid",
        pad_multiple: int = 2,
    ) -> None:
        super().__init__()
        if isinstance(pad_multiple, bool) or not isinstance(pad_multiple, int) or pad_multiple < 2 or pad_multiple % 2:
            raise ValueError(f"MANetEstimator pad_multiple must be an even integer >= 2, got {pad_multiple!r}")
        self.pad_multiple = pad_multiple
        self.tile_multiple = math.lcm(2, pad_multiple)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"MANetEstimator kernel_size must be a positive odd integer, got {kernel_size}")
        if scale < 1:
            raise ValueError(f"MANetEstimator scale must be >= 1, got {scale}")
        self.in_nc = in_nc
        self.kernel_size = kernel_size
        self.use_sr = bool(use_sr)
        self.sr_scale = scale
        # DAN checks an estimator's ``scale`` against the restorer's; an LR-only estimator has none
        self.scale: int | None = scale if self.use_sr else None

        def blocks(channels: int) -> list[nn.Module]:
            return [MAConvBlock(channels, 3, split, reduction, scale_activation) for _ in range(num_blocks)]

        self.head = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.head_HR = nn.Conv2d(in_nc, nf, 4 * scale + 1, scale, 2 * scale) if self.use_sr else None
        self.down = nn.Sequential(*blocks(nf), nn.Conv2d(nf, 2 * nf, 2, 2, 0))
        self.body = nn.Sequential(*blocks(2 * nf))
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * nf, nf, 2, 2, 0), *blocks(nf))
        self.tail = nn.Conv2d(nf, kernel_size * kernel_size, 3, 1, 1)

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local (no pooling); radius in LR pixels of the U-Net and the SR head.

        Heads 2 (``head_HR`` reaches ``2s`` SR pixels), each MAConv block 2 at full and 4 at half resolution,
        the 2x2 down/up convolutions 1 each, the tail 1, plus 1 for the half-resolution grid.
        """
        blocks = len(self.body)
        return 2 + 2 * blocks + 1 + 4 * blocks + 1 + 2 * blocks + 1 + 1

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        check_image("MANetEstimator lr", lr, self.in_nc)
        h, w = lr.shape[-2:]
        m = self.pad_multiple
        pad_h, pad_w = -h % m, -w % m
        feat = self.head(F.pad(lr, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else lr)
        if self.head_HR is not None:
            if sr is None:
                raise ValueError("MANetEstimator(use_sr=True) needs the SR image; pass it or build with use_sr=False")
            s = self.sr_scale
            check_estimator_inputs("MANetEstimator", sr, lr, self.in_nc, s)
            if pad_h or pad_w:
                sr = F.pad(sr, (0, s * pad_w, 0, s * pad_h), mode="replicate")
            feat = feat + self.head_HR(sr)
        down = self.down(feat)
        out = self.tail(self.up(self.body(down) + down) + feat)
        return out[..., :h, :w].softmax(dim=1)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, use_sr={self.use_sr}, scale={self.sr_scale}, "
            f"pad_multiple={self.pad_multiple}"
        )
