"""``dan-blocks train --import MODULE``: a user's estimator, registered in their own module, from an option file."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from test_cli_train_support import tiny_train_options, write_yaml

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli._pipeline import pop_imports
from dan_blocks.cli.main import main

USER_MODULE = '''
import torch
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY


class CliImportGlobalKernelEstimator(nn.Module):
    """Predicts one kernel per image from the LR alone: conv, global pooling, softmax over k*k."""

    output_kind = "kernel"

    def __init__(self, kernel_size=21, scale=2):
        super().__init__()
        self.kernel_size, self.scale = kernel_size, scale
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, kernel_size * kernel_size)

    def forward(self, sr, lr):
        pooled = torch.relu(self.conv(lr)).mean(dim=(2, 3))
        return torch.softmax(self.head(pooled), dim=1)


if "CliImportGlobalKernelEstimator" not in ARCH_REGISTRY:
    ARCH_REGISTRY.register(CliImportGlobalKernelEstimator)
'''


def test_pop_imports_separates_our_option() -> None:
    rest, modules = pop_imports(["-opt", "x.yml", "--import", "a.b", "--auto_resume", "--import=c"])
    assert rest == ["-opt", "x.yml", "--auto_resume"] and modules == ["a.b", "c"]
    with pytest.raises(ValueError, match="module name"):
        pop_imports(["--import"])


@pytest.mark.usefixtures("one_torch_thread")
def test_train_with_a_user_estimator_module(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "my_estimators.py").write_text(textwrap.dedent(USER_MODULE))
    opt = tiny_train_options("cli_import", total_iter=2, save_freq=2)
    opt["network_g"] = {
        "type": "DAN", "loop": 2,
        "restorer": {"type": "RestorerV2", "scale": 2, "nf": 8, "nb": 1, "ng": 1, "residual": "add"},
        "estimator": {"type": "CliImportGlobalKernelEstimator", "kernel_size": 21, "scale": 2},
        "pca": {"kernel_size": 21, "code_length": 10, "setting": 1},
    }
    yml = write_yaml(tmp_path / "train.yml", opt)
    assert main(["train", "-opt", yml, "--import", "my_estimators"]) == 0
    weights = torch.load(tmp_path / "experiments" / "cli_import" / "models" / "net_g_2.pth", weights_only=True)
    assert "estimator.head.weight" in weights["params"]


def test_unimportable_module_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "train.yml", tiny_train_options("cli_import_bad"))
    assert main(["train", "-opt", yml, "--import", "no_such_module_xyz"]) == 1
    assert "--import no_such_module_xyz" in capsys.readouterr().err
