"""A missing default PCA: the advice is a fit-pca command that works, writes outside the installed package, and
whose file the model then takes; sizes no PCA can have get a plain error instead of advice fit-pca would refuse."""

from __future__ import annotations

import re
import shlex

import pytest
import torch

from dan_blocks import dan_v2, default_pca
from dan_blocks.cli.main import main
from dan_blocks.formats.pca_files import PCA_DIR


@pytest.mark.parametrize(("kernel_size", "code_length"), [(20, 10), (21, 0), (0, 10), (3, 10)])
def test_impossible_sizes_get_no_fit_pca_advice(kernel_size: int, code_length: int) -> None:
    with pytest.raises(ValueError) as caught:
        default_pca(kernel_size, code_length, 2)
    text = str(caught.value)
    assert "fit-pca" not in text and str(PCA_DIR) not in text
    assert ("kernel_size" if kernel_size % 2 == 0 else "code_length") in text
    # and fit-pca refuses the same sizes (exit 2, naming the option)
    assert main(["fit-pca", "--kernel-size", str(kernel_size), "--code-length", str(code_length), "--samples", "50",
                 "-o", "unused.pt"]) == 2


def test_the_advice_runs_and_its_file_builds_the_model(tmp_path, monkeypatch, capsys) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        dan_v2(2, kernel_size=13, code_length=7, setting=2)
    text = str(caught.value)
    assert str(PCA_DIR) not in text  # nothing is to be written into the installed package
    command = re.search(r"`(dan-blocks fit-pca [^`]+)`", text)
    assert command is not None, text
    argv = shlex.split(command.group(1))
    name = argv[argv.index("-o") + 1]
    assert "/" not in name and f"pca='{name}'" in text
    monkeypatch.chdir(tmp_path)
    assert main([*argv[1:], "--samples", "300"]) == 0  # the command as advised (fewer samples: a fast test)
    capsys.readouterr()
    model = dan_v2(2, kernel_size=13, code_length=7, setting=2, pca=name, nf=8, nb=1, ng=1, est_nb=1)
    assert model.pca.matrix.shape == (13 * 13, 7)
    out = model.eval()(torch.rand(1, 3, 6, 6))
    assert out.sr.shape == (1, 3, 12, 12)
