"""`dan-blocks smoke` and `dan-blocks convert` (release checkpoint -> BasicSR `params`, loaded by BasicSR)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml
from test_official import release_state_dict

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks import load_official_checkpoint
from dan_blocks.cli.main import main


def test_smoke_writes_pngs(tmp_path, capsys) -> None:
    out = tmp_path / "smoke"
    assert main(["smoke", "--out", str(out), "--size", "16", "--scale", "3", "--loop", "2"]) == 0
    text = capsys.readouterr().out
    assert "lr (1, 3, 16, 16) -> sr (1, 3, 48, 48)" in text and "ms on CPU" in text
    sr = cv2.imread(str(out / "sr.png"))
    lr = cv2.imread(str(out / "lr.png"))
    kernel = cv2.imread(str(out / "kernel.png"), cv2.IMREAD_GRAYSCALE)
    assert sr.shape == (48, 48, 3) and lr.shape == (16, 16, 3) and kernel.shape == (21 * 8, 21 * 8)
    # the LR is the astronaut photo, not noise: neighbouring pixels correlate strongly
    gray = lr.mean(axis=2)
    pairs = torch.from_numpy(np.stack([gray[:, :-1].ravel(), gray[:, 1:].ravel()]))
    assert float(torch.corrcoef(pairs)[0, 1]) > 0.5


@pytest.mark.parametrize("version,scale,k,c", [(2, 3, 13, 10), (1, 4, 21, 10)])
def test_convert_then_basicsr_loads_strictly(
    version: int, scale: int, k: int, c: int, tmp_path, capsys
) -> None:
    from basicsr.archs import build_network
    from basicsr.models.base_model import BaseModel

    src = tmp_path / f"danv{version}_x{scale}.pth"
    torch.save(release_state_dict(version, scale, k, c, seed=11), src)
    dst = tmp_path / "converted" / "net_g.pth"
    assert main(["convert", str(src), str(dst), "--loop", "2"]) == 0
    printed = capsys.readouterr().out
    options = yaml.safe_load(printed[printed.index("network_g:") :])
    assert options["path"]["pretrain_network_g"] == str(dst)
    assert options["network_g"]["type"] == f"DANv{version}" and options["network_g"]["scale"] == scale
    saved = torch.load(dst, weights_only=True)
    assert list(saved) == ["params", "dan_blocks"]  # the weights, and the options that rebuild the network
    assert saved["dan_blocks"]["network_g"] == options["network_g"]
    net = build_network(options["network_g"])
    loader = object.__new__(BaseModel)  # BasicSR's own load_network, as `path.pretrain_network_g` runs it
    BaseModel.load_network(loader, net, str(dst), strict=True, param_key="params")
    reference = load_official_checkpoint(src, loop=2)
    lr = torch.rand(1, 3, 5, 6)
    net.eval()
    with torch.no_grad():
        a, b = net(lr), reference(lr)
    for x, y in zip(a.srs + a.codes, b.srs + b.codes, strict=True):
        torch.testing.assert_close(
            x, y, rtol=1e-5, atol=1e-5
        )  # same weights; oneDNN may pick other algorithms
    torch.testing.assert_close(net.pca.matrix, reference.pca.matrix, rtol=0, atol=0)
    torch.testing.assert_close(net.init_code, reference.init_code, rtol=0, atol=0)


def test_convert_reports_errors(tmp_path, capsys) -> None:
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.pth")]) == 1  # failed work
    assert "missing.pth" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    assert main(["convert", str(bad), str(tmp_path / "out.pth")]) == 1
    err = capsys.readouterr().err
    assert "bad.pth is no model file dan-blocks knows" in err and "the DAN release layout" in err
    assert not (tmp_path / "out.pth").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_convert_refuses_non_finite_weights(value: float, tmp_path, capsys) -> None:
    state = release_state_dict(2, 2, 21, 10, seed=3)
    name = next(key for key, tensor in state.items() if tensor.is_floating_point() and tensor.numel() > 4)
    state[name] = state[name].clone()
    state[name].view(-1)[[1, 3]] = value  # two damaged values
    src = tmp_path / "diverged.pth"
    torch.save(state, src)
    out = tmp_path / "out.pth"
    assert main(["convert", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "diverged.pth" in err and "non-finite" in err and "2 non-finite value(s)" in err
    assert not out.exists()
    # the tensor is named as dan-blocks calls it: the release name, mapped (the file's layout is the release's)
    named = err.split("tensor '", 1)[1].split("'", 1)[0]
    if named != name:  # named as dan-blocks calls the release's tensor: the same tensor under its mapped name
        reference = load_official_checkpoint(_finite_copy(state, name, tmp_path)).state_dict()
        assert named in reference and reference[named].numel() == state[name].numel()


def _finite_copy(state: dict, name: str, tmp_path) -> str:
    fixed = dict(state)
    fixed[name] = torch.nan_to_num(state[name], nan=0.0, posinf=0.0)
    path = tmp_path / "finite.pth"
    torch.save(fixed, path)
    return str(path)


def test_convert_output_spellings(tmp_path, capsys) -> None:
    src = tmp_path / "danv2_x2.pth"
    torch.save(release_state_dict(2, 2, 21, 10, seed=5), src)
    assert main(["convert", str(src), "-o", str(tmp_path / "models") + "/"]) == 0  # a folder gets its own name
    assert (tmp_path / "models" / "danv2_x2_basicsr.pth").is_file()
    capsys.readouterr()


def test_smoke_threads_and_device(tmp_path, capsys) -> None:
    threads = torch.get_num_threads()
    try:
        assert main(["smoke", "-o", str(tmp_path), "--size", "12", "--scale", "2", "--loop", "1", "--threads", "1",
                     "--device", "cpu"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert "ms on CPU, 1 thread(s)" in capsys.readouterr().out
    assert main(["smoke", "-o", str(tmp_path), "--device", "tpu"]) == 2
    assert "--device tpu" in capsys.readouterr().err
