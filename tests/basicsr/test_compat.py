"""dan_blocks.compat: basicsr importable on current torchvision, patches only when needed, clear errors."""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap

import pytest

from dan_blocks.basicsr import compat


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_import_dan_blocks_then_basicsr_in_a_fresh_interpreter() -> None:
    proc = _run(
        """
        import numpy as np
        np.seterr(all="raise")
        before = np.geterr()
        import dan_blocks.basicsr, basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        import torchvision.transforms.functional_tensor as ft
        assert np.geterr() == before, (np.geterr(), before)   # basicsr's global np.seterr is undone
        print("OK", basicsr.__version__, callable(ft.rgb_to_grayscale))
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK 1.4.2 True" in proc.stdout


def test_shim_matches_torchvision_grayscale() -> None:
    import torch
    from torchvision.transforms.functional import rgb_to_grayscale

    ft = sys.modules["torchvision.transforms.functional_tensor"]
    img = torch.rand(2, 3, 5, 4)
    assert torch.equal(ft.rgb_to_grayscale(img), rgb_to_grayscale(img))


def test_shim_only_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.delitem(sys.modules, "torchvision.transforms.functional_tensor")
    real_find_spec = importlib.util.find_spec
    # an old torchvision that still has the module: no shim
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name.endswith("functional_tensor")
                        else real_find_spec(name, *a))
    assert compat.torchvision_functional_tensor_shim_needed() is False
    # a current one without it: shim needed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.endswith("functional_tensor")
                        else real_find_spec(name, *a))
    assert compat.torchvision_functional_tensor_shim_needed() is True


def test_mismatched_torchvision_build_names_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(compat.IncompatibleTorchvisionError) as info:
        compat._import_torchvision()
    message = str(info.value)
    assert f"torch {torch.__version__}" in message
    assert f"torchvision {compat.installed_version('torchvision')}" in message
    assert "nms does not exist" in message and "Fix:" in message


def test_installed_version_of_a_missing_distribution() -> None:
    assert compat.installed_version("surely-not-installed-dist") == "not installed"
