"""Attention from the features to the code: each pixel reads a few tokens made from the code."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from .base import Fusion, as_global_code

__all__ = ["CodeAttention"]


class CodeAttention(Fusion):
    r"""$\mathrm{fuse}(f, c) = f + W_o\,\mathrm{softmax}\!\big(q(f)\,K(c)^\top / \sqrt{d}\big)\,V(c)$, $c' = c$.

    The code becomes ``tokens`` keys $K(c)$ (``tokens x dim``) and values $V(c)$ (``tokens x nf``) by two linear
    maps; each pixel's query $q(f)$ is a 1x1 conv ``nf -> dim``; the softmax runs over the tokens, per pixel;
    $W_o$ is a 1x1 conv ``nf -> nf`` initialised at zero, so a new block starts as the identity. Not in any
    release: the features choose which part of the degradation they use, pixel by pixel.

    Args:
        nf: feature channels.
        cond_nf: code channels.
        tokens: number of tokens made from the code (8).
        dim: query/key width (32).

    Shape:
        feat (B, nf, H, W); cond: a global code (B, cond_nf) or (B, cond_nf, 1, 1) -> (B, nf, H, W), cond
    """

    def __init__(self, nf: int, cond_nf: int, tokens: int = 8, dim: int = 32) -> None:
        super().__init__(nf, cond_nf)
        if tokens < 1 or dim < 1:
            raise ValueError(f"CodeAttention needs tokens >= 1 and dim >= 1, got tokens={tokens}, dim={dim}")
        self.tokens = tokens
        self.dim = dim
        self.keys = nn.Linear(cond_nf, tokens * dim)
        self.values = nn.Linear(cond_nf, tokens * nf)
        self.query = nn.Conv2d(nf, dim, 1)
        self.out = nn.Conv2d(nf, nf, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # nn.Conv2d with its default bias=True
        nn.init.zeros_(self.out.bias)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_feat(feat)
        self.check_cond(feat, cond)
        code = as_global_code(cond, "the code_attention fusion")
        keys = rearrange(self.keys(code), "b (t d) -> b t d", t=self.tokens)
        values = rearrange(self.values(code), "b (t c) -> b t c", t=self.tokens)
        query = rearrange(self.query(feat), "b d h w -> b (h w) d")
        weights = torch.softmax(query @ keys.transpose(1, 2) / math.sqrt(self.dim), dim=-1)  # (B, HW, T)
        read = rearrange(weights @ values, "b (h w) c -> b c h w", h=feat.shape[-2])
        return feat + self.out(read), cond

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}, tokens={self.tokens}, dim={self.dim}"
