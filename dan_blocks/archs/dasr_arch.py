"""DASR (Wang et al., CVPR 2021, "Unsupervised Degradation Representation Learning for Blind Super-Resolution"):
a contrastively learned degradation representation conditions a restorer of degradation-aware blocks.

Written from the published equations and the facts of docs/family.md; the release's files load strictly
(`dan_blocks.formats.dasr_files`). The representation is DASR's estimate: one step, estimate -> restore, like
MANet's stage 3, but the estimate is a learned 256-d feature rather than a kernel or a PCA code.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import DAConv
from ..layers.run_whole import run_whole
from .checks import check_image
from .protocols import DANOutput
from .registry import register_arch

__all__ = [
    "DAB",
    "DAG",
    "DASR",
    "DIV2K_RGB_MEAN",
    "DASREncoder",
    "DASRRestorer",
    "DegradationContrast",
    "MeanShift",
]

#: the DIV2K RGB mean DASR (and EDSR) subtract, on the 0-1 scale
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
    r"""$x \mapsto x + \mathrm{sign}\cdot \rho\,\mu$ per channel as a frozen 1x1 convolution (EDSR's MeanShift, std 1),
    $\rho$ the pixel range (255 in DASR). Its weight (identity) and bias are state-dict entries, never trained."""

    def __init__(self, pixel_range: float = 255.0, mean: tuple[float, ...] = DIV2K_RGB_MEAN, sign: int = -1) -> None:
        channels = len(mean)
        super().__init__(channels, channels, 1)
        bias = self.bias
        assert bias is not None
        with torch.no_grad():
            self.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
            bias.copy_(sign * pixel_range * torch.tensor(mean))
        for p in self.parameters():
            p.requires_grad = False


class DAB(nn.Module):
    r"""Degradation-aware block: with $\delta$ = LeakyReLU(0.1) and $r$ the compressed representation,

    $$
    o = \delta(\mathrm{DA}_1(x, r)),\ o = \delta(W_1 * o),\ o = \delta(\mathrm{DA}_2(o, r)),\
    \mathrm{DAB}(x, r) = W_2 * o + x
    $$

    with DA = the ``da_conv`` fusion (`DAConv`) and $W_{1,2}$ 3x3 convolutions with bias. Keys ``da_conv1``,
    ``conv1``, ``da_conv2``, ``conv2`` as released.
    """

    def __init__(self, nf: int = 64, rep_nf: int = 64, ksize: int = 3, reduction: int = 8) -> None:
        super().__init__()
        self.da_conv1 = DAConv(nf, rep_nf, ksize, reduction, 0.1)
        self.conv1 = nn.Conv2d(nf, nf, ksize, 1, ksize // 2)
        self.da_conv2 = DAConv(nf, rep_nf, ksize, reduction, 0.1)
        self.conv2 = nn.Conv2d(nf, nf, ksize, 1, ksize // 2)

    def receptive_radius(self) -> int:
        """Tiling protocol: four k x k operations."""
        return 4 * (self.conv1.kernel_size[0] // 2)

    def forward(self, x: Tensor, r: Tensor) -> Tensor:
        out = F.leaky_relu(self.da_conv1(x, r)[0], 0.1)
        out = F.leaky_relu(self.conv1(out), 0.1)
        out = F.leaky_relu(self.da_conv2(out, r)[0], 0.1)
        return self.conv2(out) + x


class DAG(nn.Module):
    r"""Degradation-aware group: ``n_blocks`` `DAB` (``body.0 .. body.{n-1}``), a 3x3 conv (``body.{n}``), plus
    the group input: $\mathrm{DAG}(x, r) = W * \mathrm{DAB}_n(\cdots\mathrm{DAB}_1(x, r)\cdots, r) + x$."""

    def __init__(self, nf: int = 64, rep_nf: int = 64, ksize: int = 3, reduction: int = 8, n_blocks: int = 5) -> None:
        super().__init__()
        self.body = nn.ModuleList([DAB(nf, rep_nf, ksize, reduction) for _ in range(n_blocks)])
        self.body.append(nn.Conv2d(nf, nf, ksize, 1, ksize // 2))
        self.ksize = ksize

    def receptive_radius(self) -> int:
        """Tiling protocol: four k x k operations per block and the last conv."""
        return (4 * (len(self.body) - 1) + 1) * (self.ksize // 2)

    def forward(self, x: Tensor, r: Tensor) -> Tensor:
        blocks = list(self.body)
        res = x
        for block in blocks[:-1]:
            res = block(res, r)
        return blocks[-1](res) + x  # type: ignore[no-any-return, unused-ignore]


class _DASRTail(nn.Sequential):
    """EDSR's upsampler without activations (``0``: conv ``nf -> 4 nf``, PS(2) per factor 2, or conv
    ``nf -> 9 nf``, PS(3)) then a 3x3 conv to RGB (``1``)."""

    def __init__(self, nf: int, scale: int, out_nc: int = 3) -> None:
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(nf, 9 * nf, 3, 1, 1), nn.PixelShuffle(3)]
        elif scale >= 1 and scale & (scale - 1) == 0:
            for _ in range(scale.bit_length() - 1):
                layers += [nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"DASR supports scale 1, 3 or a power of two, got scale={scale}")
        super().__init__(nn.Sequential(*layers) if layers else nn.Identity(), nn.Conv2d(nf, out_nc, 3, 1, 1))


@register_arch
class DASRRestorer(nn.Module):
    r"""DASR's generator $G(y, f)$ on the 0-255 scale: with $r = \delta(W_c f)$ (``compress``: Linear(rep_in ->
    rep_nf) without bias, LeakyReLU(0.1)),

    $$
    h = W_h * (y - 255\mu),\quad t = W_b * \mathrm{DAG}_{G}(\cdots \mathrm{DAG}_1(h, r)\cdots, r) + h,\quad
    G(y, f) = \mathrm{tail}(t) + 255\mu
    $$

    (``sub_mean``, ``head.0``, ``body.{0..G-1}`` DAGs, ``body.{G}`` conv, ``tail``, ``add_mean``; no clamp).
    ``fusion`` of every block is ``da_conv`` (`DAConv`). Released sizes: nf 64, rep_nf 64, rep_in 256,
    n_groups 5, n_blocks 5, k 3, reduction 8.

    Shape:
        lr (B, 3, h, w) in 0-255; rep (B, rep_in) -> (B, 3, s h, s w) in 0-255
    """

    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        rep_nf: int = 64,
        rep_in: int = 256,
        n_groups: int = 5,
        n_blocks: int = 5,
        ksize: int = 3,
        reduction: int = 8,
        pixel_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.rep_in = rep_in
        self.sub_mean = MeanShift(pixel_range, DIV2K_RGB_MEAN, -1)
        self.head = nn.Sequential(nn.Conv2d(3, nf, ksize, 1, ksize // 2))
        self.compress = nn.Sequential(nn.Linear(rep_in, rep_nf, bias=False), nn.LeakyReLU(0.1))
        self.body = nn.ModuleList([DAG(nf, rep_nf, ksize, reduction, n_blocks) for _ in range(n_groups)])
        self.body.append(nn.Conv2d(nf, nf, ksize, 1, ksize // 2))
        self.tail = _DASRTail(nf, scale)
        self.add_mean = MeanShift(pixel_range, DIV2K_RGB_MEAN, 1)

    def forward(self, lr: Tensor, rep: Tensor) -> Tensor:
        if rep.dim() != 2 or rep.shape[0] != lr.shape[0] or rep.shape[1] != self.rep_in:
            raise ValueError(f"DASRRestorer expects a representation (B={lr.shape[0]}, {self.rep_in}), "
                             f"got {list(rep.shape)}")
        r = self.compress(rep)
        x = self.head(self.sub_mean(lr))
        groups = list(self.body)
        res = x
        for group in groups[:-1]:
            res = group(res, r)
        res = groups[-1](res) + x
        return self.add_mean(self.tail(res))  # type: ignore[no-any-return, unused-ignore]


@register_arch
class DASREncoder(nn.Module):
    r"""DASR's degradation encoder (MoCo's query encoder): six 3x3 convs (``body.{0,3,..,15}``; widths
    nf, nf, 2nf /2, 2nf, 4nf /2, 4nf), each with BatchNorm and LeakyReLU(0.1), global average pooling -> the
    representation $f$ (B, 4 nf). ``mlp`` (Linear, LeakyReLU(0.1), Linear, 4nf wide) maps it to the contrastive
    embedding, used only in training (`DegradationContrast`). It reads the raw 0-255 image.

    ``forward(sr, lr)`` follows the estimator protocol (the SR image is ignored): the representation of ``lr``.

    Shape:
        lr (B, 3, h, w) -> (B, 4 nf)
    """

    output_kind: ClassVar[str] = "representation"

    def __init__(self, in_nc: int = 3, nf: int = 64) -> None:
        super().__init__()
        widths = [(in_nc, nf, 1), (nf, nf, 1), (nf, 2 * nf, 2), (2 * nf, 2 * nf, 1), (2 * nf, 4 * nf, 2),
                  (4 * nf, 4 * nf, 1)]
        layers: list[nn.Module] = []
        for cin, cout, stride in widths:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1)]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.body = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(4 * nf, 4 * nf), nn.LeakyReLU(0.1), nn.Linear(4 * nf, 4 * nf))
        self.out_dim = 4 * nf

    def represent(self, lr: Tensor) -> Tensor:
        """The pooled representation $f$ (B, 4 nf).

        The convolutions are applied through their weights (``F.conv2d``), not called as modules: the encoder
        pools, so it always runs on the whole image, also inside a tiled run (whose tiler would otherwise tile its
        strided convolutions, which leave the LR grid)."""
        x = run_whole(self.body, lr)
        return x.flatten(1)

    def embed(self, lr: Tensor) -> tuple[Tensor, Tensor]:
        """($f$, mlp($f$)): the representation and the (unnormalised) contrastive embedding."""
        fea = self.represent(lr)
        return fea, self.mlp(fea)

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        return self.represent(lr)


class DegradationContrast(nn.Module):
    r"""MoCo (He et al., CVPR 2020) around a `DASREncoder`, DASR's stage-1 loss: query $q = \hat{m}(E_q(x_0))$,
    key $k = \hat{m}(E_k(x_1))$ ($\hat{\cdot}$: L2-normalised embeddings; two patches of one image with the same
    degradation), logits $[q\cdot k,\ q\,Q^\top] / T$, label 0, cross-entropy. The key encoder is a momentum copy
    ($\theta_k \leftarrow m\theta_k + (1-m)\theta_q$, updated before use); the keys then replace the oldest
    queue entries (the batch must divide the queue length).

    Args:
        encoder: the query encoder (trained).
        queue_size: K (8192 in DASR); dim is the encoder's embedding width.
        momentum: m (0.999). temperature: T (0.07).
    """

    queue: Tensor
    queue_ptr: Tensor

    def __init__(self, encoder: DASREncoder, queue_size: int = 8192, momentum: float = 0.999,
                 temperature: float = 0.07) -> None:
        super().__init__()
        import copy

        self.encoder_q: DASREncoder = encoder
        self.encoder_k: DASREncoder = copy.deepcopy(encoder)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.momentum = momentum
        self.temperature = temperature
        self.register_buffer("queue", F.normalize(torch.randn(encoder.out_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self) -> None:
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        size = self.queue.shape[1]
        batch = keys.shape[0]
        if size % batch:
            raise ValueError(f"DegradationContrast: the batch ({batch}) must divide the queue length ({size})")
        ptr = int(self.queue_ptr[0])
        self.queue[:, ptr:ptr + batch] = keys.T
        self.queue_ptr[0] = (ptr + batch) % size

    def forward(self, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(representation of the query patches, logits (B, 1 + K), labels (B,) zeros)."""
        fea, emb = self.encoder_q.embed(query)
        q = F.normalize(emb, dim=1)
        with torch.no_grad():
            self._momentum_update()
            k = F.normalize(self.encoder_k.embed(key)[1], dim=1)
        positive = (q * k).sum(1, keepdim=True)
        negative = q @ self.queue.clone().detach()
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        self._enqueue(k)
        return fea, logits, labels


@register_arch
class DASR(nn.Module):
    r"""DASR's blind SR network: representation $f = E(y)$, then $\hat x = G(y, f)$ (`DASREncoder`,
    `DASRRestorer`), one estimate -> restore step.

    The network computes on DASR's 0-255 scale; ``input_range`` is the scale of the images it is given and
    returns (1.0: the library's [0, 1] images, for ``sr`` / ``upscale``; 255: the release's own convention).
    BatchNorm uses its running statistics in eval mode.

    ``forward`` returns a `DANOutput` whose ``codes[0]`` is the representation $f$ (B, 4 enc_nf) (the estimate;
    DASR estimates no kernel, so ``kernels`` is empty).

    Args:
        scale: SR factor (2, 3, 4 released).
        nf, rep_nf, n_groups, n_blocks, ksize, reduction: restorer sizes (64, 64, 5, 5, 3, 8).
        enc_nf: encoder width (64: representation 256).
        input_range: pixel range of inputs and outputs (1.0).

    Shape:
        lr (B, 3, h, w) -> `DANOutput` (sr (B, 3, s h, s w))
    """

    family_info: ClassVar[dict[str, str]] = {
        "method": "DASR (CVPR 2021)",
        "estimates": "representation: a learned 256-d feature (contrastive, MoCo)",
        "fusion": "da_conv",
        "alternation": "one step: estimate (LR only) -> restore",
    }

    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        rep_nf: int = 64,
        n_groups: int = 5,
        n_blocks: int = 5,
        ksize: int = 3,
        reduction: int = 8,
        enc_nf: int = 64,
        input_range: float = 1.0,
    ) -> None:
        super().__init__()
        if not float(input_range) > 0:
            raise ValueError(f"DASR input_range must be > 0 (1.0 or 255.0), got {input_range!r}")
        self.scale = scale
        self.input_range = float(input_range)
        self.estimator: DASREncoder = DASREncoder(3, enc_nf)
        self.restorer: DASRRestorer = DASRRestorer(scale, nf, rep_nf, 4 * enc_nf, n_groups, n_blocks, ksize, reduction)

    def forward(self, lr: Tensor) -> DANOutput:
        check_image("DASR lr", lr, 3)
        gain = 255.0 / self.input_range
        x = lr * gain if gain != 1.0 else lr
        rep = self.estimator(None, x)
        sr = self.restorer(x, rep)
        if gain != 1.0:
            sr = sr / gain
        return DANOutput(sr, [sr], [rep], [])

    def super_resolve(self, lr: Tensor) -> Tensor:
        """Only the SR image."""
        return self.forward(lr).sr

    def extra_repr(self) -> str:
        return f"scale={self.scale}, input_range={self.input_range}"
