"""``dan-blocks convert``: a release checkpoint (greatlog/DAN, JingyunLiang/MANet) -> a self-describing BasicSR
checkpoint ``{"params": ...}``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .conventions import add_output, command_parser
from .errors import UsageError, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "main", "network_options", "write_checkpoint"]

COMMAND = "convert"
HELP = "convert a released DAN or MANet checkpoint to a BasicSR checkpoint and print the network_g options"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". A file holding NaN or infinite weights is refused (exit 1).", [
        "dan-blocks convert danv2_x4_setting1.pth -o experiments/pretrained_models/",
        "dan-blocks convert stage3_MANet+RRDB_x4.pth manet_x4_basicsr.pth   # OUTPUT as a second argument",
    ])
    parser.add_argument(
        "official", metavar="MODEL", help="release checkpoint, e.g. danv2_x4_setting1.pth or stage3_MANet+RRDB_x4.pth "
        "(any file dan_blocks.load_model reads)"
    )
    parser.add_argument(
        "output_positional", nargs="?", default=None, metavar="OUTPUT", help="the same as -o/--output"
    )
    add_output(
        parser, "output .pth holding {'params': state_dict}; a folder (existing, or a path ending in /) gets "
        "<release name>_basicsr.pth in it", metavar="OUTPUT",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the input)")
    parser.add_argument(
        "--loop", type=int, default=None,
        help="iterations to record in the options (default: 4 for DAN release files, the file's own otherwise)",
    )
    return parser


def network_options(model: Any) -> dict[str, Any]:
    """The ``network_g`` dict that rebuilds ``model`` (a DANv1/DANv2) through BasicSR's ``build_network``: its
    recorded options (`dan_blocks.archs.arch_options`, every constructor argument); for a model that records none
    (built from an unregistered subclass), the sizes read off its layers (defaults assumed for the rest)."""
    from dan_blocks.archs import arch_options

    recorded = arch_options(model)
    if recorded is not None:
        return recorded
    return _sized_options(model)


def _sized_options(model: Any) -> dict[str, Any]:
    from dan_blocks.archs import DANv2, available_default_pcas

    restorer, estimator = model.restorer, model.estimator
    size, length = model.kernel_size, model.code_length
    setting = 1 if (size, length) == (21, 10) else 2
    opts: dict[str, Any] = {
        "type": type(model).__name__,
        "scale": model.scale,
        "kernel_size": size,
        "code_length": length,
        "setting": setting,
        "loop": model.loop,
        "in_nc": restorer.in_nc,
        "nf": restorer.fusion.out_channels,
        "nb": len(restorer.body) if not isinstance(model, DANv2) else len(restorer.body[0].body),
    }
    if isinstance(model, DANv2):
        opts["ng"] = len(restorer.body)
        opts["est_nf"] = estimator.head_LR[0].out_channels
        opts["est_nb"] = len(estimator.body.body)
        opts["est_tail_nf"] = estimator.tail[0].out_channels
    else:
        opts["est_nf"] = estimator.head_LR.out_channels
        opts["est_nb"] = len(estimator.body)
    if f"setting{setting}_k{size}_c{length}.pt" not in available_default_pcas():
        # the checkpoint carries the matrix: the options only need buffers of the right size
        opts["pca"] = {"kernel_size": size, "code_length": length, "placeholder": True}
    return opts


def _yaml(opts: dict[str, Any], output: str) -> str:
    """The option-file text of ``network_g`` and ``path`` (YAML that reads back to exactly these values)."""
    import yaml

    text = yaml.safe_dump({"network_g": opts}, sort_keys=False, default_flow_style=False, width=1000)
    paths = {"pretrain_network_g": output, "strict_load_g": True, "param_key_g": "params"}
    return text + "\n" + yaml.safe_dump({"path": paths}, sort_keys=False)


def write_checkpoint(
    state: dict[str, Any], output: str, network_g: dict[str, Any] | None = None, model: Any = None
) -> None:
    """``{"params": state}`` plus, with ``network_g``, the options that rebuild the network (a self-describing
    file, see `dan_blocks.archs.save_model`), written atomically; an existing folder as ``output`` is an error."""
    from dan_blocks.formats.model_files import model_file_payload
    from dan_blocks.utils import atomic_save

    if os.path.isdir(output):
        raise IsADirectoryError(f"output {output!r} is a folder; give the .pth file to write, e.g. {output}/model.pth")
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    payload: dict[str, Any] = (
        {"params": state} if network_g is None else model_file_payload({"params": state}, network_g, model)
    )
    atomic_save(payload, output)


def _check_not_the_input(official: str, output: str) -> None:
    """A `UsageError` when ``output`` is ``official`` itself (a link to it, or another spelling of its path)."""
    same = os.path.realpath(official) == os.path.realpath(output)
    if not same and os.path.exists(official) and os.path.exists(output):
        try:
            same = os.path.samefile(official, output)
        except OSError:
            same = False
    if same:
        raise UsageError(f"OUTPUT {output} is the input file {official}; write the converted checkpoint elsewhere")


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.official:
        raise UsageError("MODEL: the path is empty")
    if args.output is not None and args.output_positional is not None and args.output != args.output_positional:
        raise UsageError(f"two outputs given ({args.output_positional} and -o {args.output}); give one")
    given = args.output if args.output is not None else args.output_positional
    if given is None:
        raise UsageError("give the file to write: dan-blocks convert MODEL -o OUTPUT")
    stem = os.path.splitext(os.path.basename(os.path.normpath(args.official)))[0]
    output = output_path(given, "OUTPUT", default_name=f"{stem}_basicsr.pth")
    _check_not_the_input(args.official, output)
    if args.loop is not None and args.loop < 1:
        raise UsageError(f"--loop must be >= 1, got {args.loop}")
    if os.path.lexists(output) and not args.overwrite:
        raise FileExistsError(f"{output} exists (use --overwrite to replace it)")
    from dan_blocks.archs import DANv1, DANv2, arch_options
    from dan_blocks.inference import load_model

    model = load_model(args.official, **({} if args.loop is None else {"loop": args.loop}))
    options = network_options(model) if isinstance(model, (DANv1, DANv2)) else arch_options(model)
    if options is None:
        raise ValueError(f"{args.official}: {type(model).__name__} records no options to write")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # a model holding NaN or infinity was refused by load_model (named there): nothing is written
    write_checkpoint(state, output, options, model)
    params = sum(p.numel() for p in model.parameters())
    sizes = [f"x{model.scale}"] if getattr(model, "scale", None) else []
    if getattr(model, "kernel_size", None):
        sizes.append(f"{model.kernel_size}x{model.kernel_size} kernels")
    if getattr(model, "code_length", None):
        sizes.append(f"{model.code_length}-d codes")
    print(f"converted {args.official} -> {output}: {type(model).__name__} {', '.join(sizes)}, {params:,} parameters")
    print("BasicSR options:\n")
    print(_yaml(options, output))
    return 0
