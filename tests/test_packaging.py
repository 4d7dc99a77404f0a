"""The sdist and the wheel: the licence (file and SPDX metadata), no setuptools deprecation warnings, an sdist
that carries its own test suite (and collects from the unpacked archive), a wheel holding the package data; and
``import dan_blocks.basicsr`` under ``-W error::DeprecationWarning``.

The archives are built with setuptools' own PEP 517 backend (``setuptools.build_meta``, what ``python -m build``
and pip call) in a copy of the source tree, so nothing is written into the repository."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what a checkout holds that is no source (git's own files, builds, caches, outputs): not copied
_NOT_SOURCE = (".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "site",
               "build", "dist", ".hypothesis", "dan_blocks_out", "experiments", "results", "tb_logger", "*.pyc")
#: the sections of the Apache License 2.0 (its own headings)
APACHE_SECTIONS = ["Definitions", "Grant of Copyright License", "Grant of Patent License", "Redistribution",
                   "Submission of Contributions", "Trademarks", "Disclaimer of Warranty", "Limitation of Liability",
                   "Accepting Warranty or Additional Liability"]


def _backend(hook: str, out: Path, cwd: Path) -> tuple[Path, str]:
    """Run ``setuptools.build_meta.<hook>(out)`` in a fresh interpreter in ``cwd``; the archive and the log."""
    code = f"import sys, setuptools.build_meta as backend; print('BUILT', backend.{hook}(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code, str(out)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    name = re.search(r"^BUILT (\S+)$", proc.stdout, re.MULTILINE)
    assert name is not None, log[-3000:]
    return out / name.group(1), log


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    sdist, sdist_log = _backend("build_sdist", base / "dist", source)
    with tarfile.open(sdist) as archive:
        archive.extractall(base / "unpacked", filter="data")
    unpacked = base / "unpacked" / sdist.name.removesuffix(".tar.gz")
    wheel, wheel_log = _backend("build_wheel", base / "wheel", unpacked)  # the wheel is built from the sdist
    return {"sdist": sdist, "unpacked": unpacked, "wheel": wheel, "logs": sdist_log + wheel_log}


def test_no_deprecation_warnings_while_building(built) -> None:
    logs = str(built["logs"])
    assert "Deprecat" not in logs and "deprecat" not in logs, [
        line for line in logs.splitlines() if "eprecat" in line
    ]


def test_the_licence_file_is_the_apache_license_and_in_both_archives(built) -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    headings = re.findall(r"^\s+(\d)\. ([A-Z][^.]*)\.", text, re.MULTILINE)
    assert headings == [(str(i), title) for i, title in enumerate(APACHE_SECTIONS, start=1)]
    assert "END OF TERMS AND CONDITIONS" in text
    assert (Path(built["unpacked"]) / "LICENSE").read_text(encoding="utf-8") == text
    with zipfile.ZipFile(Path(built["wheel"])) as wheel:
        licences = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1 and wheel.read(licences[0]).decode("utf-8") == text


def _metadata_problems(text: str) -> list[str]:
    meta = email.message_from_string(text)
    problems = []
    if meta["Metadata-Version"] is None or tuple(map(int, meta["Metadata-Version"].split("."))) < (2, 4):
        problems.append(f"Metadata-Version {meta['Metadata-Version']} (License-Expression needs 2.4)")
    if meta["License-Expression"] != "Apache-2.0":
        problems.append(f"License-Expression {meta['License-Expression']!r}")
    if meta.get_all("License-File") != ["LICENSE"]:
        problems.append(f"License-File {meta.get_all('License-File')}")
    if meta["License"] is not None:
        problems.append("a legacy License field")
    problems += [f"classifier {c}" for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if meta["Requires-Python"] is None or "<3.13" not in meta["Requires-Python"]:
        problems.append(f"Requires-Python {meta['Requires-Python']!r} (basicsr cannot be built on 3.13)")
    return problems


def test_metadata_declares_the_spdx_licence(built) -> None:
    assert _metadata_problems((Path(built["unpacked"]) / "PKG-INFO").read_text(encoding="utf-8")) == []
    with zipfile.ZipFile(Path(built["wheel"])) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        assert _metadata_problems(wheel.read(metadata).decode("utf-8")) == []


def _source_files(folder: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_sdist_carries_what_its_tests_read(built) -> None:
    unpacked = Path(built["unpacked"])
    shipped = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    needed = set().union(*(_source_files(folder) for folder in ("tests", "docs", "basicsr_options", "benchmarks")))
    needed |= {"LICENSE", "README.md", "CHANGELOG.md", "mkdocs.yml", "pyproject.toml", ".ci/run"}
    assert {"tests/conftest.py", "tests/_helpers.py", "docs/index.md"} <= needed
    assert sorted(needed - shipped) == []


def test_the_wheel_holds_the_package_data(built) -> None:
    with zipfile.ZipFile(Path(built["wheel"])) as wheel:
        names = set(wheel.namelist())
    options = {f"dan_blocks/basicsr_options/{p.relative_to(ROOT / 'basicsr_options').as_posix()}"
               for p in (ROOT / "basicsr_options").rglob("*.yml")}
    pcas = {p.relative_to(ROOT).as_posix() for p in (ROOT / "dan_blocks").rglob("pca/*.pt")}
    assert options and pcas
    assert sorted((options | pcas | {"dan_blocks/py.typed"}) - names) == []
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_the_unpacked_sdist_collects_its_whole_test_suite(built) -> None:
    unpacked = Path(built["unpacked"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([sys.executable, "-c", "import dan_blocks; print(dan_blocks.__file__)"], cwd=unpacked,
                           capture_output=True, text=True, timeout=60, env=env)
    assert Path(where.stdout.strip()).is_relative_to(unpacked)  # the sdist's own package is the one tested
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=unpacked, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    count = re.search(r"^(\d+) tests? collected", proc.stdout, re.MULTILINE)
    assert count is not None and int(count.group(1)) > 500, proc.stdout[-2000:]


def test_basicsr_imports_under_deprecation_errors() -> None:
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import dan_blocks.basicsr"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_every_module_compiles_without_warnings() -> None:
    """What a fresh install compiles (no cached bytecode): an invalid escape such as ``"\\s"`` in a docstring is a
    DeprecationWarning (a SyntaxWarning from Python 3.12), an error under ``-W error``."""
    import warnings

    problems = []
    for path in sorted((ROOT / "dan_blocks").rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec")
            except (SyntaxError, DeprecationWarning, SyntaxWarning) as err:
                problems.append(f"{path.relative_to(ROOT)}: {err}")
    assert problems == []
