"""IKC (Gu et al., CVPR 2019, "Blind Super-Resolution With Iterative Kernel Correction"): a non-blind SFTMD
restorer conditioned on a PCA code, a Predictor (LR -> code) and a Corrector ((SR, code) -> code), assembled as an
estimate-first alternation (`DAN` with ``start="estimate"``, ``initial_estimator`` = the Predictor, ``estimator``
= the Corrector, which declares ``takes_code``).

Sizes and layouts as in the de-facto public release (yuanjunchai/IKC); its three files load alone through
`dan_blocks.load_model` (`dan_blocks.formats.ikc_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import SFTLayer
from ..layers.run_whole import run_whole
from .builders import PCALike
from .checks import check_image
from .dan_arch import DAN
from .protocols import DANOutput
from .registry import register_arch

__all__ = ["IKC", "SFTMD", "IKCCorrector", "IKCPredictor", "SFTResidualBlock", "best_step_by_psnr"]


class SFTResidualBlock(nn.Module):
    r"""SFTMD's residual block: $a = \mathrm{ReLU}(\mathrm{SFT}_1(f, c))$,
    $b = \mathrm{ReLU}(\mathrm{SFT}_2(W_1 * a, c))$, $f' = f + W_2 * b$, with SFT = the ``sft_concat`` fusion
    (`SFTLayer`, hidden width 32) and $W_{1,2}$ 3x3 convolutions."""

    def __init__(self, nf: int = 64, code_length: int = 10) -> None:
        super().__init__()
        self.sft1 = SFTLayer(nf, code_length, 32, 0.2)
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.sft2 = SFTLayer(nf, code_length, 32, 0.2)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def receptive_radius(self) -> int:
        """Tiling protocol: two SFT layers (2 each) and two 3x3 convs."""
        return 6

    def forward(self, feat: Tensor, code: Tensor) -> Tensor:
        a = F.relu(self.sft1(feat, code)[0])
        b = F.relu(self.sft2(self.conv1(a), code)[0])
        return feat + self.conv2(b)


def _ikc_upsampler(nf: int, scale: int) -> nn.Sequential:
    """x4: [conv nf -> 4nf, PS(2), LeakyReLU(0.2)] twice (keys 0, 3); other scales: [conv nf -> nf s², PS(s),
    LeakyReLU(0.2)] (the activation after the shuffle, as released)."""
    if scale == 4:
        return nn.Sequential(nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2),
                             nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2))
    if scale < 1:
        raise ValueError(f"SFTMD scale must be >= 1, got {scale}")
    return nn.Sequential(nn.Conv2d(nf, nf * scale * scale, 3, 1, 1), nn.PixelShuffle(scale), nn.LeakyReLU(0.2))


@register_arch
class SFTMD(nn.Module):
    r"""IKC's non-blind restorer $R(y, c)$: the code $c$ (B, C) spread over the LR grid conditions every SFT layer.

    $f_0 = W_3 * \delta(W_2 * \delta(W_1 * y))$; $f = B_{nb}(\cdots B_1(f_0, c)\cdots, c)$ (`SFTResidualBlock`);
    $\hat x = \mathrm{clamp}_{[0,1]}\big(W_o * U(W_m * \mathrm{SFT}(f + f_0, c))\big)$, $\delta$ LeakyReLU(0.2),
    $U$ the upsampler (activation after each pixel shuffle), $W_o$ a 9x9 conv; no ReLU after the last SFT layer.

    ``sft_branch=True`` also builds the release's ``sft_branch``: ``nb`` residual blocks at the release's default
    sizes (nf 64, code 10), never called, whose keys the released file holds (strict loading needs them). Train
    new models with ``sft_branch=False``.

    Args:
        in_nc, out_nc: image channels (3). nf: width (64; the release only works at 64). nb: blocks (16).
        scale: SR factor (4). code_length: C (10). sft_branch: see above (True).

    Shape:
        lr (B, in_nc, h, w), code (B, C) -> (B, out_nc, s h, s w) in [0, 1]
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        nb: int = 16,
        scale: int = 4,
        code_length: int = 10,
        sft_branch: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.code_length = code_length
        self.num_blocks = nb
        self.conv1 = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf, nf, 3, 1, 1)
        if sft_branch:
            self.sft_branch = nn.Sequential(*[SFTResidualBlock(64, 10) for _ in range(nb)])
        self.body = nn.ModuleList([SFTResidualBlock(nf, code_length) for _ in range(nb)])
        self.sft = SFTLayer(nf, code_length, 32, 0.2)
        self.conv_mid = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upscale = _ikc_upsampler(nf, scale)
        self.conv_output = nn.Conv2d(nf, out_nc, 9, 1, 4)

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        check_image("SFTMD lr", lr, self.conv1.in_channels)
        if code.dim() != 2 or code.shape != (lr.shape[0], self.code_length):
            raise ValueError(f"SFTMD expects a code (B={lr.shape[0]}, {self.code_length}), got {list(code.shape)}")
        # the code spread over the LR grid (a view, as released): a map a tiled run crops with the features
        code_map = code[:, :, None, None].expand(-1, -1, lr.shape[-2], lr.shape[-1])
        f0 = self.conv3(F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(lr), 0.2)), 0.2))
        f = f0
        for block in self.body:
            f = block(f, code_map)
        g = self.sft(f + f0, code_map)[0]
        return torch.clamp(self.conv_output(self.upscale(self.conv_mid(g))), 0.0, 1.0)


def _conv_stack(in_nc: int, nf: int, out_nc: int, strides: Sequence[int]) -> nn.Sequential:
    """5x5 convs (pad 2), each followed by LeakyReLU(0.2): ``in_nc -> nf -> ... -> out_nc``."""
    layers: list[nn.Module] = []
    cin = in_nc
    for i, stride in enumerate(strides):
        cout = out_nc if i == len(strides) - 1 else nf
        layers += [nn.Conv2d(cin, cout, 5, stride, 2), nn.LeakyReLU(0.2)]
        cin = cout
    return nn.Sequential(*layers)


@register_arch
class IKCPredictor(nn.Module):
    r"""IKC's Predictor $P(y)$: six 5x5 convs (``ConvNet.{0,2,..,10}``, the fourth with stride 2), each followed by
    LeakyReLU(0.2) (also the last: negative code entries are shrunk), then global average pooling -> (B, C).

    Estimator protocol: ``forward(sr, lr)`` ignores ``sr`` (an LR-only estimate, DAN's ``start="estimate"``).

    Shape:
        lr (B, in_nc, h, w) -> code (B, C)
    """

    output_kind: Literal["kernel", "code"] = "code"
    use_sr = False

    def __init__(self, in_nc: int = 3, nf: int = 64, code_length: int = 10) -> None:
        super().__init__()
        self.code_length = code_length
        self.in_nc = in_nc
        self.ConvNet = _conv_stack(in_nc, nf, code_length, (1, 1, 1, 2, 1, 1))

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        check_image("IKCPredictor lr", lr, self.in_nc)
        return run_whole(self.ConvNet, lr).mean(dim=(2, 3))


@register_arch
class IKCCorrector(nn.Module):
    r"""IKC's Corrector $C(\hat x, c)$: features $h$ = seven 5x5 convs + LeakyReLU(0.2) of the SR image
    (``ConvNet``, strides 1, 2, 1, 2, 1, 1, 1: at 1/4 of the SR size); $g$ = ``code_dense`` (Linear C -> nf,
    LeakyReLU, Linear nf -> nf, LeakyReLU) of the code, spread over $h$'s grid; $\Delta = \mathrm{GAP}(
    \mathrm{global\_dense}([h, g]))$ (1x1 convs 2nf -> 2nf -> nf -> C, LeakyReLU between); returns $c + \Delta$
    (``residual=False``, the release's default) or $\Delta$.

    Estimator protocol: ``takes_code = True``: `DAN` calls it as ``forward(sr, lr, code)`` with the code that
    conditioned ``sr`` (``lr`` is not used).

    Shape:
        sr (B, in_nc, H, W), code (B, C) -> code (B, C)
    """

    output_kind: Literal["kernel", "code"] = "code"
    use_sr = True
    takes_code = True

    def __init__(self, in_nc: int = 3, nf: int = 64, code_length: int = 10, residual: bool = False) -> None:
        super().__init__()
        self.nf = nf
        self.code_length = code_length
        self.residual = residual
        self.in_nc = in_nc
        self.ConvNet = _conv_stack(in_nc, nf, nf, (1, 2, 1, 2, 1, 1, 1))
        self.code_dense = nn.Sequential(nn.Linear(code_length, nf), nn.LeakyReLU(0.2), nn.Linear(nf, nf),
                                        nn.LeakyReLU(0.2))
        self.global_dense = nn.Sequential(nn.Conv2d(2 * nf, 2 * nf, 1), nn.LeakyReLU(0.2), nn.Conv2d(2 * nf, nf, 1),
                                          nn.LeakyReLU(0.2), nn.Conv2d(nf, code_length, 1))

    def forward(self, sr: Tensor, lr: Tensor | None, code: Tensor) -> Tensor:
        check_image("IKCCorrector sr", sr, self.in_nc)
        if code.dim() != 2 or code.shape != (sr.shape[0], self.code_length):
            raise ValueError(f"IKCCorrector expects a code (B={sr.shape[0]}, {self.code_length}), "
                             f"got {list(code.shape)}")
        h = run_whole(self.ConvNet, sr)
        g = self.code_dense(code)[:, :, None, None].expand(-1, -1, h.shape[-2], h.shape[-1])
        x = torch.cat((h, g), dim=1)  # at 1/4 of the SR size: whole maps (run_whole)
        delta = run_whole(self.global_dense, x).mean(dim=(2, 3))
        return delta if self.residual else code + delta


@register_arch
class IKC(DAN):
    r"""IKC's blind loop: $c_0 = P(y)$; for $t = 1..T$: $\hat x_t = R(y, c_{t-1})$, $c_t = C(\hat x_t, c_{t-1})$
    ($T$ = ``loop``, 7 as released; weights shared over steps; no early stop). ``forward`` returns every step:
    ``srs[t-1]`` = $\hat x_t$ and ``codes[t-1]`` = $c_{t-1}$, the code that conditioned it (DAN's contract; the
    release's last correction $c_T$ conditions no SR and is not computed).

    ``kernels`` are the codes' kernels reconstructed through ``pca`` (IKC's ``pca_matrix.pth``, a (441, 10)
    tensor, when given; the default is a zero placeholder, so the kernels are only meaningful with the real
    matrix). The release picks, per image, the step of highest PSNR against the ground truth: that oracle is
    `best_step_by_psnr`, an evaluation helper, never part of the model.

    Args:
        in_nc, nf, nb, scale, code_length: SFTMD sizes (3, 64, 16, 4, 10); the Predictor and Corrector use
            ``in_nc``, 64 and ``code_length``.
        kernel_size: of the PCA (21).
        sft_branch: build SFTMD's unused release branch (True, so released weights load strictly).
        pca: a PCA spec (`resolve_pca`); default: a placeholder.
        loop: T (7).

    Shape:
        lr (B, in_nc, h, w) -> `DANOutput`
    """

    family_info: ClassVar[dict[str, str]] = {
        "method": "IKC (CVPR 2019)",
        "estimates": "code: a 10-d PCA code of one kernel",
        "fusion": "sft_concat",
        "alternation": "estimate first: predictor, then restore -> correct (7 steps)",
    }

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 64,
        nb: int = 16,
        scale: int = 4,
        code_length: int = 10,
        kernel_size: int = 21,
        sft_branch: bool = True,
        pca: PCALike | None = None,
        loop: int = 7,
        detach: bool = True,
    ) -> None:
        spec: Any = pca if pca is not None else {
            "kernel_size": kernel_size, "code_length": code_length, "placeholder": True,
        }
        super().__init__(
            restorer=SFTMD(in_nc, in_nc, nf, nb, scale, code_length, sft_branch),
            estimator=IKCCorrector(in_nc, 64, code_length),
            pca=spec,
            loop=loop,
            detach=detach,
            start="estimate",
            initial_estimator=IKCPredictor(in_nc, 64, code_length),
        )


def best_step_by_psnr(output: DANOutput, hr: Tensor, crop_border: int = 0) -> tuple[Tensor, list[int]]:
    """EVALUATION ORACLE, NOT BLIND SR: per image, the step whose SR has the highest PSNR against the ground truth
    ``hr`` (IKC's test script reports this maximum over its 7 steps). Use it only to reproduce that protocol; a
    blind result is ``output.sr`` (the last step).

    PSNR here is on the [0, 1] RGB tensors after cropping ``crop_border`` pixels (the release computes it on Y
    after quantisation; pass such tensors to match it).

    Returns:
        (the selected SR images (B, C, H, W), the chosen step index per image, 0-based)
    """
    srs = torch.stack(list(output.srs))  # (T, B, C, H, W)
    if hr.shape != srs.shape[1:]:
        raise ValueError(f"best_step_by_psnr: hr must have the SR images' shape {list(srs.shape[1:])}, "
                         f"got {list(hr.shape)}")
    if crop_border:
        srs = srs[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    mse = ((srs - hr[None]) ** 2).flatten(2).mean(-1)  # (T, B)
    psnr = -10 * torch.log10(mse.clamp_min(1e-12))
    steps = psnr.argmax(dim=0)
    chosen = torch.stack([output.srs[int(t)][b] for b, t in enumerate(steps)])
    return chosen, [int(t) for t in steps]
