"""``dan-blocks smoke``: a small DAN v2 upsamples a built-in photo; writes PNGs, prints shapes and timing."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from ..settings import SETTING1
from .conventions import add_device, add_output, add_threads, command_parser, resolve_device
from .errors import run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main", "run_smoke"]

COMMAND = "smoke"
HELP = "end-to-end smoke run on CPU: a small DAN v2 upsamples skimage's astronaut, writes PNGs and timings"
DEFAULT_OUT = os.path.join("dan_blocks_out", "smoke")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". Random weights unless --weights is given: it checks the install, "
                            "not the picture quality.", [
        "dan-blocks smoke",
        "dan-blocks smoke --full --size 128 -o smoke_full --threads 2",
        "dan-blocks smoke --weights danv2_x4_setting1.pth --device cuda",
    ])
    add_output(parser, f"output folder (default: {DEFAULT_OUT})", default=DEFAULT_OUT, metavar="DIR", old=("--out",))
    parser.add_argument("--size", type=int, default=64, help="LR side length in pixels (default 64)")
    parser.add_argument("--scale", type=int, default=4, choices=(1, 2, 3, 4), help="SR factor (default 4)")
    parser.add_argument("--loop", type=int, default=4, help="DAN iterations (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--full", action="store_true", help="release-size DAN v2 instead of a small one")
    parser.add_argument(
        "--weights", default=None, help="a release or dan-blocks checkpoint to use instead of random weights"
    )
    add_device(parser, default="cpu")
    add_threads(parser)
    return parser


def _write_png(path: str, image: Any) -> None:
    """(H, W, 3) RGB float in [0, 1] or (H, W) -> 8-bit PNG, atomically."""
    import cv2
    import numpy as np

    from dan_blocks.utils import atomic_path

    array = np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    if array.ndim == 3:
        array = array[:, :, ::-1]  # RGB -> BGR for OpenCV
    with atomic_path(path, keep_extension=True) as tmp:
        if not cv2.imwrite(tmp, array):
            raise OSError(f"cannot write {path}")


def run_smoke(
    out: str,
    size: int = 64,
    scale: int = 4,
    loop: int = 4,
    seed: int = 0,
    full: bool = False,
    weights: str | None = None,
    device: Any = "cpu",
) -> dict[str, Any]:
    """Do the smoke run on ``device`` (a ``torch.device`` or its name); returns shapes, timings and the written
    file paths."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    from dan_blocks.archs import available_default_pcas, dan_v2, default_pca
    from dan_blocks.formats import load_official_checkpoint

    torch.manual_seed(seed)
    if weights is not None:
        model = load_official_checkpoint(weights, loop=loop)
        scale = model.scale
    else:
        pca = default_pca(21, 10, 1) if "setting1_k21_c10.pt" in available_default_pcas() else _fallback_pca()
        sizes: dict[str, Any] = {} if full else {"nf": 32, "nb": 2, "ng": 2, "est_nb": 2}
        model = dan_v2(scale, pca=pca, loop=loop, **sizes)
    device = torch.device(device)
    model.eval().to(device)
    hr = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1)[None].float() / 255.0
    lr = F.interpolate(hr, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    start = time.perf_counter()
    with torch.no_grad():
        result = model(lr.to(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    result = type(result)(*(_to_cpu(field) for field in result))
    model.cpu()
    os.makedirs(out, exist_ok=True)
    files = {name: os.path.join(out, f"{name}.png") for name in ("lr", "sr", "kernel")}
    _write_png(files["lr"], lr[0].permute(1, 2, 0).numpy())
    _write_png(files["sr"], result.sr[0].clamp(0, 1).permute(1, 2, 0).numpy())
    kernel = result.kernels[-1]
    if kernel is None:  # a code estimator (v1): show the decoded code
        kernel = model.pca.decode(result.codes[-1])
    kernel = kernel[0].float()
    kernel = (kernel - kernel.min()) / (kernel.max() - kernel.min()).clamp_min(1e-12)
    _write_png(
        files["kernel"], F.interpolate(kernel[None, None], scale_factor=8, mode="nearest")[0, 0].numpy()
    )
    params = sum(p.numel() for p in model.parameters())
    return {
        "lr": tuple(lr.shape),
        "sr": tuple(result.sr.shape),
        "code": tuple(result.codes[-1].shape),
        "kernel": tuple(result.kernels[-1].shape) if result.kernels[-1] is not None else None,
        "seconds": seconds,
        "params": params,
        "files": files,
        "model": type(model).__name__,
    }


def _to_cpu(value: Any) -> Any:
    """A DANOutput field (a tensor, or a list of tensors/None) on the CPU."""
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    return value.cpu() if hasattr(value, "cpu") else value


def _fallback_pca() -> Any:
    """PCA of isotropic Gaussians (sigma 0.2..4) when the shipped matrix is missing."""
    import torch

    from dan_blocks.layers import PCAEncoder

    axis = torch.arange(21, dtype=torch.float64) - 10
    sigma = torch.linspace(*SETTING1.sigma, 200, dtype=torch.float64)[:, None, None]
    kernels = torch.exp(-(axis[None, :, None] ** 2 + axis[None, None, :] ** 2) / (2 * sigma**2))
    return PCAEncoder.fit((kernels / kernels.sum(dim=(1, 2), keepdim=True)).float(), 10)


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from dan_blocks.utils.threads import apply_threads

    device = resolve_device(args.device)
    threads = apply_threads(args.threads)
    info = run_smoke(args.output, args.size, args.scale, args.loop, args.seed, args.full, args.weights, device)
    print(f"{info['model']} ({info['params']:,} parameters, loop {args.loop})")
    print(f"lr {info['lr']} -> sr {info['sr']}; code {info['code']}; kernel {info['kernel']}")
    where = f"CPU, {threads} thread(s)" if device.type == "cpu" else str(device)
    print(f"forward: {info['seconds'] * 1000:.1f} ms on {where}")
    for name, path in info["files"].items():
        print(f"wrote {name}: {path}")
    return 0
