"""``dan-blocks make-testset``: Gaussian8 / DIV2KRK-style anisotropic test sets from HR images."""

from __future__ import annotations

import argparse

from ..settings import SETTING2
from .errors import output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main"]

COMMAND = "make-testset"
HELP = "make a Gaussian8 or DIV2KRK-style anisotropic blind-SR test set from HR images"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"dan-blocks {COMMAND}", description=HELP)
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images, or builtin:skimage-test")
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="output folder (gt/, lr_xS/, gt_k_xS/, manifest.json)"
    )
    parser.add_argument(
        "--protocol",
        choices=("gaussian8", "aniso"),
        default="gaussian8",
        help="gaussian8: 8 isotropic sigmas per image (k=21); aniso: one random anisotropic "
        "kernel per image (k=11/21/31 for x2/x3/x4)",
    )
    parser.add_argument("--scale", type=int, default=4, help="downscaling factor (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the aniso kernels (default 0)")
    parser.add_argument("--kernel-size", type=int, default=None, help="override the protocol's kernel size")
    parser.add_argument(
        "--sigma",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=SETTING2.sigma,
        help="aniso sigma range (default 0.6 5.0)",
    )
    parser.add_argument("--no-disturb", action="store_true", help="aniso: no multiplicative kernel noise")
    parser.add_argument(
        "--max-size", type=int, default=None, help="centre-crop HR images to at most this size per side first"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output_path(args.out_dir, "OUT_DIR", folder=True)
    from dan_blocks.data.testsets import make_testset

    manifest = make_testset(
        args.hr_dir,
        args.out_dir,
        protocol=args.protocol,
        scale=args.scale,
        seed=args.seed,
        kernel_size=args.kernel_size,
        sigma=tuple(args.sigma),
        random_disturb=not args.no_disturb,
        progress=not args.quiet,
        max_size=args.max_size,
    )
    print(f"wrote {len(manifest['pairs'])} LR/HR pairs ({args.protocol}, x{args.scale}) to {args.out_dir}")
    return 0
