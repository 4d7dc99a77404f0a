"""The quickstart's picture: LR | bicubic | DAN | HR crops of one test image and the estimated | true kernel."""

from __future__ import annotations

import json
import os
from typing import Any

from ..utils import atomic_path

__all__ = ["quickstart_figure"]


def _label(panel: Any, text: str, height: int = 22) -> Any:
    import cv2
    import numpy as np

    strip = np.full((height, panel.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(strip, text, (3, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def quickstart_figure(testset: str, pictures: str, path: str, suffix: str) -> dict[str, Any]:
    """Write ``path`` (PNG): LR (enlarged, nearest) | bicubic | DAN | HR crops of one test image, then the
    estimated | true kernel picture BasicSR's test wrote; returns what it shows (image, sigma, crop, Y-PSNRs).

    The image is the first source of the make-testset ``testset`` at its middle blur width; the crop (as tall
    as the kernel picture) is the window with the most detail (largest mean gradient magnitude) of the HR image.
    ``pictures`` is the test's visualization folder (``<lr stem>_<suffix>.png`` and ``..._kernel.png``).
    """
    import cv2
    import numpy as np
    import torch
    from basicsr.metrics.psnr_ssim import calculate_psnr
    from basicsr.utils import tensor2img

    from dan_blocks.degradations import imresize

    with open(os.path.join(testset, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    scale = int(manifest["scale"])
    pairs = manifest["pairs"]
    same = sorted((p for p in pairs if p["source"] == pairs[0]["source"]), key=lambda p: p["sigma"])
    pair = same[len(same) // 2]
    stem = os.path.splitext(os.path.basename(pair["lr"]))[0]
    lr = cv2.imread(os.path.join(testset, pair["lr"]), cv2.IMREAD_COLOR)
    hr = cv2.imread(os.path.join(testset, pair["gt"]), cv2.IMREAD_COLOR)
    sr = cv2.imread(os.path.join(pictures, f"{stem}_{suffix}.png"), cv2.IMREAD_COLOR)
    kernel = cv2.imread(os.path.join(pictures, f"{stem}_{suffix}_kernel.png"), cv2.IMREAD_COLOR)
    if lr is None or hr is None or sr is None or kernel is None:
        raise FileNotFoundError(f"quickstart figure: the test set or the test's pictures of {stem} are missing")
    rgb = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1])).permute(2, 0, 1)[None].float() / 255.0
    bicubic = tensor2img([imresize(rgb, float(scale))])
    h, w = sr.shape[:2]
    hr, bicubic = hr[:h, :w], bicubic[:h, :w]
    psnr = {name: float(calculate_psnr(img, hr, scale, test_y_channel=True))
            for name, img in (("bicubic", bicubic), ("dan", sr))}
    side = min(kernel.shape[0] // scale * scale, h // scale * scale, w // scale * scale)
    grey = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    step = 4 * scale
    best, top, left = -1.0, 0, 0
    for y in range(0, h - side + 1, step):
        for x in range(0, w - side + 1, step):
            value = float(detail[y:y + side, x:x + side].mean())
            if value > best:
                best, top, left = value, y, x
    crop = (slice(top, top + side), slice(left, left + side))
    lr_crop = lr[top // scale:(top + side) // scale, left // scale:(left + side) // scale]
    panels = [
        _label(cv2.resize(lr_crop, (side, side), interpolation=cv2.INTER_NEAREST), f"LR x{scale} (nearest)"),
        _label(bicubic[crop], f"bicubic {psnr['bicubic']:.2f} dB"),
        _label(sr[crop], f"DANv2 {psnr['dan']:.2f} dB"),
        _label(hr[crop], "HR"),
    ]
    if kernel.shape[0] > side:
        kernel = kernel[:side]
    pad = np.full((side - kernel.shape[0], kernel.shape[1], 3), 255, dtype=np.uint8)
    panels.append(_label(np.concatenate([kernel, pad], axis=0), "kernel: estimated | true"))
    gap = np.full((panels[0].shape[0], 6, 3), 255, dtype=np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    figure = np.concatenate(row, axis=1)
    footer = _label(np.zeros((0, figure.shape[1], 3), dtype=np.uint8),
                    f"{stem} (Gaussian8 x{scale}, sigma {pair['sigma']:.2f}); Y-PSNR of the whole image", 20)
    figure = np.concatenate([figure, footer], axis=0)
    ok, encoded = cv2.imencode(".png", figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"{path}: cannot encode the figure")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, keep_extension=True) as tmp, open(tmp, "wb") as handle:
        handle.write(encoded.tobytes())
    return {"path": path, "image": stem, "sigma": pair["sigma"], "crop": [top, left, side],
            "psnr_y": psnr, "lr": os.path.join(testset, pair["lr"])}
