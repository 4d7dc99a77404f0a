"""Y-PSNR change of ``dan-blocks sr --precision bf16 / fp16`` against fp32, on a trained model.

Run: ``python benchmarks/bench_sr_precision.py -m net_g_latest.pth --lr LR_DIR [--hr HR_DIR] [--device cuda]
[--precisions fp32 bf16 fp16] [--tile N]``, or ``--testset DIR`` (a folder ``dan-blocks make-testset`` or the
quickstart wrote: its ``manifest.json`` pairs each LR image with its HR one) instead of ``--lr``/``--hr``.
fp16 on the CPU runs only with ``--cpu-fp16`` (CPU autocast in fp16 works, but ``sr`` never chooses it there).

Every LR image goes through `dan_blocks.upscale_image` (the pipeline of ``dan-blocks sr``, 8-bit output) at
each precision. Printed per precision: the mean Y-PSNR against the HR image of the same name when ``--hr`` is
given (BasicSR's ``calculate_psnr`` on the Y channel, ``crop_border`` = scale, as BasicSR's validation), its
change from fp32, and the mean Y-PSNR of the output against the fp32 output (how far the rounding moves it).
The issue's bar: the change is at most 0.05 dB.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--lr", default=None, help="folder of LR images")
    parser.add_argument("--testset", default=None, help="a test-set folder with manifest.json (LR/HR pairs)")
    parser.add_argument("--cpu-fp16", action="store_true", help="also measure fp16 autocast on the CPU")
    parser.add_argument("--hr", default=None, help="folder of HR images with the same file names (optional)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--tile", type=int, default=None)
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import torch
    __import__("dan_blocks.basicsr")  # first: makes basicsr importable on current torchvision
    from basicsr.metrics.psnr_ssim import calculate_psnr

    import dan_blocks

    model = dan_blocks.optimize(dan_blocks.load_model(args.model).to(args.device).eval())
    if args.testset is not None:
        import json

        with open(os.path.join(args.testset, "manifest.json"), encoding="utf-8") as handle:
            pairs = json.load(handle)["pairs"]
        lr_paths = [os.path.join(args.testset, pair["lr"]) for pair in pairs]
        hr_paths: list[str] | None = [os.path.join(args.testset, pair["gt"]) for pair in pairs]
    elif args.lr is not None:
        names = sorted(n for n in os.listdir(args.lr) if n.lower().endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff")))
        lr_paths = [os.path.join(args.lr, n) for n in names]
        hr_paths = None if args.hr is None else [os.path.join(args.hr, n) for n in names]
    else:
        parser.error("give --lr (and --hr) or --testset")
    outputs: dict[str, list[np.ndarray]] = {}
    for precision in args.precisions:
        if precision == "fp16" and torch.device(args.device).type == "cpu" and not args.cpu_fp16:
            print("fp16 on the CPU: skipped (sr never chooses it there; --cpu-fp16 measures it)", file=sys.stderr)
            continue
        outputs[precision] = [
            dan_blocks.upscale_image(model, path, args.tile, precision=precision) for path in lr_paths
        ]
    reference = outputs.get("fp32")
    scale = int(model.scale)
    print("| precision | Y-PSNR vs HR (dB) | change vs fp32 (dB) | Y-PSNR vs the fp32 output (dB) |")
    print("|---|---|---|---|")
    base = None
    for precision, images in outputs.items():
        vs_hr = float("nan")
        if hr_paths is not None:
            values = []
            for hr_path, image in zip(hr_paths, images, strict=True):
                hr = cv2.imread(hr_path, cv2.IMREAD_COLOR)
                values.append(calculate_psnr(image, hr[: image.shape[0], : image.shape[1]], scale,
                                             test_y_channel=True))
            vs_hr = float(np.mean(values))
        if precision == "fp32":
            base = vs_hr
        change = vs_hr - base if base is not None else float("nan")
        vs_ref = float("nan")
        if reference is not None and precision != "fp32":
            vs_ref = float(np.mean([calculate_psnr(a, b, scale, test_y_channel=True)
                                    for a, b in zip(images, reference, strict=True)]))
        print(f"| {precision} | {vs_hr:.3f} | {change:+.3f} | {vs_ref:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
