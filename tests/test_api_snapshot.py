"""The public surface: every name in ``__all__`` of the public modules, compared with tests/api_snapshot.txt.

Removing or renaming a public name breaks users' code, so it must be a visible decision: this test fails on any
difference and names what was removed and what was added. To record a deliberate change, regenerate the snapshot
and commit it with the change (and a CHANGELOG line for a removal):

    DAN_BLOCKS_UPDATE_API_SNAPSHOT=1 .venv/bin/python -m pytest -q tests/test_api_snapshot.py
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).resolve().parent / "api_snapshot.txt"
UPDATE_ENV = "DAN_BLOCKS_UPDATE_API_SNAPSHOT"
UPDATE_COMMAND = f"{UPDATE_ENV}=1 .venv/bin/python -m pytest -q tests/test_api_snapshot.py"
#: the public modules whose ``__all__`` is the public surface
MODULES = (
    "dan_blocks",
    "dan_blocks.layers",
    "dan_blocks.layers.fusion",
    "dan_blocks.archs",
    "dan_blocks.formats",
    "dan_blocks.ops",
    "dan_blocks.fast",
    "dan_blocks.inference",
    "dan_blocks.degradations",
    "dan_blocks.data",
    "dan_blocks.metrics",
)
HEADER = (
    "# The public surface of dan-blocks: `module:name` for every name in the __all__ of the public modules\n"
    "# (tests/test_api_snapshot.py). Regenerate deliberately, never by hand:\n"
    f"#   {UPDATE_COMMAND}\n"
)


def current_surface() -> list[str]:
    """``module:name`` for every name in each public module's ``__all__``, sorted within a module."""
    lines: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        lines.extend(f"{name}:{item}" for item in sorted(getattr(module, "__all__", ())))
    return lines


def read_snapshot(path: Path = SNAPSHOT) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def difference(snapshot: list[str], current: list[str]) -> str:
    """A message naming the removed and the added names, and how to record a deliberate change."""
    removed = [line for line in snapshot if line not in set(current)]
    added = [line for line in current if line not in set(snapshot)]
    parts = []
    if removed:
        parts.append("removed from the public surface (users' imports of these break):\n  " + "\n  ".join(removed))
    if added:
        parts.append("added to the public surface:\n  " + "\n  ".join(added))
    if not parts:
        return ""
    return ("\n\n".join(parts) + f"\n\nIf this is deliberate, regenerate {SNAPSHOT.name} and commit it with the "
            f"change (removals need a CHANGELOG line):\n  {UPDATE_COMMAND}")


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_exists_once(name: str) -> None:
    module = importlib.import_module(name)
    public = list(getattr(module, "__all__", ()))
    assert public, f"{name} has no __all__"
    assert len(public) == len(set(public)), f"{name}.__all__ lists a name twice"
    missing = [item for item in public if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ lists names the module does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what `import *` gives is exactly __all__
    assert set(public) <= set(namespace)


def test_public_surface_matches_the_snapshot() -> None:
    current = current_surface()
    if os.environ.get(UPDATE_ENV) == "1":
        from dan_blocks.utils.files import atomic_write_text

        atomic_write_text(SNAPSHOT, HEADER + "\n".join(current) + "\n")
        pytest.skip(f"{SNAPSHOT.name} rewritten ({len(current)} names) because {UPDATE_ENV}=1: review and commit it")
    assert SNAPSHOT.is_file(), f"{SNAPSHOT} is missing; create it with: {UPDATE_COMMAND}"
    message = difference(read_snapshot(), current)
    assert message == "", message


def test_the_snapshot_is_well_formed() -> None:
    lines = read_snapshot()
    assert len(lines) == len(set(lines)), "a line is repeated"
    modules = [line.split(":", 1)[0] for line in lines]
    assert all(":" in line and line.split(":", 1)[1].isidentifier() for line in lines)
    assert set(modules) <= set(MODULES)
    for module in MODULES:  # grouped by module in MODULES' order, names sorted: diffs stay readable
        names = [line.split(":", 1)[1] for line in lines if line.split(":", 1)[0] == module]
        assert names == sorted(names), module
    assert modules == sorted(modules, key=MODULES.index)


def test_a_difference_names_removed_and_added_names_and_the_update_command() -> None:
    message = difference(["dan_blocks:DAN", "dan_blocks:old_name"], ["dan_blocks:DAN", "dan_blocks:new_name"])
    assert "removed from the public surface" in message and "dan_blocks:old_name" in message
    assert "added to the public surface:\n  dan_blocks:new_name" in message
    assert UPDATE_COMMAND in message
    assert difference(["dan_blocks:DAN"], ["dan_blocks:DAN"]) == ""
