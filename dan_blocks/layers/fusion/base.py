"""The one signature every fusion follows, and the code-shape helpers they share."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

__all__ = ["Fusion", "as_global_code", "as_map", "conv_after_fusion"]


def as_map(cond: Tensor) -> Tensor:
    """A code (B, C) as a (B, C, 1, 1) map; a map (B, C, h, w) as it is."""
    if cond.dim() == 2:
        return cond[:, :, None, None]
    if cond.dim() != 4:
        raise ValueError(f"a code must be (B, C) or a map (B, C, h, w), got shape {list(cond.shape)}")
    return cond


def as_global_code(cond: Tensor, who: str) -> Tensor:
    """A global code (B, C) from (B, C) or (B, C, 1, 1); a per-pixel map is refused, naming ``who``."""
    if cond.dim() == 2:
        return cond
    if cond.dim() == 4 and cond.shape[-2] == 1 and cond.shape[-1] == 1:
        return cond.flatten(1)
    raise ValueError(
        f"{who} needs a global code (B, C) or (B, C, 1, 1), got shape {list(cond.shape)} (a per-pixel code map: "
        "choose a per-pixel fusion: stretch_concat, dual_path, sft, sft_concat or film)"
    )


class Fusion(nn.Module):
    r"""Base of the fusions: ``Fusion(nf, cond_nf, **kwargs)``; ``fusion(feat, cond) -> (fused, cond')``.

    ``feat`` is (B, nf, H, W); ``cond`` a global code (B, cond_nf), (B, cond_nf, 1, 1) or a code map
    (B, cond_nf, H, W) (each fusion says which it accepts); ``fused`` has `out_channels` channels and ``cond'``
    is what the next block receives (most fusions pass the code on unchanged; ``dual_path`` updates it).

    `fused_conv` is $W * \mathrm{fuse}(f, c)$ for the convolution that follows the fusion in a block; a fusion may
    compute it without building ``fused`` (``stretch_concat``'s fast form).
    """

    #: registered name (set by `register_fusion`)
    fusion_name: ClassVar[str] = ""
    #: channels of the fused features
    out_channels: int

    def __init__(self, nf: int, cond_nf: int) -> None:
        super().__init__()
        self.check_sizes(nf, cond_nf)

    def check_sizes(self, nf: int, cond_nf: int) -> None:
        """Check and record ``nf`` and ``cond_nf`` (integers >= 1); `out_channels` defaults to ``nf``."""
        for what, value in (("nf", nf), ("cond_nf", cond_nf)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__} {what} must be an integer >= 1, got {value!r}")
        self.nf = nf
        self.cond_nf = cond_nf
        self.out_channels = nf

    def fused_conv(self, conv: nn.Module, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        r"""$(W * \mathrm{fuse}(f, c), c')$ for the block's ``conv`` taking `out_channels` channels."""
        fused, cond = self(feat, cond)
        return conv(fused), cond

    def check_feat(self, feat: Tensor) -> None:
        if feat.dim() != 4 or feat.shape[1] != self.nf:
            raise ValueError(f"{type(self).__name__} expects features (B, {self.nf}, H, W), got {list(feat.shape)}")

    def check_cond(self, feat: Tensor, cond: Tensor) -> None:
        if cond.dim() not in (2, 4) or cond.shape[0] != feat.shape[0] or cond.shape[1] != self.cond_nf:
            raise ValueError(
                f"{type(self).__name__} expects a code (B={feat.shape[0]}, {self.cond_nf}) or a map "
                f"(B, {self.cond_nf}, h, w), got {list(cond.shape)}"
            )

    def pointwise_code(self, feat: Tensor, cond: Tensor) -> Tensor:
        """Check ``feat`` and ``cond`` and return the code as a map that is global (B, C, 1, 1) or on the
        features' grid (B, C, H, W), for fusions that work pixel by pixel."""
        self.check_feat(feat)
        self.check_cond(feat, cond)
        code = as_map(cond)
        if code.shape[-2:] != (1, 1) and code.shape[-2:] != feat.shape[-2:]:
            raise ValueError(
                f"{type(self).__name__} code map {list(code.shape)} must be global or on the features' grid "
                f"{list(feat.shape[-2:])}"
            )
        return code

    def receptive_radius(self) -> int:
        """Tiling protocol: how far (in pixels) one output pixel reads the features (0: per pixel). A fusion that
        is not spatially local given its code (one that pools the features) sets ``receptive_radius = None``."""
        return 0

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}"


def conv_after_fusion(fusion: nn.Module, conv: nn.Module, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
    r"""$(W * \mathrm{fuse}(f, c), c')$: the fusion's own `Fusion.fused_conv` when it has one, else
    ``conv(fusion(feat, cond)[0])`` (any module of the fusion signature, or a wrapper of one, e.g. a tiled copy)."""
    method = getattr(fusion, "fused_conv", None)
    if callable(method):
        return method(conv, feat, cond)
    fused, cond = fusion(feat, cond)
    return conv(fused), cond
