"""The ``dan-blocks`` commands' shared conventions: fast ``--help`` (nothing heavy imported), an example in every
help, one spelling per option with the old spellings kept as aliases, and a lazy ``import dan_blocks``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dan_blocks.cli import conventions
from dan_blocks.cli.errors import UsageError
from dan_blocks.cli.main import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "basicsr", "cv2", "scipy", "skimage", "timm")


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env)


def _dan_blocks() -> list[str]:
    script = Path(sys.executable).parent / "dan-blocks"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dan_blocks"]


def test_top_level_help_is_well_under_a_second() -> None:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([*_dan_blocks(), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in COMMANDS)
    # python itself starts in ~0.05 s; importing torch alone takes seconds
    assert min(times) < 1.0, times


def test_importing_the_cli_and_the_package_imports_nothing_heavy() -> None:
    proc = _run_python(
        "import json, sys\nimport dan_blocks, dan_blocks.cli.main, dan_blocks.cli.conventions, dan_blocks.cli.errors\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_help_imports_no_torch(command: str) -> None:
    proc = _run_python(
        "import contextlib, io, json, sys\nfrom dan_blocks.cli.main import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()) as out:\n    code = main([{command!r}, '--help'])\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules], out.getvalue()]))"
    )
    assert proc.returncode == 0, proc.stderr
    code, heavy, text = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0 and f"dan-blocks {command}" in text
    assert heavy == [], f"`dan-blocks {command} --help` imported {heavy}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_ends_with_examples_of_its_own_command(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  ") for line in examples if line)
    assert any(line.strip().startswith(f"dan-blocks {command}") for line in examples)


def test_the_help_table_matches_each_module() -> None:
    for name, (module_name, help_line) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert name == module.COMMAND
        assert help_line == module.HELP, (
            f"{module_name}.HELP changed: update its line in dan_blocks/cli/main.py COMMANDS (the one `dan-blocks "
            "--help` shows without importing the module)"
        )


def test_unknown_command_suggests_the_closest(capsys) -> None:
    assert main(["optoins"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'optoins'" in err and "did you mean 'options'?" in err
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_version() -> None:
    from dan_blocks._version import __version__

    proc = subprocess.run([*_dan_blocks(), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == f"dan-blocks {__version__}"


# --- one spelling per option, the old ones kept -----------------------------------------------------------

def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    return module.build_parser()


@pytest.mark.parametrize("command", ["quickstart", "smoke"])
def test_out_is_an_alias_of_output(command: str) -> None:
    parser = _parser(command)
    for spelling in ("-o", "--output", "--out"):
        assert parser.parse_args([spelling, "somewhere"]).output == "somewhere"
    help_text = " ".join(parser.format_help().split())
    assert "-o, --output, --out DIR" in help_text and "--out: the older spelling" in help_text


def test_quiet_and_no_progress_are_one_option() -> None:
    parser = _parser("make-testset")
    assert parser.parse_args(["hr", "out", "--quiet"]).quiet is True
    assert parser.parse_args(["hr", "out", "--no-progress"]).quiet is True
    assert parser.parse_args(["hr", "out"]).quiet is False


@pytest.mark.parametrize(
    ("command", "first"), [("convert", ["model.pth"]), ("make-testset", ["builtin:skimage-test"])]
)
def test_output_as_an_argument_or_as_o(command: str, first: list[str], tmp_path, capsys) -> None:
    parser = _parser(command)
    assert parser.parse_args([*first, "-o", "x"]).output == "x"
    # both spellings at once, naming different places: a usage error before any work
    assert main([command, *first, str(tmp_path / "a"), "-o", str(tmp_path / "b")]) == 2
    assert "two output" in capsys.readouterr().err
    assert main([command, *first]) == 2
    assert "-o " in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["smoke", "make-testset", "quickstart"])
def test_threads_must_be_a_positive_integer(command: str, capsys) -> None:
    parser = _parser(command)
    assert parser.parse_args(["hr", "out", "--threads", "3"] if command == "make-testset" else ["--threads", "3"]
                             ).threads == 3
    argv = [command, *(["hr", "out"] if command == "make-testset" else []), "--threads", "0"]
    assert main(argv) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err


def test_device_spellings() -> None:
    import torch

    assert conventions.resolve_device("cpu") == torch.device("cpu")
    assert conventions.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "cuda:-1"):
        with pytest.raises(UsageError, match="--device"):
            conventions.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU; use --device cpu"):
            conventions.resolve_device("cuda:0")
    else:
        with pytest.raises(UsageError, match="numbered from 0"):
            conventions.resolve_device(f"cuda:{torch.cuda.device_count()}")


# --- the lazy package ----------------------------------------------------------------------------------------

def test_every_public_name_is_the_submodules_own() -> None:
    import dan_blocks

    sources = {
        "degradations": "dan_blocks.degradations", "settings": "dan_blocks.settings",
    }
    for name in dan_blocks.__all__:
        value = getattr(dan_blocks, name)
        if name in sources:
            assert value is importlib.import_module(sources[name])
        elif name != "__version__":
            owner = importlib.import_module(value.__module__)
            assert getattr(owner, name) is value, name
    assert dan_blocks.archs is importlib.import_module("dan_blocks.archs")  # submodules by attribute, as before
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = dan_blocks.no_such_name
    assert set(dan_blocks.__all__) <= set(dir(dan_blocks))


#: command -> the canonical spellings it takes, each with the older spellings kept as aliases (docs/cli.md's table)
SPELLINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "smoke": {"--output": ("-o", "--out"), "--device": (), "--threads": ()},
    "convert": {"--output": ("-o",)},
    "fit-pca": {"--output": ("-o",), "--kernel-size": (), "--code-length": ()},
    "make-testset": {"--output": ("-o",), "--quiet": ("--no-progress",), "--threads": ()},
    "quickstart": {"--output": ("-o", "--out"), "--threads": ()},
    "options": {"--output": ("-o",)},
    "sr": {"--output": ("-o",), "--opt": ("-opt",), "--quiet": ("--no-progress",), "--device": (), "--threads": ()},
    "train": {"--opt": ("-opt",), "--quiet": ("--no-progress",), "--threads": (), "--auto-resume": ("--auto_resume",),
              "--force-yml": ("--force_yml",)},
    "test": {"--opt": ("-opt",), "--quiet": ("--no-progress",), "--threads": (), "--force-yml": ("--force_yml",)},
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_the_canonical_spellings_and_their_aliases(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    options_part = capsys.readouterr().out.split("\nexamples:\n", 1)[0]
    # every option spelling the help lists (an option line starts with it, aliases follow after ", ")
    listed = set()
    for line in options_part.splitlines():
        stripped = line.strip()
        if stripped.startswith("-"):
            listed |= {word.rstrip(",") for word in stripped.split() if word.startswith("-")}
    missing = [spelling for canonical, aliases in SPELLINGS[command].items() for spelling in (canonical, *aliases)
               if spelling not in listed]
    assert missing == [], f"dan-blocks {command} --help lacks {missing}"


@pytest.mark.parametrize("command", ["fit-pca", "make-testset"])
def test_an_unwritable_output_is_found_before_the_work(command: str, tmp_path, monkeypatch, capsys) -> None:
    # fit-pca fitted for 15 s, make-testset degraded every image, and only then found the folder read-only
    import tempfile

    import dan_blocks.data.testsets as testsets
    import dan_blocks.degradations.pca_fit as pca_fit

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(pca_fit, "fit_default_pca", no_work)
    monkeypatch.setattr(testsets, "make_testset", no_work)
    out = tmp_path / "out"
    out.mkdir()
    args = ["-o", str(out)] if command == "fit-pca" else ["--quiet", str(tmp_path), str(out)]
    assert main([command, *args]) == 2
    assert "cannot write there (Permission denied)" in capsys.readouterr().err
