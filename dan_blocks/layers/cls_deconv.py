r"""DCLS's constrained least-squares deconvolution of feature maps (Luo et al., CVPR 2022), with ``torch.fft``.

For one kernel $K$ and a zero-mean regularising filter $P_i$ per channel, the closed-form minimiser under circular
boundary conditions of $\|K * x - y\|^2 + \|P_i * x\|^2$ is

$$
x = \mathcal{F}^{-1}\!\left[\frac{\overline{\hat K}\,\hat y}{|\hat K|^2 + |\hat P_i|^2}\right]
$$

with $\hat\cdot$ the 2-D DFT of the filter zero-padded to the image size and circularly shifted so that its centre
tap sits at the origin (`psf2otf`). DCLS pads the features by replication by ``k`` on every side first and crops
the result back, so the circular boundary falls in the padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .run_whole import run_whole

__all__ = ["CLSDeconv", "cls_solve", "otf2psf", "psf2otf"]


def psf2otf(psf: Tensor, size: tuple[int, int]) -> Tensor:
    """The DFT of ``psf`` (..., kh, kw) zero-padded to ``size`` (H, W) and rolled so that its centre tap
    ``(kh // 2, kw // 2)`` lands on (0, 0); complex (..., H, W).

    Raises:
        ValueError: the filter is larger than ``size``.
    """
    kh, kw = psf.shape[-2:]
    height, width = size
    if kh > height or kw > width:
        raise ValueError(f"psf2otf: a {kh}x{kw} filter does not fit a {height}x{width} image")
    padded = F.pad(psf, (0, width - kw, 0, height - kh))
    rolled = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.fft2(rolled)


def otf2psf(otf: Tensor, ksize: int) -> Tensor:
    """The inverse of `psf2otf`: the real ``ksize`` x ``ksize`` filter around the origin of ``ifft2(otf)``."""
    psf = torch.fft.ifft2(otf).real
    half = ksize // 2
    rolled = torch.roll(psf, shifts=(half, half), dims=(-2, -1))
    return rolled[..., :ksize, :ksize]


def cls_solve(y: Tensor, kernel: Tensor, reg: Tensor) -> Tensor:
    r"""$\mathcal{F}^{-1}[\overline{\hat K}\hat y / (|\hat K|^2 + |\hat P|^2)]$, real part, at ``y``'s size (no
    padding here).

    Args:
        y: (B, C, H, W) maps.
        kernel: (B, k, k) or (B, 1, k, k): one convolution kernel per sample, shared by the channels.
        reg: (B, C, p, p): one regularising filter per sample and channel.
    """
    if kernel.dim() == 3:
        kernel = kernel[:, None]
    size = (int(y.shape[-2]), int(y.shape[-1]))
    work = torch.float64 if y.dtype == torch.float64 else torch.float32
    k_hat = psf2otf(kernel.to(work), size)
    p_hat = psf2otf(reg.to(work), size)
    y_hat = torch.fft.fft2(y.to(work))
    denominator = k_hat.real.square() + k_hat.imag.square() + p_hat.real.square() + p_hat.imag.square()
    x = torch.fft.ifft2(k_hat.conj() * y_hat / denominator).real
    return x.to(y.dtype)


class CLSDeconv(nn.Module):
    r"""DCLS's feature deconvolution (the restorer's ``head2``): $c$ = ``reduce_feature`` (1x1, nf -> nf/r);
    $P = e^{g(c)} - \mathrm{mean}_{3\times3}$ with $g$ = ``grad_filter`` (three unpadded 3x3 convs with
    LeakyReLU(0.1), adaptive average pooling to 3x3, a 1x1 conv): one zero-mean 3x3 filter per sample and
    channel; each channel replicate-padded by ``k``, solved by `cls_solve` with the kernel and its $P_i$, cropped
    by ``k``; ``expand_feature`` (1x1, nf/r -> nf).

    Global (an FFT over the whole map): it declares no receptive radius, so a tiled run computes it on whole
    maps (exact). Needs maps of at least 7x7 (the unpadded convolutions).

    Shape:
        x (B, nf, H, W), kernel (B, k, k) or (B, 1, k, k) -> (B, nf, H, W)
    """

    def __init__(self, nf: int = 64, reduction: int = 4) -> None:
        super().__init__()
        mid = nf // reduction
        if mid < 1:
            raise ValueError(f"CLSDeconv needs nf // reduction >= 1, got nf={nf}, reduction={reduction}")
        self.reduce_feature = nn.Conv2d(nf, mid, 1)
        self.grad_filter = nn.Sequential(
            nn.Conv2d(mid, mid, 3), nn.LeakyReLU(0.1), nn.Conv2d(mid, mid, 3), nn.LeakyReLU(0.1),
            nn.Conv2d(mid, mid, 3), nn.AdaptiveAvgPool2d((3, 3)), nn.Conv2d(mid, mid, 1),
        )
        self.expand_feature = nn.Conv2d(mid, nf, 1)

    def regulariser(self, c: Tensor) -> Tensor:
        """$P$ (B, nf/r, 3, 3), zero mean per sample and channel."""
        if c.shape[-1] < 7 or c.shape[-2] < 7:
            raise ValueError(f"CLSDeconv needs feature maps of at least 7x7, got {list(c.shape[-2:])}")
        p = torch.exp(run_whole(self.grad_filter, c))  # unpadded convs and a pooling: whole maps
        return p - p.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        c = self.reduce_feature(x)
        reg = self.regulariser(c)
        k = int(kernel.shape[-1])
        padded = F.pad(c, (k, k, k, k), mode="replicate")
        clear = cls_solve(padded, kernel, reg)[..., k:-k, k:-k]
        return self.expand_feature(clear)  # type: ignore[no-any-return, unused-ignore]
