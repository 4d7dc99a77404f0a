"""The README's Python examples run (so they cannot rot); the checkpoint line needs a released file and is skipped."""

from __future__ import annotations

import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_layer_example_runs() -> None:
    namespace: dict = {}
    exec(_blocks()[0], namespace)
    assert namespace["feat"].shape == (2, 64, 32, 32) and namespace["cond"].shape == (2, 64, 1, 1)


def test_whole_dan_example_runs() -> None:
    # the lines loading downloaded files (the releases' weights) are left out
    downloads = ('load_official_checkpoint("', 'load_model("')
    source = "\n".join(line for line in _blocks()[1].splitlines() if not any(d in line for d in downloads))
    namespace: dict = {"torch": torch}
    exec(source, namespace)
    ref, sr = namespace["out"].sr.detach(), namespace["sr"]
    assert ref.shape == sr.shape == (1, 3, 192, 192)
    assert float((sr - ref).abs().max() / ref.abs().max()) <= 1e-5  # optimised and tiled == plain untiled
