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


def _bash_lines() -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S) for line in block.splitlines()]


def test_the_speed_claim_is_the_measured_range() -> None:
    """The README quotes the ranges docs/performance.md measured, not a stronger number."""
    text = " ".join(README.read_text().split())
    claim = re.search(r"(\d\.\d\d)–(\d\.\d\d)x \(v2\) and (\d\.\d\d)–(\d\.\d\d)x \(v1\)", text)
    assert claim is not None and "docs/performance.md" in text[claim.end(): claim.end() + 200]
    performance = " ".join((README.parent / "docs" / "performance.md").read_text().split())
    v1, v2 = f"v1 {claim[3]}–{claim[4]}x", f"v2 {claim[1]}–{claim[2]}x"
    assert v1 in performance and v2 in performance


def test_cpu_only_recipe_installs_the_cpu_build_first() -> None:
    lines = _bash_lines()
    cpu = next(line for line in lines if "download.pytorch.org/whl/cpu" in line)
    first, _, then = cpu.partition("&&")
    assert first.split()[:4] == ["pip", "install", "torch", "torchvision"] and "pip install dan-blocks" in then
    install = (README.parent / "docs" / "install.md").read_text()
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in install


def test_cli_examples_use_the_canonical_spellings_and_shipped_names() -> None:
    from dan_blocks.cli.options import _resolve, shipped_options

    commands = [line.split("#")[0].split() for line in _bash_lines() if line.startswith(("dan-blocks ", "torchrun "))]
    assert commands
    for words in commands:
        assert "-opt" not in words and "--out" not in words and "--no-progress" not in words, words
        if words[:2] == ["dan-blocks", "options"] and len(words) > 2:
            assert _resolve(words[2], shipped_options())  # the name a wheel user can write out
