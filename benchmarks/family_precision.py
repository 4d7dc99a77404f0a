"""fp16 and bf16 against fp32 for IKC, DCLS and DASR at their release sizes (docs/hosts.md, "Precision").

Run: ``python benchmarks/family_precision.py [--size 64] [--device cpu] [--models IKC DCLS DASR]``.

Each model is built at its release sizes with seeded PyTorch-default weights (no trained weights of these are
available here), put in eval mode, cast whole to each dtype (what a host does with ``supports_half`` /
``supports_bfloat16``: ``descriptor.half()`` and a half input), and super-resolves a seeded smooth LR image of
``--size`` px. Printed per model and dtype: whether the call ran, whether the output is finite, and the max abs
difference and PSNR of the output (clamped to [0, 1], as spandrel returns it) against fp32. Slow on a 2-core
CPU (fp16 convolutions there: IKC alone did not finish within 15 minutes at 64 px); meant for ``--device cuda``.
Not collected by pytest (no ``test_`` names).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="LR side in pixels (default 64)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["IKC", "DCLS", "DASR"])
    args = parser.parse_args(argv)

    import torch

    import dan_blocks
    from dan_blocks.archs import DASR, DCLS, IKC

    builders = {"IKC": IKC, "DCLS": DCLS, "DASR": DASR}
    gen = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 3, args.size // 8 + 1, args.size // 8 + 1, generator=gen)
    lr = torch.nn.functional.interpolate(noise, size=(args.size, args.size), mode="bicubic", align_corners=False)
    lr = (lr + 0.1 * (torch.rand(lr.shape, generator=gen) - 0.5)).clamp(0, 1).to(args.device)
    print(f"torch {torch.__version__}, dan-blocks {dan_blocks.__version__}, {args.device}, LR {args.size} px, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| model | dtype | ran | finite | max abs difference vs fp32 | PSNR vs fp32 |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        model = builders[name]().to(args.device).eval()
        with torch.no_grad():
            ref = model.super_resolve(lr).float().clamp(0, 1)
            for dtype in (torch.float16, torch.bfloat16):
                label = str(dtype).replace("torch.", "")
                try:
                    out = model.to(dtype).super_resolve(lr.to(dtype)).float()
                except (RuntimeError, NotImplementedError, TypeError) as err:
                    print(f"| {name} | {label} | no: {type(err).__name__}: {str(err).splitlines()[0][:90]} | | | |")
                    continue
                finally:
                    model.float()
                finite = bool(torch.isfinite(out).all())
                out = out.clamp(0, 1)
                diff = float((out - ref).abs().max())
                mse = float(((out.double() - ref.double()) ** 2).mean())
                psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
                print(f"| {name} | {label} | yes | {finite} | {diff:.2g} | {psnr:.1f} dB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
