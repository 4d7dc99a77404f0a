"""``dan-blocks fit-pca``: fit a release-style PCA kernel encoder and save it (PCAEncoder.save format)."""

from __future__ import annotations

import argparse
import math
import os

from .conventions import add_output, command_parser
from .errors import UsageError, check_writable, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main"]

COMMAND = "fit-pca"
HELP = "fit the PCA kernel encoder of a setting (the release's method, seeded) and save it"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". Pass the file to a model as pca='FILE' (network_g's pca: FILE).", [
        "dan-blocks fit-pca --kernel-size 15 --code-length 10 --setting 2 -o my_pca/",
        "python -c \"import dan_blocks; m = dan_blocks.dan_v2(4, kernel_size=15, pca='my_pca/setting2_k15_c10.pt')\"",
    ])
    parser.add_argument(
        "--kernel-size", type=int, default=21, metavar="K", help="odd kernel size k (default 21)"
    )
    parser.add_argument(
        "--code-length", type=int, default=10, metavar="C",
        help="number of PCA components C, 1 <= C <= min(k*k, samples) (default 10)",
    )
    parser.add_argument(
        "--setting",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: isotropic sigma~U(0.2,4.0); 2: anisotropic sigma~U(0.6,5) + random_disturb",
    )
    parser.add_argument(
        "--samples", type=int, default=30000, help="kernels drawn (default 30000, as the release)"
    )
    parser.add_argument("--seed", type=int, default=0, help="torch.Generator seed (default 0)")
    parser.add_argument(
        "--sigma",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="override the setting's sigma range",
    )
    add_output(
        parser, "output .pt file; a folder (existing, or a path ending in /) gets setting<S>_k<k>_c<C>.pt in it",
        required=True,
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _check_args(args: argparse.Namespace) -> None:
    """Usage errors naming the option, before any work."""
    k, c = args.kernel_size, args.code_length
    if k < 1 or k % 2 == 0:
        raise UsageError(f"--kernel-size must be a positive odd integer (e.g. 11, 21, 31), got {k}")
    if args.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {args.samples}")
    if not 1 <= c <= min(k * k, args.samples):
        raise UsageError(
            f"--code-length must be in [1, min(k*k = {k * k}, --samples = {args.samples})], got {c}"
        )
    if args.sigma is not None:
        low, high = args.sigma
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise UsageError(f"--sigma LOW HIGH must satisfy 0 < LOW <= HIGH, got {low:g} {high:g}")


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    output = output_path(
        args.output, "-o/--output", default_name=f"setting{args.setting}_k{args.kernel_size}_c{args.code_length}.pt"
    )
    if os.path.lexists(output) and not args.overwrite:
        raise FileExistsError(f"{output} exists (use --overwrite to replace it)")
    check_writable(os.path.dirname(os.path.abspath(output)), "-o/--output")  # before the fit, not after
    from dan_blocks.degradations.pca_fit import fit_default_pca

    try:
        encoder = fit_default_pca(args.kernel_size, args.code_length, args.setting, args.samples, args.seed, args.sigma)
    except ValueError as err:  # every input is a command-line argument here
        raise UsageError(str(err)) from None
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    encoder.save(output)
    print(
        f"saved PCA {args.kernel_size * args.kernel_size}x{args.code_length} (setting {args.setting}, "
        f"{args.samples} samples, seed {args.seed}) to {output}"
    )
    return 0
