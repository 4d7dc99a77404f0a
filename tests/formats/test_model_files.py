"""Self-describing model files and the one loader: what is saved is rebuilt exactly, nothing is guessed."""

from __future__ import annotations

import copy
import os
import warnings

import cv2
import numpy as np
import pytest
import torch
from _helpers import randomise
from test_cli_train_support import tiny_train_options, write_yaml

import dan_blocks
import dan_blocks.basicsr
from dan_blocks.archs import DAN, MANetEstimator, RestorerV2, arch_options
from dan_blocks.cli.main import main
from dan_blocks.formats import to_release_state_dict
from dan_blocks.utils.state_record import without_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _models() -> dict[str, torch.nn.Module]:
    v2 = dan_blocks.dan_v2(2, nf=8, nb=1, ng=2, est_nf=8, est_nb=1, est_tail_nf=8, residual="add",
                           est_input_norm=True, loop=2)
    v1 = dan_blocks.dan_v1(3, nf=8, nb=2, est_nf=8, est_nb=1, reduction=4, loop=2)
    composed = DAN({"type": "RestorerV2", "scale": 2, "nf": 8, "nb": 1, "ng": 1, "residual": "add"},
                   MANetEstimator(nf=8, num_blocks=1, kernel_size=11, scale=2), dan_blocks.default_pca(11, 10, 2),
                   loop=2)
    return {name: randomise(m, i).eval() for i, (name, m) in enumerate(
        {"v2": v2, "v1": v1, "composed": composed}.items())}


@pytest.mark.parametrize("name", ["v2", "v1", "composed"])
def test_save_then_load_rebuilds_exactly(name: str, tmp_path) -> None:
    model = _models()[name]
    path = tmp_path / f"{name}.pth"
    dan_blocks.save_model(model, path)
    raw = torch.load(path, weights_only=True)  # a plain, safe checkpoint
    assert set(raw) == {"params", "dan_blocks"} and raw["dan_blocks"]["version"] == dan_blocks.__version__
    assert raw["dan_blocks"]["network_g"] == arch_options(model)
    loaded = dan_blocks.load_model(path)
    assert type(loaded) is type(model)
    assert arch_options(loaded) == arch_options(model)
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = model(lr), loaded(lr)
    for x, y in zip([*a.srs, *a.codes, *a.kernels], [*b.srs, *b.codes, *b.kernels], strict=True):
        assert torch.equal(x, y)  # the same network and weights: bit-identical
    torch.testing.assert_close(loaded.pca.kernel_mean, model.pca.kernel_mean, rtol=0, atol=0)


def test_a_model_file_loads_in_plain_basicsr(tmp_path) -> None:
    from basicsr.archs import build_network
    from basicsr.models.base_model import BaseModel

    import dan_blocks.basicsr

    model = _models()["v2"]
    dan_blocks.save_model(model, tmp_path / "m.pth")
    options = torch.load(tmp_path / "m.pth", weights_only=True)["dan_blocks"]["network_g"]
    net = build_network(dict(options))
    BaseModel.load_network(object.__new__(BaseModel), net, str(tmp_path / "m.pth"), strict=True, param_key="params")
    for key, value in model.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)


def test_overrides_replace_recorded_options(tmp_path) -> None:
    dan_blocks.save_model(_models()["v2"], tmp_path / "m.pth")
    assert dan_blocks.load_model(tmp_path / "m.pth", loop=3).loop == 3
    with pytest.raises(ValueError, match=r"holds a DANv2 \(DAN v2 weights\), not DANv1"):
        dan_blocks.load_model(tmp_path / "m.pth", arch="DANv1")


def test_a_checkpoint_without_options_is_not_guessed(tmp_path) -> None:
    model = _models()["v2"]  # residual "add" and est_input_norm True: neither is in the tensors
    torch.save({"params": without_records(model.state_dict())}, tmp_path / "old.pth")  # written before records
    with pytest.raises(ValueError, match="cannot tell residual and est_input_norm") as info:
        dan_blocks.load_model(tmp_path / "old.pth")
    assert "old.pth" in str(info.value)
    with pytest.warns(UserWarning, match="residual='add', est_input_norm=True as given"):
        loaded = dan_blocks.load_model(tmp_path / "old.pth", residual="add", est_input_norm=True)
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded(lr).sr, model(lr).sr)


def test_release_files_still_load_as_released(tmp_path) -> None:
    model = dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2).eval()
    randomise(model, 9)
    torch.save(to_release_state_dict(model.state_dict()), tmp_path / "danv2_x2.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing assumed: the release's own settings are known
        loaded = dan_blocks.load_model(tmp_path / "danv2_x2.pth", loop=2)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr).sr, model(lr).sr, rtol=0, atol=0)


def test_unregistered_parts_cannot_be_saved_silently(tmp_path) -> None:
    class Mine(torch.nn.Module):  # not registered: no options to record
        output_kind = "kernel"

        def forward(self, sr, lr):  # pragma: no cover - never run
            raise AssertionError

    model = DAN(RestorerV2(nf=8, nb=1, ng=1, scale=2), Mine(), dan_blocks.default_pca())
    with pytest.raises(ValueError, match="estimator: Mine"):
        dan_blocks.save_model(model, tmp_path / "m.pth")
    assert not os.path.exists(tmp_path / "m.pth")
    dan_blocks.save_model(model.restorer, tmp_path / "r.pth")  # a registered part alone is fine


def test_trained_checkpoint_without_opt_writes_the_same_image_as_with_opt(tmp_path, monkeypatch) -> None:
    # the quickstart's net_g_latest.pth through dan-blocks sr -m, with and without --opt: the same image
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("selfdescribing", total_iter=2, save_freq=2)
    opt["network_g"]["est_input_norm"] = True  # settings the tensors cannot tell
    opt["network_g"]["residual"] = "add"
    yml = write_yaml(tmp_path / "train.yml", opt)
    assert main(["train", "-opt", yml]) == 0
    weights = tmp_path / "experiments" / "selfdescribing" / "models" / "net_g_latest.pth"
    photo = tmp_path / "in.png"
    assert cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (14, 13, 3), dtype=np.uint8))
    assert main(["sr", "-m", str(weights), str(photo), "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["sr", "-m", str(weights), "--opt", yml, str(photo), "-o", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    for name in ("in_x2.png", "in_x2_kernel_png.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # and the options really matter: the same weights built with the release's defaults differ
    state = torch.load(weights, weights_only=True)
    legacy = {"params": without_records(copy.deepcopy(state["params"]))}  # no options anywhere (older files)
    torch.save(legacy, tmp_path / "legacy.pth")
    assert main(["sr", "-m", str(tmp_path / "legacy.pth"), str(photo), "-o", str(tmp_path / "c")]) == 1
