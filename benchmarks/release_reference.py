"""A module-for-module stand-in for the DAN release's v1/v2 networks, for speed comparisons only.

Written here from the published architecture facts (``shared/spec/dan-reference.md``), not from the release's
code: the same modules, parameter names (``Restorer.*``, ``Estimator.*``, buffers ``encoder``, ``init_kernel``,
``init_ker_map``) and execution structure as the release — NCHW, ``nn.Sequential`` bodies, the code stretched and
concatenated in every v1 CRB, the v2 blocks updating the list they are given (so the group "residual" doubles),
the estimator run after every restorer pass. A release checkpoint (or :func:`dan_blocks.formats.official.
to_release_state_dict` of a dan-blocks model) loads into it strictly. Returns ``(srs, kernels_or_codes)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ReleaseDAN"]


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, pad: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, k // 2 if pad is None else pad)


class _CALayer(nn.Module):
    def __init__(self, nf: int, reduction: int = 16) -> None:
        super().__init__()
        # parameter names body.0 / body.2 for the two 1x1 convs, as released; pooling and sigmoid in forward
        self.body = nn.Sequential(_conv(nf, nf // reduction, 1), nn.LeakyReLU(0.2, True), _conv(nf // reduction, nf, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.body(nn.functional.adaptive_avg_pool2d(x, 1)))


class _CRB(nn.Module):
    def __init__(self, nf1: int, nf2: int) -> None:
        super().__init__()
        width = nf1 + nf2
        self.body = nn.Sequential(_conv(width, width, 3), nn.LeakyReLU(0.2, True), _conv(width, nf1, 3), _CALayer(nf1))

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        return [self.body(torch.cat(x, 1)) + x[0], x[1]]


class _DPCB(nn.Module):
    def __init__(self, nf1: int, nf2: int, k1: int, k2: int) -> None:
        super().__init__()
        self.body1 = nn.Sequential(_conv(nf1, nf1, k1), nn.LeakyReLU(0.2, True), _conv(nf1, nf1, k1))
        self.body2 = nn.Sequential(_conv(nf2, nf1, k2), nn.LeakyReLU(0.2, True), _conv(nf1, nf1, k2))

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        f1, f2 = self.body1(x[0]), self.body2(x[1])
        x[0] = x[0] + f1 * f2  # the release updates the list it was given
        x[1] = x[1] + f2
        return x


class _DPCG(nn.Module):
    def __init__(self, nf1: int, nf2: int, k1: int, k2: int, nb: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[_DPCB(nf1, nf2, k1, k2) for _ in range(nb)])

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        y = self.body(x)  # the same list object as x
        y[0] = x[0] + y[0]
        y[1] = x[1] + y[1]
        return y


def _upscale(nf: int, scale: int) -> nn.Sequential:
    if scale == 4:
        return nn.Sequential(_conv(nf, nf * 4, 3), nn.PixelShuffle(2), _conv(nf, nf * 4, 3), nn.PixelShuffle(2),
                             _conv(nf, 3, 3))
    return nn.Sequential(_conv(nf, nf * scale * scale, 3), nn.PixelShuffle(scale), _conv(nf, 3, 3))


class _RestorerV1(nn.Module):
    def __init__(self, scale: int, c: int, nf: int = 64, nb: int = 40) -> None:
        super().__init__()
        self.head = _conv(3, nf, 3)
        self.body = nn.Sequential(*[_CRB(nf, c) for _ in range(nb)])
        self.fusion = _conv(nf, nf, 3)
        self.upscale = _upscale(nf, scale)

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        b, c = code.shape
        stretched = code.view(b, c, 1, 1).expand(-1, -1, lr.shape[2], lr.shape[3])
        f, _ = self.body([self.head(lr), stretched])
        return self.upscale(self.fusion(f))


class _EstimatorV1(nn.Module):
    def __init__(self, scale: int, nf: int = 32, nb: int = 5) -> None:
        super().__init__()
        self.head_LR = _conv(3, nf, 1)
        self.head_HR = _conv(3, nf, 9, scale, 4)
        self.body = nn.Sequential(*[_CRB(nf, nf) for _ in range(nb)])
        self.out = _conv(nf, 10, 3)

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        f, _ = self.body([self.head_LR(lr), self.head_HR(sr)])
        return self.out(f).mean(dim=(2, 3))


class _RestorerV2(nn.Module):
    def __init__(self, scale: int, c: int, nf: int = 64, nb: int = 10, ng: int = 5) -> None:
        super().__init__()
        self.head1 = _conv(3, nf, 3)
        self.head2 = _conv(c, nf, 1)
        self.body = nn.Sequential(*[_DPCG(nf, nf, 3, 1, nb) for _ in range(ng)])
        self.fusion = _conv(nf, nf, 3)
        self.upscale = _upscale(nf, scale)

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        b, c = code.shape
        f, _ = self.body([self.head1(lr), self.head2(code.view(b, c, 1, 1))])
        return self.upscale(self.fusion(f))


class _EstimatorV2(nn.Module):
    def __init__(self, scale: int, k: int, nf: int = 32, nb: int = 5) -> None:
        super().__init__()
        self.head_LR = nn.Sequential(_conv(3, nf, 5))
        self.head_HR = nn.Sequential(_conv(3, nf, 4 * scale + 1, scale, 2 * scale))
        self.body = _DPCG(nf, nf, 3, 3, nb)
        self.tail = nn.Sequential(_conv(nf, 64, 3), nn.AdaptiveAvgPool2d(1), _conv(64, k * k, 1), nn.Softmax(1))

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        f, _ = self.body([self.head_LR(lr), self.head_HR(sr)])
        return self.tail(f).flatten(1)


class ReleaseDAN(nn.Module):
    """The release's DAN v1 (``version=1``) or v2 (``version=2``) structure; loop 4.

    ``nb`` (restorer blocks: 40 CRBs in v1, 10 DPCBs per group in v2), ``ng`` (v2 groups, 5) and ``est_nb``
    (estimator blocks, 5) default to the release's sizes; smaller ones (as `dan_blocks.dan_v1(4, nb=2, ...)`)
    make small stand-ins for tests.
    """

    def __init__(
        self, version: int, scale: int, kernel_size: int = 21, code_length: int = 10, loop: int = 4,
        nb: int | None = None, ng: int = 5, est_nb: int = 5,
    ) -> None:
        super().__init__()
        self.version, self.loop = version, loop
        if version == 1:
            self.Restorer: nn.Module = _RestorerV1(scale, code_length, nb=40 if nb is None else nb)
            self.Estimator: nn.Module = _EstimatorV1(scale, nb=est_nb)
        else:
            self.Restorer = _RestorerV2(scale, code_length, nb=10 if nb is None else nb, ng=ng)
            self.Estimator = _EstimatorV2(scale, kernel_size, nb=est_nb)
        k = kernel_size
        self.register_buffer("encoder", torch.zeros(1, k * k, code_length))
        self.register_buffer("init_kernel", torch.zeros(1, k, k))
        self.register_buffer("init_ker_map", torch.zeros(1, code_length))

    def forward(self, lr: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        b = lr.shape[0]
        code = self.init_ker_map.repeat(b, 1)
        srs, estimates = [], []
        for _ in range(self.loop):
            sr = self.Restorer(lr, code.detach())
            est = self.Estimator(sr.detach(), lr)
            if self.version == 2:
                code = est.view(b, 1, -1).matmul(self.encoder)[:, 0]
                k = math.isqrt(est.shape[1])
                est = est.view(b, k, k)
            else:
                code = est
            srs.append(sr)
            estimates.append(est)
        return srs, estimates
