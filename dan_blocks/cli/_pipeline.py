"""Shared runner of BasicSR's pipelines for ``dan-blocks train`` / ``dan-blocks test``."""

from __future__ import annotations

import os
import sys
from typing import Any

from .errors import TRACEBACK_ENV, UsageError, report_error, run_command

__all__ = ["TRACEBACK_ENV", "option_num_gpu", "pop_imports", "report_error", "run_basicsr_pipeline"]

_USAGE = """usage: dan-blocks {kind} -opt OPTIONS.yml [--launcher none|pytorch|slurm] [--auto_resume] [--debug]
                   [--force_yml KEY:SUBKEY=VALUE ...] [--import MODULE ...]

--import MODULE imports a module of yours first (repeatable; the current directory is searched), so that the
architectures, estimators or datasets it registers can be named in the option file.

Runs BasicSR's own {function}(root) with dan_blocks' classes registered, so the option file follows
BasicSR's schema (docs/training.md). The shipped option files are inside the installed package:
`dan-blocks options` lists them, `dan-blocks options NAME -o my.yml` writes one out. root is the current
directory: outputs go to ./{folder}/<name>.
Multi-process: torchrun --nproc_per_node N -m dan_blocks {kind} -opt X --launcher pytorch (gloo on CPU, nccl on
GPUs). Set {env}=1 for full tracebacks."""


def _option_path(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "-opt" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("-opt="):
            return arg.split("=", 1)[1]
    return None


def read_option_file(argv: list[str]) -> dict[str, Any] | None:
    """The option file named by ``-opt`` as a dict (None without ``-opt``); errors name the file."""
    from dan_blocks.utils.options import read_yaml_file

    path = _option_path(argv)
    if path is None:
        return None
    return read_yaml_file(path, "option file (-opt)")


def apply_force_yml(opt: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """A copy of ``opt`` with ``--force_yml KEY:SUBKEY=VALUE ...`` applied as BasicSR applies them (a misspelled
    key there adds a key, which the check then names)."""
    import copy

    import yaml

    out = copy.deepcopy(opt)
    entries: list[str] = []
    taking = False
    for arg in argv:
        if arg == "--force_yml":
            taking = True
        elif arg.startswith("-"):
            taking = False
        elif taking:
            entries.append(arg)
    for entry in entries:
        if "=" not in entry:
            raise UsageError(f"--force_yml {entry!r}: expected KEY:SUBKEY=VALUE")
        keys, value = (part.strip() for part in entry.split("=", 1))
        if not keys or "" in keys.split(":"):
            raise UsageError(f"--force_yml {entry!r}: expected KEY:SUBKEY=VALUE, with no empty key")
        node = out
        *parents, last = keys.split(":")
        for key in parents:
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        try:
            node[last] = yaml.safe_load(value) if value else value
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UsageError(f"--force_yml {entry!r}: the value is not valid YAML ({problem})") from None
    return out


def _refuse_torchrun_without_launcher(argv: list[str]) -> None:
    world = os.environ.get("WORLD_SIZE")
    launcher = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--launcher"), None)
    launcher = next((a.split("=", 1)[1] for a in argv if a.startswith("--launcher=")), launcher)
    if world is not None and world.strip() not in ("", "1") and launcher in (None, "none"):
        raise UsageError(
            f"started by torchrun (WORLD_SIZE={world}) without --launcher pytorch: every process would run the "
            "same training into one folder. Add --launcher pytorch"
        )


def option_num_gpu(argv: list[str]) -> Any:
    """``num_gpu`` of the option file named by ``-opt`` (after ``--force_yml num_gpu=...``), or None."""
    opt = read_option_file(argv)
    if opt is None:
        return None
    num_gpu = opt.get("num_gpu")
    for arg in argv:
        if arg.replace(" ", "").startswith("num_gpu="):
            num_gpu = arg.split("=", 1)[1].strip()
    return num_gpu


def pop_imports(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``--import MODULE`` / ``--import=MODULE`` (dan-blocks' own option) off BasicSR's arguments."""
    modules: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--import":
            module = next(args, None)
            if module is None or module.startswith("-"):
                raise UsageError("--import needs a module name, e.g. --import my_project.my_estimator")
            modules.append(module)
        elif arg.startswith("--import="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, modules


def _import_user_modules(modules: list[str]) -> None:
    import importlib

    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"--import {module}: cannot import it ({err})") from err


def run_basicsr_pipeline(kind: str, argv: list[str], root: str | None = None) -> int:
    """Run ``basicsr.train.train_pipeline`` (kind "train") or ``basicsr.test.test_pipeline`` (kind "test").

    ``sys.argv`` is set to ``[dan-blocks KIND, *argv]`` for BasicSR's argument parser and restored after.
    """
    function = "train_pipeline" if kind == "train" else "test_pipeline"
    if not argv or argv[0] in ("-h", "--help"):
        folder = "experiments" if kind == "train" else "results"
        print(_USAGE.format(kind=kind, function=function, folder=folder, env=TRACEBACK_ENV))
        return 0 if argv else 2
    return run_command(kind, lambda: _run_pipeline(kind, argv, root))


def _run_pipeline(kind: str, argv: list[str], root: str | None) -> int:
    argv, user_modules = pop_imports(argv)
    from dan_blocks.basicsr import compat
    from dan_blocks.basicsr.options import check_option_file

    compat.patch_basicsr_pipelines()
    _import_user_modules(user_modules)

    _refuse_torchrun_without_launcher(argv)
    opt = read_option_file(argv)
    if opt is not None:  # every block, before BasicSR makes a directory of every unknown path key
        check_option_file(apply_force_yml(opt, argv), train=kind == "train")
    if str(option_num_gpu(argv)) == "0":
        os.environ[compat.DEVICE_ENV] = "cpu"
    if kind == "train":
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    saved = sys.argv
    sys.argv = [f"dan-blocks {kind}", *argv]
    try:
        pipeline(os.path.abspath(root or os.getcwd()))
    finally:
        sys.argv = saved
    return 0
