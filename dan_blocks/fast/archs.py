"""DAN and its v1/v2 modules with the LR memo, channels_last I/O and no unused last estimator pass."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ..archs import DAN, DANOutput, DANv1, DANv2, EstimatorV2, RestorerV1, RestorerV2
from ..archs.checks import check_code, check_estimator_inputs, check_image
from .capture import is_capturing
from .dpcb import FastDPCG, linear_1x1
from .lr_memo import LRMemo, reuse

__all__ = ["FastDAN", "FastDANv1", "FastDANv2", "FastEstimatorV2", "FastRestorerV1", "FastRestorerV2"]


class FastRestorerV1(RestorerV1):
    """`RestorerV1` that reuses ``head(lr)`` within one DAN call (``memo=``)."""

    accepts_lr_memo = True

    def forward(self, lr: Tensor, code: Tensor, memo: LRMemo | None = None) -> Tensor:
        check_image("RestorerV1 lr", lr, self.in_nc)
        check_code("RestorerV1", code, lr, self.code_length)
        feat = reuse(memo, self, lr, lambda: self.head(lr))
        for block in self.body:
            feat, code = block(feat, code)
        return self.upscale(self.fusion(feat))


class FastRestorerV2(RestorerV2):
    """`RestorerV2` that reuses ``head1(lr)`` and the first block's basic path within
    one DAN call (``memo=``)."""

    accepts_lr_memo = True

    def forward(self, lr: Tensor, code: Tensor, memo: LRMemo | None = None) -> Tensor:
        check_image("RestorerV2 lr", lr, self.in_nc)
        check_code("RestorerV2", code, lr, self.code_length)
        feat, first = reuse(memo, self, lr, lambda: self._lr_work(lr))
        if code.dim() == 2 and not is_capturing():  # a 1x1 conv on a 1x1 map: a matrix product
            cond = linear_1x1(self.as_map(code), self.head2)
        else:
            cond = self.head2(self.as_map(code) if code.dim() == 2 else code)
        for index, group in enumerate(self.body):
            feat, cond = group(feat, cond, first) if index == 0 and first is not None else group(feat, cond)
        return self.upscale(self.fusion(feat))

    def _lr_work(self, lr: Tensor) -> tuple[Tensor, Tensor | None]:
        """(head1 features, B1 of the first block or None): what depends on lr only."""
        feat = self.head1(lr)
        group = self.body[0]
        return feat, group.first_basic(feat) if isinstance(group, FastDPCG) else None


class FastEstimatorV2(EstimatorV2):
    """`EstimatorV2` that reuses the LR mean, ``head_LR`` and the first block's basic
    path within one DAN call (``memo=``)."""

    accepts_lr_memo = True

    def forward(self, sr: Tensor, lr: Tensor, memo: LRMemo | None = None) -> Tensor:
        check_estimator_inputs("EstimatorV2", sr, lr, self.in_nc, self.scale)
        mean, feat, first = reuse(memo, self, lr, lambda: self._lr_work(lr))
        cond = self.head_HR(sr if mean is None else sr - mean)
        feat, _ = self.body(feat, cond, first) if first is not None else self.body(feat, cond)
        conv, pool, head, softmax = self.tail
        if is_capturing() or not isinstance(head, nn.Conv2d):
            return self.flatten(self.tail(feat))
        return self.flatten(softmax(linear_1x1(pool(conv(feat)), head)))  # the 1x1 head on the pooled map

    def _lr_work(self, lr: Tensor) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """(LR mean or None, head_LR features, B1 of the first block or None): what depends on lr only."""
        mean = self.lr_mean(lr)
        feat = self.head_LR(lr if mean is None else lr - mean)
        return mean, feat, self.body.first_basic(feat) if isinstance(self.body, FastDPCG) else None


def _call(module: torch.nn.Module, memo: LRMemo | None, *args: Tensor | None) -> Tensor:
    if memo is not None and getattr(module, "accepts_lr_memo", False):
        return module(*args, memo=memo)  # type: ignore[no-any-return]
    return module(*args)  # type: ignore[no-any-return]


class FastDAN(DAN):
    """`DAN` with the same alternation (`DAN.alternate()`) and numbers, plus:

    - one `LRMemo` per call, handed to a restorer / estimator that accepts it, so
      LR-only work is done once instead of ``loop`` times;
    - with channels_last weights (``optimize(channels_last=True)``), the LR is converted on entry and the
      outputs come back in the caller's memory format;
    - `super_resolve()` skips the estimator pass after the last restorer (its estimate would be unused).

    Made by `dan_blocks.optimize()`.
    """

    #: weights are channels_last: convert the LR on entry (set by `dan_blocks.optimize`)
    channels_last: bool = False

    def _prepare(self, lr: Tensor) -> tuple[Tensor, bool, LRMemo | None]:
        """(input to use, give outputs back NCHW-contiguous, memo for this call)."""
        self.check_input(lr)
        if is_capturing():
            return lr, False, None
        if not self.channels_last:
            return lr, False, LRMemo(lr)
        to_nchw = not lr.is_contiguous(memory_format=torch.channels_last) or lr.is_contiguous()
        lr = lr.contiguous(memory_format=torch.channels_last)
        return lr, to_nchw, LRMemo(lr)

    def _restore_memo(self, lr: Tensor, code: Tensor, memo: LRMemo | None) -> Tensor:
        return _call(self.restorer, memo, lr, code.detach() if self.detach else code)

    def _estimate_memo(self, sr: Tensor | None, lr: Tensor, memo: LRMemo | None) -> tuple[Tensor, Tensor]:
        if sr is not None and self.detach:
            sr = sr.detach()
        return self.encode(_call(self.estimator_for(sr), memo, sr, lr))

    def _run(self, lr: Tensor, final_estimate: bool) -> tuple[DANOutput, bool]:
        lr, to_nchw, memo = self._prepare(lr)
        out = self.alternate(
            lr, partial(self._restore_memo, memo=memo), partial(self._estimate_memo, memo=memo), final_estimate
        )
        return out, to_nchw

    def forward(self, lr: Tensor) -> DANOutput:
        out, to_nchw = self._run(lr, final_estimate=True)
        if not to_nchw:
            return out
        srs = [sr.contiguous() for sr in out.srs]
        return DANOutput(
            srs[-1], srs, [c.contiguous() for c in out.codes], [k.contiguous() for k in out.kernels]
        )

    def super_resolve(self, lr: Tensor) -> Tensor:
        """Only the final SR image; ``loop`` restorer and ``loop - 1`` estimator passes."""
        out, to_nchw = self._run(lr, final_estimate=False)
        return out.sr.contiguous() if to_nchw else out.sr


class FastDANv1(FastDAN, DANv1):
    """The DAN v1 preset as a `FastDAN` (still an instance of `DANv1`). Made by `dan_blocks.optimize`."""


class FastDANv2(FastDAN, DANv2):
    """The DAN v2 preset as a `FastDAN` (still an instance of `DANv2`). Made by `dan_blocks.optimize`."""
