"""``dan-blocks fit-pca``: fit a release-style PCA kernel encoder and save it (PCAEncoder.save format)."""

from __future__ import annotations

import argparse
import os

from .errors import UsageError, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main"]

COMMAND = "fit-pca"
HELP = "fit the PCA kernel encoder of a setting (the release's method, seeded) and save it"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"dan-blocks {COMMAND}", description=HELP)
    parser.add_argument("--kernel-size", type=int, default=21, help="odd kernel size k (default 21)")
    parser.add_argument("--code-length", type=int, default=10, help="number of PCA components C (default 10)")
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
    parser.add_argument(
        "-o", "--output", required=True,
        help="output .pt file; a folder (existing, or a path ending in /) gets setting<S>_k<k>_c<C>.pt in it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    output = output_path(
        args.output, "-o/--output", default_name=f"setting{args.setting}_k{args.kernel_size}_c{args.code_length}.pt"
    )
    if os.path.lexists(output) and not args.overwrite:
        raise FileExistsError(f"{output} exists (use --overwrite to replace it)")
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
