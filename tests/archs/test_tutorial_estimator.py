"""docs/estimators.md's tutorial runs as written: its ```python blocks are executed in order in one namespace."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "estimators.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_doc_has_the_tutorial_blocks() -> None:
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    joined = "\n".join(blocks)
    for needle in ("register_arch", "build_network", "optimizer.step()", "MANetEstimator", "backward()"):
        assert needle in joined, needle


def test_tutorial_code_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "estimators_tutorial"}
    for index, block in enumerate(_python_blocks(DOC.read_text(encoding="utf-8"))):
        exec(compile(block, f"{DOC.name}[python block {index}]", "exec"), namespace)
    losses = namespace["losses"]
    assert isinstance(losses, list) and len(losses) == 8
    assert all(loss == loss and loss < 1e3 for loss in losses)  # finite
    assert "kernel L1 error per iteration" in capsys.readouterr().out
