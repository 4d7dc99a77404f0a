"""``dan-blocks sr``: super-resolve image files or folders and save the estimated kernel of each."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import Counter
from typing import Any

from .errors import UsageError, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main", "output_names"]

COMMAND = "sr"
HELP = "super-resolve images (PNG/JPEG/TIFF files or folders) with a DAN model, optionally tiled"

_PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _true_false(value: str) -> bool:
    choices = {"true": True, "false": False}
    if value.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return choices[value.lower()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"dan-blocks {COMMAND}",
        description=HELP + ". Writes <name>_x<s>.<ext>, <name>_x<s>_kernel.png (the final estimated kernel, "
        "normalised to its maximum and enlarged) and <name>_x<s>_kernel.npy (the kernel itself) per image; for "
        "spatially variant estimators (MANet) the picture shows the image-average kernel and the .npy holds the "
        "per-pixel kernels (k*k, h, w). Resumable: an image whose three outputs all exist is skipped (the image "
        "is written last, so its presence means a complete result; a run stopped midway is simply run again); "
        "--overwrite recomputes them. An existing output image without its kernel files is not replaced without "
        "--overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (PNG, JPEG, TIFF)")
    parser.add_argument(
        "-m", "--model", required=True,
        help="model file: a release checkpoint (danv2_x4_setting1.pth), a dan-blocks / BasicSR checkpoint "
        "(net_g_latest.pth records its options) or a BasicSR option file (.yml)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--opt", default=None, help="option file whose network_g describes the checkpoint")
    parser.add_argument("--arch", default=None, help="expected architecture (DANv1 / DANv2): a check")
    parser.add_argument("--scale", type=int, default=None, help="expected scale: a check")
    parser.add_argument(
        "--residual", choices=("add", "double"), default=None,
        help="DAN v2 group residual, needed only for an old dan-blocks checkpoint that records no options "
        "(release files: double)",
    )
    parser.add_argument(
        "--est-input-norm", type=_true_false, default=None,
        metavar="true|false", help="DAN v2 estimator input normalisation, likewise only for such a checkpoint",
    )
    parser.add_argument("--tile", type=int, default=None, metavar="N", help="LR tile side (exact tiling)")
    parser.add_argument(
        "--upsampler-tile", type=int, default=None, metavar="N",
        help="with --tile: LR tile side of the upsampler (default: min(N, 128))",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.add_argument("--precision", choices=tuple(_PRECISIONS), default="fp32", help="default: fp32")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="recompute and replace existing outputs (default: images whose outputs all exist are skipped)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def output_names(paths: list[str], scale: int) -> list[str]:
    """Output stems ``<name>_x<s>``; names shared by several inputs get the source extension, then an index."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    counts = Counter(stems)
    named = [
        f"{stem}_{os.path.splitext(p)[1][1:].lower()}" if counts[stem] > 1 else stem
        for stem, p in zip(stems, paths, strict=True)
    ]
    again = Counter(named)
    seen: Counter[str] = Counter()
    result = []
    for name in named:
        if again[name] > 1:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        result.append(f"{name}_x{scale}")
    return result


def _is_own_output(path: str, output: str, scale: int) -> bool:
    """A file this command writes (``<name>_x<s>.<ext>``, ``<name>_x<s>_kernel.png``) in its output folder."""
    if os.path.abspath(os.path.dirname(path)) != os.path.abspath(output):
        return False
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.endswith((f"_x{scale}", f"_x{scale}_kernel"))


def _device(choice: str) -> Any:
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(choice)


def _final_kernel(out: Any) -> tuple[Any, Any]:
    """(kernel for the picture (k, k), array for the .npy): the final kernel; for per-pixel kernels (MANet) the
    image-average kernel and the whole map (k*k, h, w)."""
    from dan_blocks.metrics import mean_kernel

    kernel = out.kernels[-1]  # estimated, or reconstructed from a v1 code
    return mean_kernel(kernel[:1])[0], kernel[0]


def _targets(path: str, stem: str, output: str) -> list[str]:
    """The output image, the kernel picture and the kernel .npy of one input."""
    ext = os.path.splitext(path)[1].lower()
    return [os.path.join(output, name) for name in (f"{stem}{ext}", f"{stem}_kernel.png", f"{stem}_kernel.npy")]


def _already_done(targets: list[str], overwrite: bool) -> bool:
    """True when every output exists (a complete earlier result: skipped unless ``overwrite``).

    The image is written last, so a run stopped midway leaves at most the kernel files, which a rerun replaces.
    An existing image without its kernel files is not this command's partial output: it is kept.

    Raises:
        FileExistsError: the output image exists but not the kernel files, and not ``overwrite``.
    """
    if overwrite:
        return False
    if all(os.path.isfile(t) for t in targets):
        return True
    if os.path.exists(targets[0]):
        raise FileExistsError(f"{targets[0]} exists without its kernel files (use --overwrite to replace it)")
    return False


def _process(model: Any, path: str, targets: list[str], args: argparse.Namespace, device: Any) -> None:
    import torch

    from dan_blocks.data.sr_io import kernel_picture, read_input, save_npy, sr_to_array, write_array
    from dan_blocks.inference import upscale

    image = read_input(path)
    dtype = getattr(torch, _PRECISIONS[args.precision])
    autocast = (
        torch.autocast(device_type=device.type, dtype=dtype) if args.precision != "fp32" else contextlib.nullcontext()
    )
    # on a GPU, tiled runs keep the SR images of every iteration in host memory
    output_device = "cpu" if args.tile is not None and device.type != "cpu" else None
    with autocast:
        out = upscale(
            model, image.rgb.to(device), args.tile, upsampler_tile=args.upsampler_tile, output_device=output_device
        )
    result = sr_to_array(out.sr, image, model.scale, targets[0])
    picture, kernel = _final_kernel(out)
    save_npy(targets[2], kernel.detach().float().cpu().numpy())
    write_array(targets[1], kernel_picture(picture))
    write_array(targets[0], result)  # last: its presence marks a complete result (see _already_done)


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for flag, value in (("--tile", args.tile), ("--upsampler-tile", args.upsampler_tile)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if args.upsampler_tile is not None and args.tile is None:
        raise UsageError("--upsampler-tile is used only with --tile N (tiled inference); give --tile too")
    output = output_path(args.output, "-o/--output", folder=True)
    from dan_blocks import optimize
    from dan_blocks.data.sr_io import collect_inputs
    from dan_blocks.inference.loading import load_model

    device = _device(args.device)
    given = (("residual", args.residual), ("est_input_norm", args.est_input_norm))
    overrides = {key: value for key, value in given if value is not None}
    model = load_model(args.model, opt=args.opt, arch=args.arch, scale=args.scale, **overrides)
    if not callable(getattr(model, "super_resolve", None)):
        raise UsageError(
            f"{args.model} holds a {type(model).__name__}, not a super-resolution model (MANet's stage-1 file is its "
            "kernel estimator alone: use stage3_MANet+RRDB_x4.pth, or load it in Python with dan_blocks.load_model)"
        )
    model = optimize(model.to(device).eval())
    os.makedirs(output, exist_ok=True)
    from dan_blocks.utils.files import remove_stale_temp_files

    # an image or kernel file whose write a kill interrupted: its hidden temporary file would stay forever (and,
    # in an output folder that is also an input, be reported as a skipped hidden file on every rerun)
    for stale in remove_stale_temp_files(output, include_own=True):
        print(f"dan-blocks {COMMAND}: removed {os.path.basename(stale)}, left by an interrupted run", file=sys.stderr)
    paths, problems = collect_inputs(args.inputs)
    ours = [p for p in paths if _is_own_output(p, output, model.scale)]
    paths = [p for p in paths if p not in ours]  # an output folder that is also an input folder: not our outputs
    for problem in problems:
        print(f"dan-blocks {COMMAND}: skipped {problem}", file=sys.stderr)
    stems = output_names(paths, model.scale)
    failed = len(problems)
    done = present = 0
    from tqdm import tqdm

    bar = tqdm(list(zip(paths, stems, strict=True)), desc="sr", unit="image", disable=args.no_progress)
    for path, stem in bar:
        bar.set_postfix_str(os.path.basename(path))
        targets = _targets(path, stem, output)
        try:
            if _already_done(targets, args.overwrite):
                present += 1
                tqdm.write(f"dan-blocks {COMMAND}: {path}: outputs exist, skipped (--overwrite recomputes them)",
                           file=sys.stderr)
                continue
            _process(model, path, targets, args, device)
            done += 1
        except Exception as err:
            failed += 1
            tqdm.write(f"dan-blocks {COMMAND}: skipped {path}: {type(err).__name__}: {err}", file=sys.stderr)
    kept = f", {present} already done" if present else ""
    print(f"dan-blocks {COMMAND}: {done} image(s) written to {output}{kept}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
