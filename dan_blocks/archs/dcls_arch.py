"""DCLS (Luo et al., CVPR 2022, "Deep Constrained Least Squares for Blind Image Super-Resolution"): a dynamic deep
linear kernel (DDLK) estimated from the LR image, a constrained least-squares deconvolution of the features with
it, and a dual-path restorer (DAN v2's group structure with channel attention).

Sizes and layouts as in the release (megvii-research/DCLS-SR); its five checkpoints load through
`dan_blocks.load_model` (`dan_blocks.formats.dcls_files`). One step: estimate (LR only) -> restore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.cls_deconv import CLSDeconv, otf2psf
from ..layers.ddlk import chain_kernel_size, linear_chain_kernel
from ..layers.run_whole import run_whole
from .checks import check_image
from .protocols import DANOutput
from .registry import register_arch
from .upsample import make_upsampler

__all__ = ["DCLS", "DPCAB", "DPCAG", "FILTER_STRUCTURES", "DCLSRestorer", "DDLKEstimator", "dcls_kernel_target"]

#: the release's filter chains per kernel size (setting 1: 21; setting 2: 11 at x2, 31 at x4)
FILTER_STRUCTURES: dict[int, tuple[int, ...]] = {21: (11, 7, 5, 1), 11: (7, 3, 3, 1), 31: (11, 9, 7, 5, 3)}


class _ResBlock(nn.Module):
    """conv3x3, LeakyReLU(0.1), conv3x3, + x (keys ``conv1``, ``conv2``)."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def receptive_radius(self) -> int:
        return 2

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class _CALayer(nn.Module):
    """x * sigmoid(W2 ReLU(W1 GAP(x))) with 1x1 convs with bias (key ``conv_du.{0,2}``)."""

    def __init__(self, nf: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(nf, nf // reduction, 1), nn.ReLU(), nn.Conv2d(nf // reduction, nf, 1),
                                     nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))  # type: ignore[no-any-return, unused-ignore]


class DPCAB(nn.Module):
    r"""DCLS's dual-path block on the pair $(a, b)$ (deblurred path nf1, LR path nf2): $f_1 = B_1(a)$,
    $f_2 = B_2(b)$ (conv, LeakyReLU(0.1), conv); $a' = a + \mathrm{CA}(W * \delta([f_1, f_2]))$,
    $b' = b + \mathrm{CA}(f_2)$. Keys ``body1``, ``body2``, ``CA_body1.{1,2}``, ``CA_body2``."""

    def __init__(self, nf1: int = 64, nf2: int = 16, ksize1: int = 3, ksize2: int = 3, reduction: int = 4) -> None:
        super().__init__()
        self.body1 = nn.Sequential(nn.Conv2d(nf1, nf1, ksize1, 1, ksize1 // 2), nn.LeakyReLU(0.1),
                                   nn.Conv2d(nf1, nf1, ksize1, 1, ksize1 // 2))
        self.body2 = nn.Sequential(nn.Conv2d(nf2, nf2, ksize2, 1, ksize2 // 2), nn.LeakyReLU(0.1),
                                   nn.Conv2d(nf2, nf2, ksize2, 1, ksize2 // 2))
        self.CA_body1 = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv2d(nf1 + nf2, nf1, ksize1, 1, ksize1 // 2),
                                      _CALayer(nf1, reduction))
        self.CA_body2 = _CALayer(nf2, reduction)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        f1 = self.body1(a)
        f2 = self.body2(b)
        return a + self.CA_body1(torch.cat([f1, f2], dim=1)), b + self.CA_body2(f2)


class DPCAG(nn.Module):
    r"""``nb`` `DPCAB` (``body.{i}``) and a group residual: ``"double"`` reproduces the release, whose blocks
    overwrite their input list so that the group returns $2\,\mathrm{body}(a, b)$ on both paths (as DAN v2's
    `DPCG` ``residual="double"``); ``"add"`` is the intended $(a, b) + \mathrm{body}(a, b)$."""

    def __init__(self, nf1: int = 64, nf2: int = 16, nb: int = 10, reduction: int = 4,
                 residual: Literal["double", "add"] = "double") -> None:
        super().__init__()
        if residual not in ("double", "add"):
            raise ValueError(f"DPCAG residual must be 'double' or 'add', got {residual!r}")
        self.residual = residual
        self.body = nn.Sequential(*[DPCAB(nf1, nf2, 3, 3, reduction) for _ in range(nb)])

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        ya, yb = a, b
        for block in self.body:
            ya, yb = block(ya, yb)
        if self.residual == "double":
            return 2 * ya, 2 * yb
        return a + ya, b + yb


@register_arch
class DDLKEstimator(nn.Module):
    r"""DCLS's kernel estimator: LR -> one k x k kernel per image.

    $f_1$ = ``head`` (7x7 conv); $f = \mathrm{body}(f_1) + f_1$ (three residual blocks); latent
    $z$ = ``tail`` (two unpadded 3x3 convs with LeakyReLU(0.1) between, global average pooling, 1x1 conv to
    ``latent``); filter $i$ = ``dec.{i}``($z$) (Linear), read per sample as conv weights (16 x in_nc x f0², 16 x 16 x
    f_i², in_nc x 16 x f_n²); the kernel is the chain's normalised impulse response (`linear_chain_kernel`):
    it sums to 1 but may be negative.

    Estimator protocol: ``output_kind = "kernel"``; ``forward(sr, lr)`` ignores ``sr``.

    Args:
        in_nc: 3. nf: 64. latent: the release's ``input_para`` (256). num_blocks: 3.
        kernel_size: k (21, 11 or 31 as released). filter_structures: the chain's filter sizes (default: the
            release's for k, `FILTER_STRUCTURES`); k must equal 1 + sum(f_i - 1).

    Shape:
        lr (B, in_nc, h, w), h, w >= 5 -> (B, k, k)
    """

    output_kind: Literal["kernel", "code"] = "kernel"
    use_sr = False
    g_chan = 16

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 64,
        latent: int = 256,
        num_blocks: int = 3,
        kernel_size: int = 21,
        filter_structures: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if filter_structures is None:
            if kernel_size not in FILTER_STRUCTURES:
                raise ValueError(f"DDLKEstimator: no release filter chain for kernel_size={kernel_size} "
                                 f"(known: {sorted(FILTER_STRUCTURES)}); pass filter_structures")
            filter_structures = FILTER_STRUCTURES[kernel_size]
        structures = [int(f) for f in filter_structures]
        if len(structures) < 2 or chain_kernel_size(structures) != kernel_size:
            raise ValueError(f"DDLKEstimator: filter_structures {structures} give "
                             f"{chain_kernel_size(structures)}x{chain_kernel_size(structures)} kernels, not "
                             f"{kernel_size}x{kernel_size} (k = 1 + sum(f - 1), at least two filters)")
        self.in_nc = in_nc
        self.kernel_size = kernel_size
        self.filter_structures = structures
        self.head = nn.Sequential(nn.Conv2d(in_nc, nf, 7, 1, 3))
        self.body = nn.Sequential(nn.Sequential(*[_ResBlock(nf) for _ in range(num_blocks)]))
        self.tail = nn.Sequential(nn.Conv2d(nf, nf, 3), nn.LeakyReLU(0.1), nn.Conv2d(nf, nf, 3),
                                  nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(nf, latent, 1), nn.Flatten())
        self.dec = nn.ModuleList()
        last = len(structures) - 1
        for i, size in enumerate(structures):
            cin = in_nc if i in (0, last) else self.g_chan
            self.dec.append(nn.Linear(latent, self.g_chan * cin * size * size))

    def filters(self, lr: Tensor) -> list[Tensor]:
        """The per-sample filters, stacked over the batch as grouped-conv weights (see `linear_chain_kernel`)."""
        batch = lr.shape[0]
        f1 = self.head(lr)
        z = run_whole(self.tail, self.body(f1) + f1)  # unpadded convs and a pooling: whole maps
        g, c = self.g_chan, self.in_nc
        out = []
        last = len(self.filter_structures) - 1
        for i, (dec, size) in enumerate(zip(self.dec, self.filter_structures, strict=True)):
            shape = (batch * g, c) if i == 0 else (batch * c, g) if i == last else (batch * g, g)
            out.append(dec(z).reshape(*shape, size, size))
        return out

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        check_image("DDLKEstimator lr", lr, self.in_nc)
        if lr.shape[-1] < 5 or lr.shape[-2] < 5:
            raise ValueError(f"DDLKEstimator needs LR images of at least 5x5, got {list(lr.shape[-2:])}")
        return linear_chain_kernel(self.filters(lr), lr.shape[0], self.in_nc)[:, 0]


@register_arch
class DCLSRestorer(nn.Module):
    r"""DCLS's restorer ("DPAN") $R(y, K)$: $f$ = ``conv_first``($y$); $g$ = ``feature_block`` (three residual
    blocks); $b$ = ``head1``($g$) (3x3, nf -> nf/r, the LR path); $a$ = ``head2``($g$, K) (`CLSDeconv`, the
    deblurred path); ``ng`` `DPCAG` on $(a, b)$; $\hat x = \mathrm{clamp}_{[0,1]}(U(W_f * [b, a] + f))$ with $U$
    the DAN upsampler (``upscale``).

    Args:
        in_nc: 3. nf: 64. nb: blocks per group (10). ng: groups (5). scale: 1, 2, 3, 4.
        reduction: nf / (LR-path and CLS channels) (4); the blocks' channel attention always reduces by 4.
        residual: of the groups (``"double"``: the release, see `DPCAG`).

    Shape:
        lr (B, in_nc, h, w), h, w >= 7; kernel (B, k, k) -> (B, in_nc, s h, s w)
    """

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        ng: int = 5,
        scale: int = 4,
        reduction: int = 4,
        residual: Literal["double", "add"] = "double",
    ) -> None:
        super().__init__()
        self.scale = scale
        nf2 = nf // reduction
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.feature_block = nn.Sequential(*[_ResBlock(nf) for _ in range(3)])
        self.head1 = nn.Conv2d(nf, nf2, 3, 1, 1)
        self.head2 = CLSDeconv(nf, reduction)
        # the blocks' channel attention reduces by 4 whatever ``reduction`` (the release never passes it on)
        self.body = nn.ModuleList([DPCAG(nf, nf2, nb, 4, residual) for _ in range(ng)])
        self.fusion = nn.Conv2d(nf + nf2, nf, 3, 1, 1)
        self.upscale = make_upsampler(nf, in_nc, scale)

    def forward(self, lr: Tensor, kernel: Tensor) -> Tensor:
        check_image("DCLSRestorer lr", lr, self.conv_first.in_channels)
        f = self.conv_first(lr)
        g = self.feature_block(f)
        b = self.head1(g)
        a = self.head2(g, kernel)
        for group in self.body:
            a, b = group(a, b)
        return torch.clamp(self.upscale(self.fusion(torch.cat([b, a], dim=1)) + f), 0.0, 1.0)


@register_arch
class DCLS(nn.Module):
    r"""DCLS's blind SR network: $K = E(y)$ (`DDLKEstimator`), $\hat x = R(y, \bar K)$ (`DCLSRestorer`, the kernel
    detached as released: the estimator learns only from its kernel loss).

    ``forward`` returns a `DANOutput`: ``sr``, ``srs = [sr]``, ``codes = []`` (DCLS uses no code),
    ``kernels = [K]`` (B, k, k).

    Args:
        in_nc, nf, nb, ng, scale, reduction, residual: the restorer's (3, 64, 10, 5, 4, 4, "double").
        kernel_size, filter_structures, latent: the estimator's (21, release chain, 256).

    Shape:
        lr (B, in_nc, h, w), h, w >= 7 -> `DANOutput`
    """

    #: what DANModel's kernel loss compares (the estimated kernel, ``kernels[0]``)
    output_kind: ClassVar[str] = "kernel"
    family_info: ClassVar[dict[str, str]] = {
        "method": "DCLS (CVPR 2022)",
        "estimates": "kernel: one k x k kernel (a linear filter chain's impulse response)",
        "fusion": "CLS deconvolution of features (FFT), then dual-path groups",
        "alternation": "one step: estimate (LR only) -> restore",
    }

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        ng: int = 5,
        scale: int = 4,
        reduction: int = 4,
        kernel_size: int = 21,
        filter_structures: list[int] | None = None,
        latent: int = 256,
        residual: Literal["double", "add"] = "double",
    ) -> None:
        super().__init__()
        self.scale = scale
        self.kernel_size = kernel_size
        self.estimator: DDLKEstimator = DDLKEstimator(in_nc, nf, latent, 3, kernel_size, filter_structures)
        self.restorer: DCLSRestorer = DCLSRestorer(in_nc, nf, nb, ng, scale, reduction, residual)

    def forward(self, lr: Tensor) -> DANOutput:
        kernel = self.estimator(None, lr)
        sr = self.restorer(lr, kernel.detach())
        return DANOutput(sr, [sr], [], [kernel])

    def super_resolve(self, lr: Tensor) -> Tensor:
        """Only the SR image."""
        return self.forward(lr).sr


def dcls_kernel_target(lr_blur: Tensor, lr_clean: Tensor, kernel_size: int, eps: float = 1e-20,
                       keep: int = 40) -> Tensor:
    r"""DCLS's kernel training target (its ``CorrectionLoss``): the LR-space kernel relating the clean LR image to
    the blurred one.

    Per colour channel $c$, $K_c = \mathrm{otf2psf}\big(\hat y^{blur}_c\,\overline{\hat y_c} / (|\hat y_c|^2 +
    \epsilon)\big)$ cut to ``kernel_size``; $K = \mathrm{mean}_c K_c$ masked where the product of the channel
    kernels is positive; then the release's ``zeroize_negligible_val``: $t = 0.75\times$ the
    ``(keep + 1)``-th largest tap, $K \leftarrow \mathrm{clamp}(K - t, 0, 1)$, tap ``(k//2 + 1, k//2 + 1)`` (the
    release's index, one past the centre) $+10^{-20}$,
    renormalised to sum 1.

    Args:
        lr_blur: (B, C, h, w), the unquantised LR of the blurred HR (``imresize(HR * k)``).
        lr_clean: (B, C, h, w), the unquantised LR of the clean HR (``imresize(HR)``).
        kernel_size: k. eps: 1e-20. keep: 40.

    Returns:
        (B, k, k), each summing to 1.
    """
    if lr_blur.shape != lr_clean.shape or lr_blur.dim() != 4:
        raise ValueError(f"dcls_kernel_target: lr_blur and lr_clean must be (B, C, h, w) of one shape, got "
                         f"{list(lr_blur.shape)} and {list(lr_clean.shape)}")
    work = torch.float64 if lr_blur.dtype == torch.float64 else torch.float32
    blur_hat = torch.fft.fft2(lr_blur.to(work))
    clean_hat = torch.fft.fft2(lr_clean.to(work))
    ratio = blur_hat * clean_hat.conj() / (clean_hat.real.square() + clean_hat.imag.square() + eps)
    per_channel = otf2psf(ratio, kernel_size)  # (B, C, k, k)
    mask = (per_channel.prod(dim=1) > 0).to(work)
    kernel = per_channel.mean(dim=1) * mask
    flat = kernel.flatten(1)
    threshold = 0.75 * flat.sort(dim=1, descending=True).values[:, keep]
    kernel = torch.clamp(kernel - threshold[:, None, None], 0.0, 1.0)
    centre = kernel_size // 2 + 1  # the release's index (one past the centre tap)
    kernel[:, centre, centre] += 1e-20
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    return kernel.to(lr_blur.dtype)

