"""``dan-blocks sr``: super-resolve image files or folders and save the estimated kernel of each.

Conventions of the field's inference scripts (Real-ESRGAN's ``inference_realesrgan.py``): a default output
folder (``results``), ``--suffix``, ``--ext``, ``--outscale``, ``-g/--gpu-id``, half precision by default on a
GPU (``--precision auto``), ``-t/--tile`` (0: untiled). The pixels come from the pipeline that
`dan_blocks.upscale_image` uses, so both give the same result.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from typing import Any

from .conventions import add_device, add_output, add_quiet, add_threads, command_parser, resolve_device
from .errors import UsageError, check_writable, output_path, run_command

__all__ = ["COMMAND", "EXTENSIONS", "HELP", "build_parser", "kernel_names", "main", "output_names"]

COMMAND = "sr"
HELP = "super-resolve images (PNG/JPEG/TIFF files or folders) with a DAN model, optionally tiled"

#: ``--precision`` choices (`dan_blocks.inference.image.PRECISIONS`, repeated here: no torch import for --help)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: ``--ext`` choices: ``auto`` keeps the input's format (GIF becomes PNG)
EXTENSIONS = ("auto", "png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp")

_EXAMPLES = (
    "dan-blocks sr photos/ -m danv2_x4_setting1.pth          # writes results/NAME_x4.EXT and two kernel files",
    "dan-blocks sr big.png -m net_g_latest.pth -o out -t 256 -g 1   # tiled, on GPU 1 (bf16/fp16 by default)",
    "dan-blocks sr scans/ -m model.pth --outscale 3.5 --ext png --suffix big --no-kernels",
)

_DESCRIPTION = (
    HELP + " (also WebP, BMP and single-frame GIF). Writes OUT/NAME_SUFFIX.EXT and, unless --no-kernels, "
    "OUT/NAME_SUFFIX_kernel_INEXT.png (the final estimated kernel, normalised to its maximum and enlarged) and "
    "OUT/NAME_SUFFIX_kernel_INEXT.npy (the kernel itself; (k*k, h, w) per-pixel kernels for MANet), where INEXT "
    "is the input's extension, so a.png and a.jpg never share kernel files. EXIF orientation is applied; bit "
    "depth, grey and alpha are kept.\n\n"
    "Resumable: an image whose outputs all exist is skipped and named (the image is written last, so its "
    "presence means a complete result); --overwrite recomputes them. An output image without its kernel files "
    "is not replaced without --overwrite. Files in the output folder named like outputs (NAME_x2.png, "
    "NAME_SUFFIX.png, *_kernel*) are not read again unless given explicitly; every skipped file is named. "
    "Exit codes: 0 all written (or already done), 1 some input failed or could not be read, 2 usage error, "
    "130 interrupted."
)


def _true_false(value: str) -> bool:
    choices = {"true": True, "false": False}
    if value.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return choices[value.lower()]


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _tile(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r} (a whole number of LR pixels)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 1 (or 0: untiled), got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, _DESCRIPTION, _EXAMPLES)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    parser.add_argument(
        "-i", "--input", dest="more_inputs", action="append", default=[], metavar="INPUT",
        help="an image file or folder (Real-ESRGAN's spelling; may be repeated, and combined with INPUT)",
    )
    parser.add_argument(
        "-m", "--model", required=True,
        help="model file: a release checkpoint (danv2_x4_setting1.pth), a dan-blocks / BasicSR checkpoint "
        "(net_g_latest.pth records its options) or a BasicSR option file (.yml)",
    )
    add_output(parser, "output folder (default: results)", default="results", metavar="OUT_DIR", old=("--out",))
    parser.add_argument("--opt", "-opt", default=None, help="option file whose network_g describes the checkpoint")
    parser.add_argument("--arch", default=None, help="expected architecture (DANv1 / DANv2): a check")
    parser.add_argument("--scale", type=int, default=None, help="expected scale: a check")
    parser.add_argument(
        "--residual", choices=("add", "double"), default=None,
        help="DAN v2 group residual, needed only for an old dan-blocks checkpoint that records no options "
        "(release files: double)",
    )
    parser.add_argument(
        "--est-input-norm", "--est_input_norm", dest="est_input_norm", type=_true_false, default=None,
        metavar="true|false", help="DAN v2 estimator input normalisation, likewise only for such a checkpoint",
    )
    parser.add_argument(
        "-t", "--tile", type=_tile, default=None, metavar="N",
        help="LR tile side (exact tiling: the same result, less memory); 0: untiled (default)",
    )
    parser.add_argument(
        "--upsampler-tile", "--upsampler_tile", dest="upsampler_tile", type=int, default=None, metavar="N",
        help="with --tile: LR tile side of the upsampler (default: min(N, 128))",
    )
    add_device(parser)
    parser.add_argument(
        "-g", "--gpu-id", "--gpu_id", dest="gpu_id", type=int, default=None, metavar="N",
        help="GPU number: the same as --device cuda:N",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="auto (default): fp32 on the CPU, bf16 on a CUDA GPU that supports it, else fp16 (autocast)",
    )
    add_threads(parser)
    parser.add_argument(
        "--suffix", default=None,
        help="added to output names: NAME_SUFFIX.EXT (default: xS, the final scale, e.g. x4 or x3.5; '' for none)",
    )
    parser.add_argument(
        "--ext", choices=EXTENSIONS, default="auto",
        help="output format; auto (default): the input's (GIF: png)",
    )
    parser.add_argument(
        "-s", "--outscale", type=_positive_float, default=None, metavar="S",
        help="final scale (e.g. 3.5): the model's output resized with Lanczos to int(side * S), as Real-ESRGAN "
        "(default: the model's scale)",
    )
    parser.add_argument(
        "--kernels", action=argparse.BooleanOptionalAction, default=True,
        help="write the two kernel files per image (default: yes; --no-kernels: the image only)",
    )
    parser.add_argument("--no_kernels", dest="kernels", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument(
        "--overwrite", action="store_true",
        help="recompute and replace existing outputs (default: images whose outputs all exist are skipped)",
    )
    add_quiet(parser, "no progress bars (skipped files and errors are still named)")
    return parser


def _scale_text(scale: float) -> str:
    """``4`` for 4.0, ``3.5`` for 3.5 (no trailing zeros)."""
    return f"{scale:g}"


def output_names(paths: list[str], scale: float, suffix: str | None = None) -> list[str]:
    """Output stems ``<name>_<suffix>`` (suffix default ``x<scale>``; empty: ``<name>``); names shared by several
    inputs get the source extension, then an index."""
    suffix = f"x{_scale_text(scale)}" if suffix is None else suffix
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
        result.append(f"{name}_{suffix}" if suffix else name)
    return result


def kernel_names(stem: str, input_path: str) -> tuple[str, str]:
    """The kernel picture and array of an output stem: ``<stem>_kernel_<input ext>.png`` / ``.npy``. The input's
    extension keeps pairs apart (``a.png`` and ``a.jpg`` into one folder, even with ``--ext png``)."""
    ext = os.path.splitext(input_path)[1][1:].lower() or "img"
    return f"{stem}_kernel_{ext}.png", f"{stem}_kernel_{ext}.npy"


def _output_pattern(suffix: str | None) -> re.Pattern[str]:
    """Stems this command writes: ``*_x<scale>`` (any scale), ``*_<suffix>``, and kernel files."""
    parts = [r"_x\d+(?:\.\d+)?", r"_x\d+(?:\.\d+)?_kernel(?:_[a-z0-9]+)?"]
    if suffix:
        parts += [re.escape(f"_{suffix}"), re.escape(f"_{suffix}") + r"_kernel(?:_[a-z0-9]+)?"]
    return re.compile(f".*(?:{'|'.join(parts)})$", re.IGNORECASE)


def _own_output_check(output: str, suffix: str | None) -> Any:
    """``is_output(path)`` for `collect_inputs`: why a file of the output folder is taken for an earlier
    output of this command (not read again), or None."""
    pattern = _output_pattern(suffix)
    folder = os.path.realpath(output)

    def is_output(path: str) -> str | None:
        if os.path.realpath(os.path.dirname(path)) != folder:
            return None
        stem = os.path.splitext(os.path.basename(path))[0]
        if pattern.fullmatch(stem):
            return "in the output folder and named like an output of dan-blocks sr, not read again"
        return None

    return is_output


def _targets(path: str, stem: str, output: str, ext: str) -> list[str]:
    """The output image, the kernel picture and the kernel .npy of one input."""
    if ext == "auto":
        own = os.path.splitext(path)[1].lower()
        ext = "png" if own in (".gif", "") else own[1:]
    picture, array = kernel_names(stem, path)
    return [os.path.join(output, f"{stem}.{ext}"), os.path.join(output, picture), os.path.join(output, array)]


def _already_done(targets: list[str], overwrite: bool, check_order: bool = False) -> bool:
    """True when every output exists (a complete earlier result: skipped unless ``overwrite``).

    The image is written last, so a run stopped midway leaves at most the kernel files, which a rerun replaces,
    and a complete result has an image no older than its kernel files. An existing image without its kernel
    files is not this input's result: it is kept. ``check_order`` (the output format differs from the input's,
    so the image's name does not tell which input it came from: ``a.png`` and ``a.jpg`` with ``--ext png``):
    an image older than the kernel files is another input's, and is kept too. Without kernel files
    (``--no-kernels``) an existing image counts as done.

    Raises:
        FileExistsError: the output image exists but not the kernel files, and not ``overwrite``.
    """
    if overwrite:
        return False
    if all(os.path.isfile(t) for t in targets):
        image_time = os.stat(targets[0]).st_mtime_ns
        if not check_order or all(os.stat(t).st_mtime_ns <= image_time for t in targets[1:]):
            return True
        # kernel files newer than the image: not one run's pair (another input's image of the same name)
        raise FileExistsError(
            f"{targets[0]} is older than {', '.join(os.path.basename(t) for t in targets[1:])}: they are not one "
            "result (another input's image of the same name?); kept; use --overwrite to recompute, or another "
            "--suffix / -o"
        )
    if os.path.exists(targets[0]):
        missing = ", ".join(os.path.basename(t) for t in targets[1:] if not os.path.isfile(t))
        raise FileExistsError(
            f"{targets[0]} exists without {missing} (an earlier result of another input, or not this command's): "
            "kept; use --overwrite to replace it, or another --suffix / -o"
        )
    return False


def _check_no_kernels_owner(image: str, own_kernel: str | None = None) -> None:
    """With ``--no-kernels`` and another format than the input's: an existing output image is taken as done
    unless kernel files of the same stem say it came from another input (``a.png`` run earlier, now ``a.jpg
    --ext png --no-kernels``): then `FileExistsError`."""
    folder, base = os.path.split(image)
    stem = os.path.splitext(base)[0]
    prefix = f"{stem}_kernel_"
    others = sorted(name for name in os.listdir(folder or ".") if name.startswith(prefix) and name.endswith(".npy"))
    if others and (own_kernel is None or own_kernel not in others):
        raise FileExistsError(
            f"{image} exists beside {', '.join(others)}: it is another input's result; kept; use --overwrite to "
            "replace it, or another --suffix / -o"
        )


def _device(args: argparse.Namespace) -> Any:
    if args.gpu_id is not None:
        if args.gpu_id < 0:
            raise UsageError(f"-g/--gpu-id must be a GPU number >= 0, got {args.gpu_id}")
        if args.device not in ("auto", "cuda", f"cuda:{args.gpu_id}"):
            raise UsageError(f"-g/--gpu-id {args.gpu_id} contradicts --device {args.device}; give one of them")
        return resolve_device(f"cuda:{args.gpu_id}")
    return resolve_device(args.device)


def _process(model: Any, path: str, targets: list[str], args: argparse.Namespace, bar: Any) -> None:
    from dan_blocks.data.sr_io import check_output_size, kernel_picture, output_size, read_input, save_npy, write_array
    from dan_blocks.inference.image import super_resolve_image

    image = read_input(path)
    model_scale = float(getattr(model, "scale", 1))
    scale = args.outscale if args.outscale is not None else model_scale
    resized = 0 if scale == model_scale else 3 + (image.alpha is not None)  # planes an --outscale resizes
    check_output_size(targets[0], *output_size(image.rgb.shape[-2], image.rgb.shape[-1], scale), planes=resized)
    out_ext = os.path.splitext(targets[0])[1].lower()
    kind = out_ext[1:].upper()
    lost = []
    if image.alpha is not None and out_ext in (".jpg", ".jpeg", ".bmp"):
        lost.append(f"its alpha plane is dropped ({kind} holds none)")
    if image.max_value > 255 and out_ext in (".jpg", ".jpeg", ".webp", ".bmp"):
        lost.append(f"it is written in 8 bits ({kind} holds no 16-bit samples)")
    if lost:  # asked for with --ext, but named: nothing is dropped without a word
        _say(args, f"note: {path}: {'; '.join(lost)}")
    progress = None
    if bar is not None:
        loop = int(getattr(model, "loop", 1))
        state = {"done": 0}

        def progress(done: int, total: int) -> None:
            if bar.total != total * loop:
                bar.reset(total=total * loop)
                state["done"] = 0
            state["done"] += 1
            bar.update(1)

    result = super_resolve_image(
        model, image, out_format=os.path.splitext(targets[0])[1], tile_size=args.tile,
        upsampler_tile=args.upsampler_tile, optimize=False, precision=args.precision, outscale=args.outscale,
        progress=progress,
    )
    if args.kernels and result.kernel is not None and result.kernel_map is not None:
        save_npy(targets[2], result.kernel_map.numpy())
        write_array(targets[1], kernel_picture(result.kernel))
    write_array(targets[0], result.array)  # last: its presence marks a complete result (see _already_done)


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _say(args: argparse.Namespace, message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"dan-blocks {COMMAND}: {message}", file=sys.stderr)


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    inputs = [*args.inputs, *args.more_inputs]
    if not inputs:
        raise UsageError("no input: give image files or folders (dan-blocks sr IN... or -i IN)")
    if args.tile == 0:
        args.tile = None
    if args.upsampler_tile is not None and args.upsampler_tile < 1:
        raise UsageError(f"--upsampler-tile must be >= 1, got {args.upsampler_tile}")
    if args.upsampler_tile is not None and args.tile is None:
        raise UsageError("--upsampler-tile is used only with --tile N (tiled inference); give --tile too")
    if args.suffix is not None and (os.sep in args.suffix or "/" in args.suffix):
        raise UsageError(f"--suffix {args.suffix!r}: a suffix cannot hold a path separator")
    output = output_path(args.output, "-o/--output", folder=True)
    device = _device(args)
    from dan_blocks.utils.threads import apply_threads

    apply_threads(args.threads)
    check_writable(output, "-o/--output")  # before the model is loaded or any image computed

    from dan_blocks import optimize
    from dan_blocks.data.sr_io import collect_inputs
    from dan_blocks.inference.loading import load_model
    from dan_blocks.utils.files import remove_stale_temp_files

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
    final_scale = args.outscale if args.outscale is not None else float(getattr(model, "scale"))  # noqa: B009
    # an image or kernel file whose write a kill interrupted: its hidden temporary file would stay forever (and,
    # in an output folder that is also an input, be reported as a skipped hidden file on every rerun)
    for stale in remove_stale_temp_files(output, include_own=True):
        print(f"dan-blocks {COMMAND}: removed {os.path.basename(stale)}, left by an interrupted run", file=sys.stderr)
    notes: list[str] = []
    paths, problems = collect_inputs(inputs, is_output=_own_output_check(output, args.suffix), notes=notes)
    for problem in problems:
        print(f"dan-blocks {COMMAND}: skipped {problem}", file=sys.stderr)
    for note in notes:  # named, but not failures: earlier outputs, files that are not images
        print(f"dan-blocks {COMMAND}: not read: {note}", file=sys.stderr)
    stems = output_names(paths, final_scale, args.suffix)
    inputs_real = {os.path.realpath(p) for p in paths}
    failed = len(problems)
    done = present = 0
    from tqdm import tqdm

    quiet = bool(args.quiet)
    bar = tqdm(list(zip(paths, stems, strict=True)), desc="sr", unit="image", disable=quiet)
    tiles = None if quiet or args.tile is None else tqdm(desc="tiles", unit="tile", leave=False, position=1)
    try:
        for path, stem in bar:
            bar.set_postfix_str(os.path.basename(path))
            full = targets = _targets(path, stem, output, args.ext)
            if not args.kernels:
                targets = targets[:1]
            try:
                if os.path.realpath(targets[0]) in inputs_real:
                    raise FileExistsError(
                        f"its output {targets[0]} would replace an input; give another --suffix or -o/--output"
                    )
                forced = os.path.splitext(targets[0])[1].lower() != os.path.splitext(path)[1].lower()
                if forced and not args.kernels and not args.overwrite and os.path.isfile(targets[0]):
                    _check_no_kernels_owner(targets[0], os.path.basename(full[2]))
                if _already_done(targets, args.overwrite, check_order=forced):
                    present += 1
                    _say(args, f"{path}: outputs exist, skipped (--overwrite recomputes them)")
                    continue
                _process(model, path, targets, args, tiles)
                done += 1
            except Exception as err:
                failed += 1
                _say(args, f"skipped {path}: {type(err).__name__}: {err}")
    finally:
        if tiles is not None:
            tiles.close()
    kept = f", {present} already done" if present else ""
    print(f"dan-blocks {COMMAND}: {done} image(s) written to {output}{kept}, {failed} failed",
          file=sys.stderr)
    return 1 if failed else 0
