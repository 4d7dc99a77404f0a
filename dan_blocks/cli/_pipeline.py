"""Shared runner of BasicSR's pipelines for ``dan-blocks train`` / ``dan-blocks test``.

What it adds around ``basicsr.train.train_pipeline`` / ``basicsr.test.test_pipeline``:

- one command line with the CLI's spellings (``--opt``, ``--threads``, ``--quiet``, ``--verbose``; BasicSR's
  ``-opt``, ``--auto_resume``, ``--force_yml`` and ``--local_rank`` kept as aliases);
- the option file read once (YAML merge keys ``<<:`` included), ``--force_yml`` applied as BasicSR intends
  (``KEY:SUBKEY=VALUE``, split on the first ``=``), every block checked before any work, and BasicSR given the
  resolved options (a copy named like the original, so the experiment folder records what ran);
- the CPU thread count (``--threads``; default `dan_blocks.utils.threads.default_threads`: OMP_NUM_THREADS when
  set, else this process's share of the CPUs);
- a lock on the run's folder (``experiments/<name>`` or ``results/<name>``) for the run's lifetime;
- a quiet console by default (`dan_blocks.basicsr.console.training_console`); the full log goes to the log file.

Only the standard library is imported at module level, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from .conventions import add_threads
from .errors import TRACEBACK_ENV, UsageError, report_error, run_command

__all__ = [
    "TRACEBACK_ENV",
    "ExperimentLockedError",
    "apply_force_yml",
    "experiment_lock",
    "option_num_gpu",
    "pop_imports",
    "report_error",
    "run_basicsr_pipeline",
]

_DESCRIPTION = """Runs BasicSR's own {function}(root) with dan_blocks' classes registered, so the option file follows
BasicSR's schema (docs/training.md). The shipped option files are inside the installed package:
`dan-blocks options` lists them, `dan-blocks options NAME -o my.yml` writes one out. root is the current
directory: outputs go to ./{folder}/<name>; a second run with the same name while this one runs is refused.
The console shows a handful of lines (--verbose: BasicSR's full console); the full log is in the run's folder.
Multi-process: torchrun --nproc_per_node N -m dan_blocks {kind} --opt X --launcher pytorch (gloo on CPU, nccl on
GPUs; torchrun sets OMP_NUM_THREADS=1 per process when N > 1). Set {env}=1 for full tracebacks."""

_EXAMPLES = {
    "train": [
        "dan-blocks options quickstart -o quickstart.yml",
        "dan-blocks train --opt quickstart.yml --threads 1",
        "dan-blocks train --opt my.yml --force_yml train:total_iter=1000 name=short_run",
        "dan-blocks train --opt my.yml --auto_resume            # continue the newest training state",
        "torchrun --nproc_per_node 2 -m dan_blocks train --opt my.yml --launcher pytorch",
    ],
    "test": [
        "dan-blocks test --opt my_test.yml",
        "dan-blocks test --opt my_test.yml --force_yml path:pretrain_network_g=net_g_latest.pth --threads 4",
    ],
}


class ExperimentLockedError(RuntimeError):
    """Another run uses the experiment (or results) folder of this run's name."""


def _parser(kind: str) -> argparse.ArgumentParser:
    function = "train_pipeline" if kind == "train" else "test_pipeline"
    folder = "experiments" if kind == "train" else "results"
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in _EXAMPLES[kind])
    parser = argparse.ArgumentParser(
        prog=f"dan-blocks {kind}",
        description=_DESCRIPTION.format(kind=kind, function=function, folder=folder, env=TRACEBACK_ENV),
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("--opt", "-opt", dest="opt", required=True, metavar="FILE",
                        help="the BasicSR option file (YAML); -opt: BasicSR's spelling")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                        help="job launcher: pytorch under torchrun (default: none, one process)")
    parser.add_argument("--auto-resume", "--auto_resume", dest="auto_resume", action="store_true",
                        help="resume from the newest intact training state of this run's name")
    parser.add_argument("--debug", action="store_true", help="BasicSR's debug mode (name prefixed with debug_)")
    parser.add_argument("--local-rank", "--local_rank", dest="local_rank", type=int, default=0,
                        help=argparse.SUPPRESS)
    parser.add_argument("--force-yml", "--force_yml", dest="force_yml", nargs="+", default=None,
                        metavar="KEY:SUBKEY=VALUE", help="override option values (split on the first '=')")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module of yours first (repeatable; the current directory is searched), so "
                             "that the architectures, estimators or datasets it registers can be named")
    add_threads(parser)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                           help="print warnings and errors only (the log file keeps everything)")
    verbosity.add_argument("--verbose", action="store_true",
                           help="BasicSR's full console output (banner, options, network, every progress line)")
    return parser


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


def _force_value(value: str) -> Any:
    """A ``--force_yml`` value: YAML, as BasicSR's ``_postprocess_yml_value`` reads it for the cases it knows
    (``~`` and ``none`` are None, true/false, numbers, lists), anything else a string."""
    import yaml

    if value.lower() == "none":
        return None
    return yaml.safe_load(value) if value else value


def apply_force_yml(opt: dict[str, Any], entries: list[str] | None) -> dict[str, Any]:
    """A copy of ``opt`` with ``--force_yml KEY:SUBKEY=VALUE ...`` applied as BasicSR intends: the entry is split
    on its first ``=`` (a value may contain ``=``), missing parent blocks are made (a misspelled key then adds a
    key, which the option check names).

    Raises:
        UsageError: an entry without ``=``, with an empty key, or whose value is not YAML.
    """
    import copy

    import yaml

    out = copy.deepcopy(opt)
    for entry in entries or []:
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
            node[last] = _force_value(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UsageError(f"--force_yml {entry!r}: the value is not valid YAML ({problem})") from None
    return out


def _refuse_torchrun_without_launcher(launcher: str) -> None:
    world = os.environ.get("WORLD_SIZE")
    if world is not None and world.strip() not in ("", "1") and launcher == "none":
        raise UsageError(
            f"started by torchrun (WORLD_SIZE={world}) without --launcher pytorch: every process would run the "
            "same training into one folder. Add --launcher pytorch"
        )


def option_num_gpu(opt: dict[str, Any]) -> Any:
    """``num_gpu`` of the resolved options (after ``--force_yml``), or None."""
    return opt.get("num_gpu")


def _import_user_modules(modules: list[str]) -> None:
    import importlib

    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"--import {module}: cannot import it ({err})") from err


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0").strip() in ("", "0")


@contextlib.contextmanager
def experiment_lock(folder: str) -> Iterator[str | None]:
    """Hold an exclusive OS lock (``fcntl.flock``) for ``folder`` (``<root>/experiments/<name>``) while active.

    The lock file is ``<parent>/.<name>.lock``, beside the folder rather than in it (BasicSR renames an existing
    folder to ``<name>_archived_<time>``, which would carry a lock file inside away). The OS releases the lock
    when the process ends, however it ends (a kill included), so a lock never goes stale; the file itself is
    left in place (removing it could let two runs lock two different files). Where ``fcntl`` does not exist
    (Windows) nothing is locked. Yields the lock file's path (None when not locked).

    Raises:
        ExperimentLockedError: another process holds the lock; the message names the folder and that process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield None
        return
    parent, name = os.path.split(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{name}.lock")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run's lifetime
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ExperimentLockedError(
                f"{folder} is in use by a run that is still going ({holder}); BasicSR would archive its live "
                "folder. Wait for it to end, or give this run another name (--force_yml name=OTHER)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock


def _write_resolved(opt: dict[str, Any], original: str, folder: str) -> str:
    """The resolved options as a YAML file named like the original (BasicSR copies it into the run's folder)."""
    import yaml

    path = os.path.join(folder, os.path.basename(original) or "options.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"# {original} as run (YAML merge keys expanded, --force_yml applied)\n")
        yaml.safe_dump(opt, handle, sort_keys=False, allow_unicode=True)
    return path


def _basicsr_argv(args: argparse.Namespace, option_file: str) -> list[str]:
    argv = ["-opt", option_file, "--launcher", args.launcher, "--local_rank", str(args.local_rank)]
    if args.auto_resume:
        argv.append("--auto_resume")
    if args.debug:
        argv.append("--debug")
    return argv


def run_basicsr_pipeline(kind: str, argv: list[str], root: str | None = None) -> int:
    """Run ``basicsr.train.train_pipeline`` (kind "train") or ``basicsr.test.test_pipeline`` (kind "test").

    ``argv`` is this command's line (see ``dan-blocks KIND --help``); BasicSR's parser gets the resolved option
    file and its own options through ``sys.argv``, restored after. Returns the exit status.
    """
    parser = _parser(kind)
    if not argv:
        parser.print_usage(sys.stderr)
        print(f"dan-blocks {kind}: usage error: --opt FILE is required", file=sys.stderr)
        return 2
    return run_command(kind, lambda: _run_pipeline(kind, parser.parse_args(argv), root))


def _run_name(opt: dict[str, Any], args: argparse.Namespace) -> str:
    name = str(opt.get("name"))
    if args.debug and not name.startswith("debug"):  # as BasicSR's parse_options names it
        name = "debug_" + name
    return name


def _run_pipeline(kind: str, args: argparse.Namespace, root: str | None) -> int:
    from dan_blocks.basicsr import compat
    from dan_blocks.basicsr.console import quiet_console_active, training_console
    from dan_blocks.basicsr.options import check_option_file
    from dan_blocks.utils.options import read_yaml_file
    from dan_blocks.utils.threads import apply_threads

    compat.patch_basicsr_pipelines()
    _import_user_modules(args.imports)
    _refuse_torchrun_without_launcher(args.launcher)
    opt = apply_force_yml(read_yaml_file(args.opt, "option file (--opt)"), args.force_yml)
    check_option_file(opt, train=kind == "train")  # every block, before BasicSR makes a directory
    if not quiet_console_active():  # inside `dan-blocks quickstart`, the quickstart sets threads
        apply_threads(args.threads)
    if str(option_num_gpu(opt)) == "0":
        os.environ[compat.DEVICE_ENV] = "cpu"
    if kind == "train":
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    root_path = os.path.abspath(root or os.getcwd())
    folder = os.path.join(root_path, "experiments" if kind == "train" else "results", _run_name(opt, args))
    mode = "verbose" if args.verbose else "quiet" if args.quiet else "normal"
    logger_opt = opt.get("logger") or {}
    total = int((opt.get("train") or {}).get("total_iter") or 1) if kind == "train" else 1
    saved = sys.argv
    with contextlib.ExitStack() as stack:
        if _is_rank_zero():
            stack.enter_context(experiment_lock(folder))
        resolved_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="dan-blocks-options-"))
        sys.argv = [f"dan-blocks {kind}", *_basicsr_argv(args, _write_resolved(opt, args.opt, resolved_dir))]
        try:
            with training_console(mode, total, int(logger_opt.get("print_freq") or 1)) as log_files:
                pipeline(root_path)
        finally:
            sys.argv = saved
    if log_files and mode == "normal":
        print(f"dan-blocks {kind}: done; the full log is {os.path.relpath(log_files[-1])}", file=sys.stderr)
    return 0
