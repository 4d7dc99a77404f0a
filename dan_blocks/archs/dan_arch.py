"""The generic DAN alternation: any restorer R(y, c) with any estimator E(x, y), unrolled ``loop`` times."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ..layers import CRB, DPCB
from ..layers.capture import is_capturing as _capturing
from .builders import PCALike, build_module, resolve_pca
from .lr_memo import LRMemo
from .protocols import OUTPUT_KINDS, DANOutput
from .registry import register_arch
from .upsample import Upsampler

__all__ = [
    "DAN",
    "PCALike",
    "SROnly",
    "build_module",
    "fast_path",
    "fast_path_enabled",
    "resolve_pca",
    "set_fast_path",
]

#: classes whose ``fast_path`` class attribute :func:`set_fast_path` switches
_FAST_CLASSES: tuple[type[nn.Module], ...] = (CRB, DPCB, Upsampler)


def set_fast_path(enabled: bool = True, module: nn.Module | None = None) -> None:
    """Switch the fast path (channels_last, no stretch-and-concat, fused LeakyReLU, ...) on or off.

    Without ``module`` this sets the class-wide default of :class:`DAN`, :class:`~dan_blocks.layers.CRB` and
    :class:`~dan_blocks.layers.DPCB` (every instance without its own setting follows it). With ``module`` it
    sets an instance attribute on that module and every submodule that has a fast path. The plain path is the
    release's structure: NCHW weights and activations, code stretched and concatenated in every CRB, the
    estimator run after the last restorer. Both give the same numbers up to float rounding.
    """
    flag = bool(enabled)
    if module is None:
        for cls in (DAN, *_FAST_CLASSES):
            cls.fast_path = flag
        return
    for sub in module.modules():
        if isinstance(sub, (DAN, *_FAST_CLASSES)):
            sub.fast_path = flag


def fast_path_enabled() -> bool:
    """The class-wide default set by :func:`set_fast_path` (True unless switched off)."""
    return bool(DAN.fast_path)


@contextlib.contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """Context manager: ``with fast_path(False): ...`` runs the plain reference path, then restores."""
    saved = [(cls, cls.__dict__.get("fast_path")) for cls in (DAN, *_FAST_CLASSES)]
    set_fast_path(enabled)
    try:
        yield
    finally:
        for cls, value in saved:
            cls.fast_path = bool(value) if value is not None else True


@register_arch
class DAN(nn.Module):
    r"""Deep Alternating Network: unrolled alternation of a restorer and an estimator (weights shared).

    .. math::
        c_0 = \mathrm{vec}(\delta_k)\,P, \qquad
        \hat x_i = R(y, \bar c_{i-1}), \qquad
        c_i = \begin{cases} \mathrm{vec}(E(\bar{\hat x}_i, y))\,P & \text{kernel estimator}\\
                            E(\bar{\hat x}_i, y) & \text{code estimator}\end{cases}

    for :math:`i = 1..\mathrm{loop}`, where the bar is ``detach()`` when ``detach=True`` (as released) and
    :math:`P` is the PCA matrix (encoding through :meth:`PCAEncoder.encode`, so a centred encoder subtracts
    its mean). :math:`c_0` is stored in the ``init_code`` buffer (the release's ``init_ker_map``) and loaded
    from checkpoints as is.

    Per-pixel estimates are part of the contract: a kernel estimator may return (B, k*k, h, w) (channel =
    row-major tap), encoded per pixel to a code map (B, C, h, w); a code estimator may return (B, C, h, w).
    The restorer receives these maps unchanged.

    Args:
        restorer: an ``nn.Module`` following :class:`~dan_blocks.archs.RestorerProtocol` or an option dict
            ``{"type": "RestorerV2", ...}`` built through BasicSR's ARCH_REGISTRY.
        estimator: likewise, :class:`~dan_blocks.archs.EstimatorProtocol` (needs ``output_kind``).
        pca: see :func:`resolve_pca`.
        loop: number of iterations (4 in every released config).
        detach: detach the code fed to the restorer and the SR fed to the estimator (release behaviour).

    Fast path (``DAN.fast_path``, on by default, see :func:`set_fast_path`): the 4-d weights are kept in
    ``channels_last`` (converted when the model is built and, if needed, at the next forward), the LR is
    converted on entry and the SR images come back in the caller's memory format (NCHW-contiguous unless
    the LR was channels_last); the blocks use their own fast paths. :meth:`super_resolve` skips the estimator
    pass after the last restorer. With the fast path off, weights are moved back to NCHW: the release's
    structure, used as the reference in tests and benchmarks.

    Shape:
        lr: (B, 3, h, w) -> :class:`DANOutput` (sr: (B, 3, s h, s w))
    """

    #: use the fast path (class default; ``model.fast_path = False`` switches one instance)
    fast_path: bool = True

    def __init__(
        self,
        restorer: nn.Module | Mapping[str, Any],
        estimator: nn.Module | Mapping[str, Any],
        pca: PCALike,
        loop: int = 4,
        detach: bool = True,
    ) -> None:
        super().__init__()
        if loop < 1:
            raise ValueError(f"DAN loop must be >= 1, got {loop}")
        self.restorer = build_module(restorer, "restorer")
        self.estimator = build_module(estimator, "estimator")
        self.pca = resolve_pca(pca)
        self.loop = int(loop)
        self.detach = bool(detach)
        kind = getattr(self.estimator, "output_kind", None)
        if kind not in OUTPUT_KINDS:
            raise ValueError(
                f"DAN estimator {type(self.estimator).__name__} must declare output_kind in {OUTPUT_KINDS}, "
                f"got {kind!r}"
            )
        self.output_kind: str = kind
        self.scale = int(getattr(self.restorer, "scale", 0))
        if self.scale < 1:
            raise ValueError(
                f"DAN restorer {type(self.restorer).__name__} must declare an integer scale >= 1"
            )
        self.kernel_size = self.pca.kernel_size
        self.code_length = self.pca.code_length
        self._check_sizes()
        self.register_buffer("init_kernel", self.pca.dirac())
        self.register_buffer("init_code", self.pca.encode(self.pca.dirac()))
        self._channels_last: bool | None = None
        if self.fast_path:
            self.sync_layout()

    def _check_sizes(self) -> None:
        for role, module in (("restorer", self.restorer), ("estimator", self.estimator)):
            length = getattr(module, "code_length", None)
            uses_codes = role == "restorer" or self.output_kind == "code"
            if uses_codes and length is not None and length != self.code_length:
                raise ValueError(
                    f"DAN {role} {type(module).__name__} works with {length}-d codes but the PCA gives "
                    f"{self.code_length}-d codes (expected size {self.code_length}, got {length})"
                )
            size = getattr(module, "kernel_size", None)
            gives_kernels = role == "estimator" and self.output_kind == "kernel"
            if gives_kernels and size is not None and size != self.kernel_size:
                raise ValueError(
                    f"DAN estimator {type(module).__name__} outputs {size}x{size} kernels "
                    f"({size * size} values) "
                    f"but the PCA was fitted on {self.kernel_size}x{self.kernel_size} kernels "
                    f"(expected size {self.kernel_size**2}, got {size * size})"
                )
            scale = getattr(module, "scale", None)
            if role == "estimator" and scale is not None and scale != self.scale:
                raise ValueError(
                    f"DAN estimator scale {scale} differs from the restorer's scale {self.scale}"
                )

    def as_kernel(self, out: Tensor) -> Tensor:
        """Estimator output -> (B, k, k), or (B, k*k, h, w) per pixel."""
        size = self.kernel_size
        if out.dim() == 2 and out.shape[1] == size * size:
            return rearrange(out, "b (kh kw) -> b kh kw", kh=size)
        if (out.dim() == 3 and out.shape[1] == size and out.shape[2] == size) or (
            out.dim() == 4 and out.shape[1] == size * size
        ):
            return out
        raise ValueError(
            f"DAN estimator output must be (B, {size * size}), (B, {size}, {size}) or "
            f"(B, {size * size}, h, w) "
            f"for the {size}x{size} PCA, got shape {tuple(out.shape)}"
        )

    def sync_layout(self, channels_last: bool | None = None) -> None:
        """Put every 4-d parameter and buffer in ``channels_last`` (True) or NCHW (False) memory format, in place.

        ``None`` follows ``self.fast_path``. Values, names and Parameter objects are unchanged (optimisers keep
        working); only strides change. Called by ``forward`` when the fast-path setting changed.
        """
        want = self.fast_path if channels_last is None else bool(channels_last)
        fmt = torch.channels_last if want else torch.contiguous_format
        with torch.no_grad():
            for tensor in (*self.parameters(), *self.buffers()):
                if tensor.dim() == 4 and not tensor.is_contiguous(memory_format=fmt):
                    tensor.data = tensor.data.contiguous(memory_format=fmt)
        self._channels_last = want

    def _prepare(self, lr: Tensor) -> tuple[Tensor, bool, bool]:
        """(input to use, fast path on, give outputs back NCHW-contiguous)."""
        if lr.dim() != 4:
            raise ValueError(f"DAN expects an LR batch (B, C, H, W), got shape {tuple(lr.shape)}")
        fast = bool(self.fast_path)
        if _capturing():
            return lr, fast, False
        if getattr(self, "_channels_last", None) != fast and not torch.is_inference_mode_enabled():
            self.sync_layout(fast)  # (not under inference_mode: the weights would become inference tensors)
        if not fast:
            return lr, False, False
        to_nchw = not lr.is_contiguous(memory_format=torch.channels_last) or lr.is_contiguous()
        return lr.contiguous(memory_format=torch.channels_last), True, to_nchw

    def _memo(self, lr: Tensor, fast: bool) -> LRMemo | None:
        """A fresh :class:`LRMemo` for one call on the fast path (not while a graph is captured), else None."""
        return LRMemo(lr) if fast and not _capturing() else None

    def _restore(self, lr: Tensor, code: Tensor, memo: LRMemo | None) -> Tensor:
        code = code.detach() if self.detach else code
        if memo is not None and getattr(self.restorer, "accepts_lr_memo", False):
            return self.restorer(lr, code, memo=memo)
        return self.restorer(lr, code)

    def _estimate(self, sr: Tensor, lr: Tensor, memo: LRMemo | None = None) -> tuple[Tensor, Tensor | None]:
        """(code, kernel or None) from the estimator."""
        sr = sr.detach() if self.detach else sr
        if memo is not None and getattr(self.estimator, "accepts_lr_memo", False):
            out = self.estimator(sr, lr, memo=memo)
        else:
            out = self.estimator(sr, lr)
        if self.output_kind == "kernel":
            kernel = self.as_kernel(out)
            return self.pca.encode(kernel), kernel
        return out, None

    def forward(self, lr: Tensor) -> DANOutput:
        lr, fast, to_nchw = self._prepare(lr)
        memo = self._memo(lr, fast)
        code = self.init_code.expand(lr.shape[0], -1)
        srs: list[Tensor] = []
        codes: list[Tensor] = []
        kernels: list[Tensor | None] = []
        for _ in range(self.loop):
            sr = self._restore(lr, code, memo)
            code, kernel = self._estimate(sr, lr, memo)
            kernels.append(kernel)
            srs.append(sr)
            codes.append(code)
        if to_nchw:
            srs = [sr.contiguous() for sr in srs]
            codes = [c.contiguous() for c in codes]
            kernels = [k if k is None else k.contiguous() for k in kernels]
        return DANOutput(srs[-1], srs, codes, kernels)

    def super_resolve(self, lr: Tensor) -> Tensor:
        """Only the final SR image (B, 3, s h, s w), equal to ``forward(lr).sr``.

        With the fast path on, the estimator pass after the last restorer is skipped (its estimate would
        not be used): ``loop`` restorer and ``loop - 1`` estimator passes.
        """
        lr, fast, to_nchw = self._prepare(lr)
        if not fast:
            return self.forward(lr).sr
        memo = self._memo(lr, fast)
        code = self.init_code.expand(lr.shape[0], -1)
        for step in range(self.loop):
            sr = self._restore(lr, code, memo)
            if step + 1 < self.loop:
                code, _ = self._estimate(sr, lr, memo)
        return sr.contiguous() if to_nchw else sr

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, loop={self.loop}, detach={self.detach}, kernel_size={self.kernel_size}, "
            f"code_length={self.code_length}, output_kind={self.output_kind!r}"
        )


class SROnly(nn.Module):
    """Wrap a :class:`DAN` so that ``forward(lr)`` returns only the final SR tensor.

    For deployment (ONNX export, ``torch.jit.trace``) and for pipelines that expect a tensor (BasicSR's
    validation). Shape: (B, 3, h, w) -> (B, 3, s h, s w).
    """

    def __init__(self, model: DAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, lr: Tensor) -> Tensor:
        return self.model.super_resolve(lr)
