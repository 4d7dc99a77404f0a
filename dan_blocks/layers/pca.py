"""PCA kernel encoder: k x k blur kernels <-> C-dimensional codes (SRMD / IKC / DAN)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import torch
from einops.layers.torch import Rearrange
from torch import Tensor, nn

from ..utils import atomic_save, load_file

__all__ = ["PCAEncoder", "fit_pca_matrix"]

_FORMAT = "dan_blocks.PCAEncoder/1"


def fit_pca_matrix(kernels: Tensor, code_length: int) -> tuple[Tensor, Tensor]:
    r"""The release's PCA: first ``code_length`` principal directions of the mean-centred kernels.

    With $X \in \mathbb{R}^{N \times k^2}$ the flattened kernels and $\bar X$ their mean,
    $P$ holds the top right singular vectors of $X - \bar X$ (equivalently the release's left
    singular vectors of $(X - \bar X)^\top$). Computed in float64. Sign convention, so that equal inputs
    give equal matrices: each column is flipped so its entry of largest magnitude is positive (ties: the
    first such entry).

    Args:
        kernels: (N, k, k) or (N, k*k) kernels, N >= code_length.
        code_length: C, the number of components.

    Returns:
        ``(matrix, mean)``: (k*k, C) and (k*k,), in float32.
    """
    flat = kernels.reshape(kernels.shape[0], -1).to(torch.float64) if kernels.dim() == 3 else kernels.double()
    if flat.dim() != 2:
        raise ValueError(f"kernels must be (N, k, k) or (N, k*k), got shape {tuple(kernels.shape)}")
    n, dim = flat.shape
    if not 1 <= code_length <= min(n, dim):
        raise ValueError(f"code_length must be in [1, min(N={n}, k*k={dim})], got {code_length}")
    mean = flat.mean(dim=0)
    _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    basis = vh[:code_length].T.contiguous()  # (k*k, C)
    pivot = basis.abs().argmax(dim=0)
    signs = torch.sign(basis[pivot, torch.arange(code_length)])
    signs[signs == 0] = 1.0
    return (basis * signs).float(), mean.float()


class PCAEncoder(nn.Module):
    r"""Encode blur kernels as PCA codes and decode them back.

    Encoding (``center=False``, the DAN release's convention, "compatible mode"):
    $c = \mathrm{vec}(k)\,P$; with ``center=True``: $c = (\mathrm{vec}(k) - \mu)\,P$.
    Decoding: $\mathrm{vec}(\hat k) = c\,P^\top\ (+\,\mu$ when centred). Decoding is exact for kernels
    in the span of $P$ (``center=False``) or in $\mu + \mathrm{span}(P)$ (``center=True``).

    Buffers: ``matrix`` (k*k, C) and ``mean`` (k*k,), the mean that encoding subtracts (zeros with
    ``center=False``; the fitted mean is then not used and not kept). Build with `fit()`, `from_matrix()` (the
    release stores a plain (k*k, C) tensor) or `load()`.

    Shape:
        encode: (B, k, k) -> (B, C); per pixel (B, k*k, h, w) -> (B, C, h, w)
        decode: (B, C) -> (B, k, k); per pixel (B, C, h, w) -> (B, k*k, h, w)
    """

    if TYPE_CHECKING:  # the buffers registered in __init__ (for the checker only: TorchScript reads annotations)
        matrix: Tensor
        mean: Tensor
        kernel_mean: Tensor

    def __init__(
        self,
        matrix: Tensor,
        mean: Tensor | None = None,
        center: bool = False,
        metadata: dict[str, Any] | None = None,
        kernel_mean: Tensor | None = None,
    ) -> None:
        super().__init__()
        if matrix.dim() == 3 and matrix.shape[0] == 1:  # the release's `encoder` buffer (1, k*k, C)
            matrix = matrix[0]
        if matrix.dim() != 2:
            raise ValueError(f"PCA matrix must be (k*k, C), got shape {tuple(matrix.shape)}")
        size = math.isqrt(matrix.shape[0])
        if size * size != matrix.shape[0] or size % 2 == 0:
            raise ValueError(f"PCA matrix rows must be k*k for an odd k, got {matrix.shape[0]} rows")
        if mean is not None and mean.shape != (matrix.shape[0],):
            raise ValueError(f"PCA mean must be ({matrix.shape[0]},), got {tuple(mean.shape)}")
        if kernel_mean is None and mean is not None and center:
            kernel_mean = mean
        if kernel_mean is not None and kernel_mean.reshape(-1).shape != (matrix.shape[0],):
            raise ValueError(f"PCA kernel_mean must hold {matrix.shape[0]} taps, got {tuple(kernel_mean.shape)}")
        if mean is None or not center:
            # the buffer holds what encode subtracts: zero for the release encoding, so that a model's state
            # dict tells a centred encoder (non-zero mean) from a release one (zeros)
            mean = torch.zeros(matrix.shape[0], dtype=matrix.dtype)
        self.kernel_size = size
        self.code_length = int(matrix.shape[1])
        self.center = bool(center)
        self.metadata = dict(metadata or {})
        self.register_buffer("matrix", matrix.detach().clone().float())
        self.register_buffer("mean", mean.detach().clone().float())
        # the training distribution's mean kernel, for `reconstruct` (not in state dicts: release checkpoints do
        # not carry it; it comes from the PCA file or the settings table)
        self.has_kernel_mean = kernel_mean is not None
        zeros = torch.zeros(matrix.shape[0])
        self.register_buffer(
            "kernel_mean", zeros if kernel_mean is None else kernel_mean.detach().reshape(-1).float(), persistent=False
        )
        # einops layers (not functions) so that the module stays TorchScript-compatible
        self.flatten = Rearrange("b kh kw -> b (kh kw)")
        self.unflatten = Rearrange("b (kh kw) -> b kh kw", kh=size)
        self.pixels_last = Rearrange("b c h w -> b h w c")
        self.pixels_first = Rearrange("b h w c -> b c h w")

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls, kernels: Tensor, code_length: int, center: bool = False, metadata: dict[str, Any] | None = None
    ) -> PCAEncoder:
        """Fit on (N, k, k) kernels with `fit_pca_matrix()`; ``center`` picks the encoding convention."""
        matrix, mean = fit_pca_matrix(kernels, code_length)
        meta = {"method": "svd of mean-centred kernels (DAN release)", "samples": int(kernels.shape[0])}
        meta.update(metadata or {})
        return cls(matrix, mean, center=center, metadata=meta, kernel_mean=mean)

    @classmethod
    def from_matrix(cls, matrix: Tensor, metadata: dict[str, Any] | None = None) -> PCAEncoder:
        """Wrap a plain (k*k, C) matrix as the release stores it (no mean, release encoding)."""
        return cls(matrix, None, center=False, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PCAEncoder:
        """Load a file written by `save()`, or a release-style plain (k*k, C) tensor file."""
        obj = load_file(path)
        if isinstance(obj, Tensor):
            return cls.from_matrix(obj, metadata={"source": os.fspath(path)})
        if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)} is neither a PCA tensor (k*k, C) nor a {_FORMAT} file")
        return cls(
            obj["matrix"], obj["mean"], center=obj["center"], metadata=obj.get("metadata"),
            kernel_mean=obj.get("kernel_mean"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write matrix, mean, convention and metadata atomically (temp file + rename)."""
        payload = {
            "format": _FORMAT,
            "matrix": self.matrix.cpu(),
            "mean": self.mean.cpu(),
            "center": self.center,
            "kernel_size": self.kernel_size,
            "code_length": self.code_length,
            "metadata": self.metadata,
        }
        if self.has_kernel_mean:
            payload["kernel_mean"] = self.kernel_mean.cpu()
        atomic_save(payload, path)

    # -- checks -------------------------------------------------------------------------------------
    def check(self, kernel_size: int | None = None, code_length: int | None = None) -> None:
        """Raise a ValueError naming both sizes when they differ from this encoder's."""
        if kernel_size is not None and kernel_size != self.kernel_size:
            raise ValueError(
                f"PCA kernel-size mismatch: the encoder was fitted on {self.kernel_size}x{self.kernel_size} "
                f"kernels ({self.kernel_size**2} values), got {kernel_size}x{kernel_size} ({kernel_size**2} values)"
            )
        if code_length is not None and code_length != self.code_length:
            raise ValueError(
                f"PCA code-length mismatch: the encoder gives {self.code_length}-d codes, expected {code_length}"
            )

    # -- encode / decode ----------------------------------------------------------------------------
    def encode(self, kernels: Tensor) -> Tensor:
        """(B, k, k) -> (B, C), or per pixel (B, k*k, h, w) -> (B, C, h, w)."""
        size = self.kernel_size
        matrix = self.matrix.to(kernels.dtype)
        mean = self.mean.to(kernels.dtype)
        if kernels.dim() == 3:
            if kernels.shape[-2] != size or kernels.shape[-1] != size:
                raise ValueError(
                    f"PCA kernel-size mismatch: the encoder was fitted on {size}x{size} kernels "
                    f"({size * size} values), got kernels of shape {kernels.shape}"
                )
            flat = self.flatten(kernels)
            if self.center:
                flat = flat - mean
            return flat @ matrix
        if kernels.dim() == 4:
            if kernels.shape[1] != size * size:
                raise ValueError(
                    f"PCA kernel-size mismatch: per-pixel kernels need {size * size} channels "
                    f"({size}x{size}), got {kernels.shape[1]}"
                )
            flat = self.pixels_last(kernels)
            if self.center:
                flat = flat - mean
            return self.pixels_first(flat @ matrix)
        raise ValueError(f"kernels must be (B, k, k) or (B, k*k, h, w), got shape {kernels.shape}")

    def decode(self, code: Tensor) -> Tensor:
        """(B, C) -> (B, k, k), or per pixel (B, C, h, w) -> (B, k*k, h, w)."""
        if code.shape[1] != self.code_length or code.dim() not in (2, 4):
            raise ValueError(f"code must be (B, {self.code_length}[, h, w]), got shape {code.shape}")
        matrix = self.matrix.to(code.dtype)
        mean = self.mean.to(code.dtype)
        if code.dim() == 2:
            flat = code @ matrix.T
            if self.center:
                flat = flat + mean
            return self.unflatten(flat)
        flat = self.pixels_last(code) @ matrix.T
        if self.center:
            flat = flat + mean
        return self.pixels_first(flat)

    def set_kernel_mean(self, kernel_mean: Tensor) -> None:
        """Set the training distribution's mean kernel (k, k) or (k*k,) that `reconstruct` adds back."""
        flat = kernel_mean.detach().reshape(-1)
        if flat.numel() != self.kernel_size**2:
            raise ValueError(f"PCA kernel_mean must hold {self.kernel_size**2} taps, got {tuple(kernel_mean.shape)}")
        self.kernel_mean.copy_(flat.to(self.kernel_mean))
        self.has_kernel_mean = True

    def reconstruct(self, code: Tensor) -> Tensor:
        r"""The kernel a code stands for: $\mathrm{vec}(\hat k) = m + (c - m P)\,P^\top$ with $m$ the training
        distribution's mean kernel (``kernel_mean``), for the release encoding; `decode` for a centred one.

        With the release encoding $c = \mathrm{vec}(k) P$ the plain decode $c P^\top$ drops the part of the mean
        outside the span of $P$, so decoded kernels sum to about 0; adding it back reconstructs kernels of the
        training distribution (setting 1: to ~1e-4 L1). Without a known mean (``has_kernel_mean`` False) this is
        `decode`.

        Shape: (B, C) -> (B, k, k); per pixel (B, C, h, w) -> (B, k*k, h, w).
        """
        decoded = self.decode(code)
        if self.center or not self.has_kernel_mean:
            return decoded
        mean = self.kernel_mean.to(code.dtype)
        rest = mean - (mean @ self.matrix.to(code.dtype)) @ self.matrix.to(code.dtype).T  # (I - P P^T) m
        if code.dim() == 2:
            return decoded + self.unflatten(rest[None])
        return decoded + rest[None, :, None, None]

    def dirac(self, dtype: torch.dtype | None = None) -> Tensor:
        """The (1, k, k) delta kernel DAN starts from."""
        kernel = torch.zeros(1, self.kernel_size, self.kernel_size, dtype=dtype or self.matrix.dtype,
                             device=self.matrix.device)
        kernel[:, self.kernel_size // 2, self.kernel_size // 2] = 1
        return kernel

    def forward(self, kernels: Tensor) -> Tensor:
        return self.encode(kernels)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, code_length={self.code_length}, center={self.center}"
