"""The generic DAN alternation: any restorer R(y, c) with any estimator E(x, y), unrolled ``loop`` times."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from ..formats.pca_files import with_default_kernel_mean
from .builders import PCALike, build_module, resolve_pca
from .protocols import OUTPUT_KINDS, DANOutput
from .registry import register_arch

__all__ = ["DAN", "STARTS", "SROnly"]

#: what ``DAN(start=...)`` accepts: from the Dirac prior (restore first) or from an estimate of the LR alone
STARTS = ("prior", "estimate")


def check_lr_batch(lr: Tensor, weight: Tensor | None, who: str) -> None:
    """Raise ``TypeError`` unless ``lr`` is a tensor of ``weight``'s dtype (any dtype inside ``torch.autocast``),
    ``ValueError`` unless it is a (B, C, H, W) batch with at least one pixel (shape and dtype only while a graph
    is captured)."""
    if not isinstance(lr, Tensor):
        raise TypeError(f"{who} expects the LR batch as a torch.Tensor (B, C, H, W), got {type(lr).__name__}")
    if lr.dim() != 4:
        raise ValueError(f"{who} expects an LR batch (B, C, H, W), got shape {tuple(lr.shape)}")
    if _in_graph_capture():
        return  # traced / compiled graphs keep their shapes symbolic
    if lr.numel() == 0:
        raise ValueError(f"{who} expects an LR batch with at least one pixel, got shape {tuple(lr.shape)}")
    if weight is not None and lr.dtype != weight.dtype and not _autocast(lr.device.type):
        hint = "" if lr.is_floating_point() else " (images as integers: divide by 255 first)"
        raise TypeError(
            f"{who}'s weights are {weight.dtype} but the LR batch is {lr.dtype}{hint}; convert one of them "
            "(lr.to(weight.dtype) or model.to(lr.dtype)) or run under torch.autocast"
        )


def _in_graph_capture() -> bool:
    """True while torch.jit.trace, torch.compile or torch.export captures a graph."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(torch.jit.is_tracing() or (compiling is not None and compiling()))


def _autocast(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        return bool(torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled())
    except RuntimeError:  # a device type autocast does not know (meta): no autocast there
        return False


@register_arch
class DAN(nn.Module):
    r"""Deep Alternating Network: unrolled alternation of a restorer and an estimator (weights shared).

    $$
    c_0 = \mathrm{vec}(\delta_k)\,P, \qquad
    \hat x_i = R(y, \bar c_{i-1}), \qquad
    c_i = \begin{cases} \mathrm{vec}(E(\bar{\hat x}_i, y))\,P & \text{kernel estimator}\\
    E(\bar{\hat x}_i, y) & \text{code estimator}\end{cases}
    $$

    for $i = 1..\mathrm{loop}$ (``start="prior"``, DAN), where the bar is ``detach()`` when ``detach=True`` (as
    released) and
    $P$ is the PCA matrix (encoding through `PCAEncoder.encode()`, so a centred encoder subtracts
    its mean). $c_0$ is stored in the ``init_code`` buffer (the release's ``init_ker_map``) and loaded
    from checkpoints as is.

    ``start="estimate"`` begins from an estimate made from the LR image alone and restores with it, so each step
    is estimate -> restore:

    $$
    c_1 = \mathrm{enc}\big(E_0(\varnothing, y)\big), \qquad \hat x_i = R(y, \bar c_i), \qquad
    c_{i+1} = \mathrm{enc}\big(E(\bar{\hat x}_i, y)\big)
    $$

    with $E_0$ = ``initial_estimator`` (default: the estimator itself, called as ``estimator(None, lr)``, its
    LR-only mode). MANet's stage 3 is ``loop=1`` with an LR-only `MANetEstimator` (`MANetRRDB`); IKC's
    predictor -> restorer -> corrector loop is ``initial_estimator=predictor``, ``estimator=corrector``.
    Then ``codes[i]`` / ``kernels[i]`` are the estimates that conditioned ``srs[i]``.

    Per-pixel estimates are part of the contract: a kernel estimator may return (B, k*k, h, w) (channel =
    row-major tap), encoded per pixel to a code map (B, C, h, w); a code estimator may return (B, C, h, w).
    The restorer receives these maps unchanged.

    Args:
        restorer: an ``nn.Module`` following `RestorerProtocol` or an option dict
            ``{"type": "RestorerV2", ...}`` built through dan-blocks' ARCH_REGISTRY (or BasicSR's, when loaded).
        estimator: likewise, `EstimatorProtocol` (needs ``output_kind``).
        pca: see `resolve_pca()`.
        loop: number of iterations (4 in every released config).
        detach: detach the code fed to the restorer and the SR fed to the estimator (release behaviour).
        setting: the papers' training setting (1 or 2) whose mean kernel reconstructs a code estimator's codes
            into ``DANOutput.kernels`` when the PCA carries none (release matrices); default from the PCA's
            size (`infer_setting`).
        start: ``"prior"`` (restore from the Dirac kernel's code first, DAN) or ``"estimate"`` (estimate from the
            LR alone first, MANet / IKC), see above.
        initial_estimator: with ``start="estimate"``, the module that makes the first estimate from the LR
            alone (IKC's predictor); None: the estimator itself with ``sr=None``. Same forms as ``estimator``
            and the same ``output_kind``.

    `super_resolve()` skips the estimator pass after the last restorer (its estimate would be unused).
    `dan_blocks.optimize()` switches on the exact fast forms of the sub-modules.

    Shape:
        lr: (B, 3, h, w) -> `DANOutput` (sr: (B, 3, s h, s w))
    """

    if TYPE_CHECKING:  # the buffer registered in __init__ (for the checker only: TorchScript reads annotations)
        init_code: Tensor

    def __init__(
        self,
        restorer: nn.Module | Mapping[str, Any],
        estimator: nn.Module | Mapping[str, Any],
        pca: PCALike,
        loop: int = 4,
        detach: bool = True,
        setting: int | None = None,
        start: Literal["prior", "estimate"] = "prior",
        initial_estimator: nn.Module | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(loop, bool) or not isinstance(loop, int) or loop < 1:
            raise ValueError(f"DAN loop must be an integer >= 1, got {loop!r}")
        if start not in STARTS:
            raise ValueError(f"DAN start must be one of {STARTS}, got {start!r}")
        if initial_estimator is not None and start != "estimate":
            raise ValueError("DAN initial_estimator is only used with start='estimate' (it makes the first estimate)")
        self.start: str = start
        self.restorer = build_module(restorer, "restorer")
        self.estimator = build_module(estimator, "estimator")
        self.initial_estimator = (
            None if initial_estimator is None else build_module(initial_estimator, "initial_estimator")
        )
        self.pca = with_default_kernel_mean(resolve_pca(pca), setting)
        self.loop = int(loop)
        self.detach = bool(detach)
        kind = getattr(self.estimator, "output_kind", None)
        if kind not in OUTPUT_KINDS:
            raise ValueError(
                f"DAN estimator {type(self.estimator).__name__} must declare output_kind in {OUTPUT_KINDS}, "
                f"got {kind!r}"
            )
        self.output_kind: str = kind
        if start == "estimate" and self.initial_estimator is None and getattr(self.estimator, "use_sr", False):
            raise ValueError(
                f"DAN start='estimate' makes the first estimate from the LR image alone, but the estimator "
                f"{type(self.estimator).__name__} needs the SR image (use_sr=True): build it with use_sr=False "
                "or pass an initial_estimator"
            )
        initial_kind = getattr(self.initial_estimator, "output_kind", kind)
        if initial_kind != kind:
            raise ValueError(
                f"DAN initial_estimator {type(self.initial_estimator).__name__} gives {initial_kind!r} estimates "
                f"but the estimator gives {kind!r}: both must give the same kind"
            )
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

    def check_input(self, lr: Tensor) -> None:
        """Raise ``TypeError`` unless ``lr`` is a tensor of the weights' dtype (see `check_lr_batch`),
        ``ValueError`` unless it is a (B, C, H, W) batch with at least one pixel."""
        check_lr_batch(lr, next(self.parameters(), None), "DAN")

    def restore(self, lr: Tensor, code: Tensor) -> Tensor:
        r"""$\hat x = R(y, \bar c)$."""
        return self.restorer(lr, code.detach() if self.detach else code)

    def estimator_for(self, sr: Tensor | None) -> nn.Module:
        """The module that estimates from ``sr``: ``initial_estimator`` for the first, LR-only estimate
        (``sr=None``) when there is one, else the estimator."""
        if sr is None and self.initial_estimator is not None:
            return self.initial_estimator
        return self.estimator

    def estimate(self, sr: Tensor | None, lr: Tensor, code: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""(code, kernel) from $E(\bar{\hat x}, y)$, see `encode()`; ``sr=None``: the LR-only first estimate of
        ``start="estimate"``.

        An estimator declaring ``takes_code = True`` (a corrector, IKC's) is called as ``E(sr, lr, code)`` with the
        code that conditioned ``sr`` (detached when ``detach``): it refines that code."""
        if sr is not None and self.detach:
            sr = sr.detach()
        module = self.estimator_for(sr)
        if sr is not None and getattr(module, "takes_code", False):
            if code is None:
                raise ValueError(f"DAN estimator {type(module).__name__} takes the current code (takes_code=True): "
                                 "pass it to estimate(sr, lr, code)")
            return self.encode(module(sr, lr, code.detach() if self.detach else code))
        return self.encode(module(sr, lr))

    def encode(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """(code, kernel) from an estimator output: a kernel estimator's output is PCA-encoded; a code
        estimator's code is reconstructed into the kernel it stands for (`PCAEncoder.reconstruct`, with the
        training distribution's mean kernel)."""
        if self.output_kind == "kernel":
            kernel = self.as_kernel(out)
            if _autocast(kernel.device.type):  # mixed precision: the kernel and its PCA code stay fp32
                kernel = kernel.float()
                with torch.autocast(kernel.device.type, enabled=False):
                    return self.pca.encode(kernel), kernel
            return self.pca.encode(kernel), kernel
        return out, self.pca.reconstruct(out)

    def alternate(
        self,
        lr: Tensor,
        restore: Callable[[Tensor, Tensor], Tensor],
        estimate: Callable[..., tuple[Tensor, Tensor]],
        final_estimate: bool = True,
    ) -> DANOutput:
        """The unrolled alternation, written once: ``loop`` times restore then estimate, from ``init_code``
        (``start="prior"``), or ``loop`` times estimate then restore, from the LR alone (``start="estimate"``).

        ``restore(lr, code)`` and ``estimate(sr or None, lr) -> (code, kernel)`` are `restore()` and
        `estimate()` here; for an estimator with ``takes_code = True``, ``estimate(sr, lr, code)`` also gets the
        code that conditioned ``sr``.
        ``final_estimate=False`` skips the estimate after the last restore of ``start="prior"`` (then ``codes``
        and ``kernels`` hold ``loop - 1`` entries); ``start="estimate"`` makes no estimate after its last restore.
        """
        srs: list[Tensor] = []
        codes: list[Tensor] = []
        kernels: list[Tensor] = []
        takes_code = bool(getattr(self.estimator, "takes_code", False))
        if self.start == "estimate":
            previous: Tensor | None = None
            current: Tensor | None = None
            for _ in range(self.loop):
                code, kernel = estimate(previous, lr) if current is None or not takes_code else estimate(
                    previous, lr, current)
                current = code
                codes.append(code)
                kernels.append(kernel)
                previous = restore(lr, code)
                srs.append(previous)
            return DANOutput(srs[-1], srs, codes, kernels)
        code = self.init_code.expand(lr.shape[0], -1)
        for step in range(self.loop):
            sr = restore(lr, code)
            srs.append(sr)
            if final_estimate or step + 1 < self.loop:
                code, kernel = estimate(sr, lr, code) if takes_code else estimate(sr, lr)
                codes.append(code)
                kernels.append(kernel)
        return DANOutput(srs[-1], srs, codes, kernels)

    def forward(self, lr: Tensor) -> DANOutput:
        self.check_input(lr)
        return self.alternate(lr, self.restore, self.estimate)

    def super_resolve(self, lr: Tensor) -> Tensor:
        """Only the final SR image (B, 3, s h, s w), equal to ``forward(lr).sr``: ``loop`` restorer and ``loop - 1``
        estimator passes (the estimate after the last restore would be unused)."""
        self.check_input(lr)
        return self.alternate(lr, self.restore, self.estimate, final_estimate=False).sr

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, loop={self.loop}, detach={self.detach}, kernel_size={self.kernel_size}, "
            f"code_length={self.code_length}, output_kind={self.output_kind!r}, start={self.start!r}"
        )


class SROnly(nn.Module):
    """Wrap a `DAN` so that ``forward(lr)`` returns only the final SR tensor.

    For deployment (ONNX export, ``torch.jit.trace``) and for pipelines that expect a tensor (BasicSR's
    validation). Shape: (B, 3, h, w) -> (B, 3, s h, s w).
    """

    def __init__(self, model: DAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, lr: Tensor) -> Tensor:
        return self.model.super_resolve(lr)
