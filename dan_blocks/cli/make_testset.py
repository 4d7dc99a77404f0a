"""``dan-blocks make-testset``: Gaussian8 / DIV2KRK-style anisotropic test sets from HR images."""

from __future__ import annotations

import argparse

from ..settings import SETTING2
from .conventions import add_output, add_quiet, add_threads, command_parser
from .errors import UsageError, check_writable, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main"]

COMMAND = "make-testset"
HELP = "make a Gaussian8 or DIV2KRK-style anisotropic blind-SR test set from HR images"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". The folder it writes is what BlindSRPairedDataset reads.", [
        "dan-blocks make-testset my_hr_photos/ -o testsets/gaussian8_x4",
        "dan-blocks make-testset builtin:skimage-test -o testsets/aniso_x2 --protocol aniso --scale 2 --seed 1",
    ])
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images, or builtin:skimage-test")
    parser.add_argument("out_positional", nargs="?", default=None, metavar="OUT_DIR", help="the same as -o/--output")
    add_output(parser, "output folder (gt/, lr_xS/, gt_k_xS/, manifest.json)", metavar="OUT_DIR")
    parser.add_argument(
        "--protocol",
        choices=("gaussian8", "aniso"),
        default="gaussian8",
        help="gaussian8: 8 isotropic sigmas per image (k=21); aniso: one random anisotropic "
        "kernel per image (k=11/21/31 for x2/x3/x4)",
    )
    parser.add_argument(
        "--scale", type=int, default=4, help="downscaling factor (default 4; 2, 3 or 4 for gaussian8, >= 1 for aniso)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the aniso kernels (default 0)")
    parser.add_argument(
        "--kernel-size", type=int, default=None, help="override the protocol's kernel size (a positive odd integer)"
    )
    parser.add_argument(
        "--sigma",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help=f"aniso only: sigma range, 0 < LOW <= HIGH (default {SETTING2.sigma[0]} {SETTING2.sigma[1]})",
    )
    parser.add_argument("--no-disturb", action="store_true", help="aniso only: no multiplicative kernel noise")
    parser.add_argument(
        "--max-size", type=int, default=None, help="centre-crop HR images to at most this size (>= 1) per side first"
    )
    add_quiet(parser)
    add_threads(parser)
    return parser


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


#: make_testset argument -> the option that sets it (how usage errors name it)
_OPTION_NAMES = {"protocol": "--protocol", "scale": "--scale", "kernel_size": "--kernel-size", "sigma": "--sigma",
                 "max_size": "--max-size"}


def _check_args(args: argparse.Namespace) -> tuple[float, float]:
    """Usage errors for the option values, before anything is made; returns the sigma range to use."""
    from dan_blocks.data.testsets import check_testset_options

    if args.protocol != "aniso":
        for given, option in ((args.sigma is not None, "--sigma"), (args.no_disturb, "--no-disturb")):
            if given:
                raise UsageError(f"{option} only applies to --protocol aniso (the protocol is {args.protocol})")
    sigma = tuple(args.sigma) if args.sigma is not None else tuple(SETTING2.sigma)
    try:
        check_testset_options(args.protocol, args.scale, args.kernel_size, sigma, args.max_size, _OPTION_NAMES)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err).removeprefix("make_testset: ")) from err
    return sigma  # type: ignore[return-value]


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.output is not None and args.out_positional is not None and args.output != args.out_positional:
        raise UsageError(f"two output folders given ({args.out_positional} and -o {args.output}); give one")
    out_dir = args.output if args.output is not None else args.out_positional
    if out_dir is None:
        raise UsageError("give the output folder: dan-blocks make-testset HR_DIR -o OUT_DIR")
    sigma = _check_args(args)
    output_path(out_dir, "OUT_DIR", folder=True)
    check_writable(out_dir, "OUT_DIR")  # before any image is degraded
    from dan_blocks.data.testsets import make_testset
    from dan_blocks.utils.threads import apply_threads

    apply_threads(args.threads)

    manifest = make_testset(
        args.hr_dir,
        out_dir,
        protocol=args.protocol,
        scale=args.scale,
        seed=args.seed,
        kernel_size=args.kernel_size,
        sigma=sigma,
        random_disturb=not args.no_disturb,
        progress=not args.quiet,
        max_size=args.max_size,
    )
    print(f"wrote {len(manifest['pairs'])} LR/HR pairs ({args.protocol}, x{args.scale}) to {out_dir}")
    return 0
