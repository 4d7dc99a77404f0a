"""Kernel stretch: spread a degradation code over a feature map (SRMD / DAN v1 conditioning)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KernelStretch", "stretch_code"]

_MODES = ("nearest", "bilinear", "error")


def stretch_code(code: Tensor, size: tuple[int, int], mode: str = "nearest") -> Tensor:
    r"""Stretch a code to a (B, C, H, W) map: $S(c)_{b,i,y,x} = c_{b,i}$.

    Args:
        code: (B, C) or (B, C, 1, 1) global code, or a spatial (B, C, h, w) code map.
        size: target (H, W).
        mode: what to do with a spatial map whose (h, w) differs from (H, W): ``"nearest"`` (each code
            pixel covers a block, exact when H, W are multiples of h, w), ``"bilinear"``
            (``align_corners=False``), or ``"error"``.

    Returns:
        (B, C, H, W). Global codes come back as an expanded view (no copy), like the release's ``expand``.
    """
    if mode != "nearest" and mode != "bilinear" and mode != "error":
        raise ValueError("stretch mode must be one of nearest, bilinear, error; got " + mode)
    height, width = size[0], size[1]
    if code.dim() == 2:
        return code[:, :, None, None].expand(-1, -1, height, width)
    if code.dim() != 4:
        raise ValueError(f"code must be (B, C) or (B, C, h, w), got shape {code.shape}")
    if code.shape[-2] == 1 and code.shape[-1] == 1:
        return code.expand(-1, -1, height, width)
    if code.shape[-2] == height and code.shape[-1] == width:
        return code
    if mode == "error":
        raise ValueError(
            f"code map of spatial size {code.shape[-2:]} does not match the features' ({height}, {width})"
        )
    if mode == "nearest":
        return F.interpolate(code, size=(height, width), mode="nearest")
    return F.interpolate(code, size=(height, width), mode="bilinear", align_corners=False)


class KernelStretch(nn.Module):
    """Module form of `stretch_code()`.

    Shape:
        code: (B, C) | (B, C, 1, 1) | (B, C, h, w); like: any (B, *, H, W) tensor -> (B, C, H, W)
    """

    def __init__(self, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError("stretch mode must be one of nearest, bilinear, error; got " + mode)
        self.mode = mode

    def forward(self, code: Tensor, like: Tensor) -> Tensor:
        return stretch_code(code, (like.shape[-2], like.shape[-1]), self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
