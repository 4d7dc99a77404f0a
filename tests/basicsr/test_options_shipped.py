"""Every shipped option file parses with BasicSR's loader and builds its network, DANModel and datasets.

The expected values are the release's / paper's facts (docs: shared spec "Protocols", "Training"), written
out here independently of the files; data roots are swapped for tiny fixtures.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml

import dan_blocks  # noqa: F401
from dan_blocks.basicsr import DANModel
from dan_blocks.utils import CheckpointMismatchError

OPTIONS = Path(__file__).resolve().parents[2] / "basicsr_options"
TRAIN_FILES = sorted((OPTIONS / "train").glob("*.yml"))
TEST_FILES = sorted((OPTIONS / "test").glob("*.yml"))

#: (version, setting, scale) -> (kernel size, code length): release + fixes (k=31/C=15 for v2 setting-2 x4)
EXPECTED_SIZES = {
    (1, 1, 2): (21, 10), (1, 1, 3): (21, 10), (1, 1, 4): (21, 10), (1, 2, 2): (11, 10), (1, 2, 4): (21, 10),
    (2, 1, 2): (21, 10), (2, 1, 3): (21, 10), (2, 1, 4): (21, 10), (2, 2, 2): (11, 10), (2, 2, 4): (31, 15),
}
#: the paper's setting-1 training sigma ranges
PAPER_SIGMA = {2: (0.2, 2.0), 3: (0.2, 3.0), 4: (0.2, 4.0)}
#: parameter counts of the released networks (shared spec)
RELEASE_PARAMS = {
    (1, 1, 4): 4_329_511, (1, 1, 3): 4_366_439, (1, 1, 2): 4_181_799,
    (2, 1, 4): 4_707_708, (2, 1, 3): 4_733_116, (2, 1, 2): 4_540_028, (2, 2, 4): 4_741_828,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load(path: Path) -> dict[str, Any]:
    from basicsr.utils.options import ordered_yaml

    with open(path) as handle:
        return yaml.load(handle, Loader=ordered_yaml()[0])


def _key(path: Path) -> tuple[int, int, int]:
    stem = path.stem.split("_DANv")[1]  # "2_setting1_x4"
    version, setting, scale = stem.split("_")
    return int(version), int(setting[-1]), int(scale[1:])


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, str]:
    """A tiny HR folder and make-testset outputs (gaussian8 / aniso) for every scale."""
    from dan_blocks.data import make_testset

    root = tmp_path_factory.mktemp("data")
    hr = root / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(hr / "a.png"), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    out = {"hr": str(hr)}
    for scale in (2, 3, 4):
        for protocol in ("gaussian8", "aniso"):
            target = root / f"{protocol}_x{scale}"
            make_testset(str(hr), str(target), protocol=protocol, scale=scale, seed=0)
            out[f"{protocol}_x{scale}"] = str(target)
    return out


def test_the_published_settings_are_all_shipped() -> None:
    assert sorted(_key(p) for p in TRAIN_FILES) == sorted(EXPECTED_SIZES)
    assert sorted(_key(p) for p in TEST_FILES) == sorted(EXPECTED_SIZES)
    assert (OPTIONS / "quickstart.yml").is_file()


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.stem)
def test_train_file_has_the_release_hyper_parameters_with_its_bugs_fixed(path: Path) -> None:
    version, setting, scale = _key(path)
    opt = _load(path)
    kernel_size, code_length = EXPECTED_SIZES[version, setting, scale]
    net = opt["network_g"]
    assert net["type"] == f"DANv{version}" and net["scale"] == scale == opt["scale"]
    assert (net["kernel_size"], net["code_length"], net["setting"], net["loop"]) == (
        kernel_size, code_length, setting, 4)
    assert (net["nf"], net["nb"], net.get("ng")) == ((64, 40, None) if version == 1 else (64, 10, 5))
    train = opt["train"]
    assert train["optim_g"]["lr"] == 4e-4 and train["optim_g"]["betas"] == [0.9, 0.99]
    assert train["lr_E"] == 4e-4  # the release's missing estimator learning rate
    assert train["scheduler"]["gamma"] == 0.5
    if version == 1:
        assert (train["total_iter"], train["scheduler"]["milestones"]) == (400_000, [200_000])
    else:
        assert (train["total_iter"], train["scheduler"]["milestones"]) == (800_000, [200_000, 400_000, 600_000])
    assert train["pixel_opt"]["type"] == "L1Loss" and train["kernel_opt"]["loss_weight"] == 1.0
    assert train["iteration_weights"] is None
    ds = opt["datasets"]["train"]
    assert ds["gt_size"] == 64 * scale and ds["batch_size_per_gpu"] * 8 == 64
    from dan_blocks.degradations import build_degradation

    deg = build_degradation(dict(opt["degradation"]))
    assert deg.scale == scale and deg.kernel_size == kernel_size
    sampler = deg.kernel_sampler
    if setting == 1:
        assert tuple(sampler.sigma) == pytest.approx(PAPER_SIGMA[scale])
    else:
        assert tuple(sampler.sigma) == pytest.approx((0.6, 5.0)) and deg.setting == 2


def _swap_roots(opt: dict[str, Any], fixtures: dict[str, str], setting: int, scale: int) -> None:
    for phase, ds in opt["datasets"].items():
        if phase == "train":
            ds["dataroot_gt"] = "builtin:skimage-train"
            ds["num_worker_per_gpu"] = 0
        else:
            ds["dataroot"] = fixtures[f"{'gaussian8' if setting == 1 else 'aniso'}_x{scale}"]


def _full_opt(opt: dict[str, Any], tmp_path: Path, is_train: bool) -> dict[str, Any]:
    opt = copy.deepcopy(opt)
    opt.update(is_train=is_train, dist=False, rank=0, world_size=1, num_gpu=0)
    paths = {k: str(tmp_path) for k in ("models", "training_states", "log", "visualization")}
    opt["path"].update(paths)
    for phase, ds in opt["datasets"].items():
        ds["phase"] = phase.split("_")[0]
        ds["scale"] = opt["scale"]
    return opt


@pytest.mark.parametrize("path", TRAIN_FILES + TEST_FILES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_file_builds_network_model_and_datasets(path: Path, fixtures, tmp_path) -> None:
    from basicsr.data import build_dataset

    version, setting, scale = _key(path)
    is_train = path.parent.name == "train"
    opt = _full_opt(_load(path), tmp_path, is_train)
    _swap_roots(opt, fixtures, setting, scale)
    opt["path"]["pretrain_network_g"] = None
    model = DANModel(opt)
    net = model.net_g
    kernel_size, code_length = EXPECTED_SIZES[version, setting, scale]
    assert (net.scale, net.kernel_size, net.code_length) == (scale, kernel_size, code_length)
    n_params = sum(p.numel() for p in net.parameters())
    if (version, setting, scale) in RELEASE_PARAMS:
        assert n_params == RELEASE_PARAMS[version, setting, scale]
    for phase, ds_opt in opt["datasets"].items():
        item = build_dataset(ds_opt)[0]
        if phase == "train":
            assert item["gt"].shape == (3, 64 * scale, 64 * scale)
        else:
            assert item["gt"].shape[-1] == scale * item["lq"].shape[-1]
            assert item["kernel"].shape[-1] in (kernel_size, 11, 21, 31)
    if not is_train:
        assert opt["path"]["strict_load_g"] is True and opt["val"]["metrics"]["psnr"]["crop_border"] == scale


def test_test_file_loads_converted_weights_strictly(tmp_path) -> None:
    """A state dict saved as BasicSR does ({'params': ...}) loads strictly through the test option file."""
    opt = _full_opt(_load(OPTIONS / "test" / "test_DANv2_setting2_x4.yml"), tmp_path, False)
    opt["datasets"] = {}
    opt["path"]["pretrain_network_g"] = None
    source = DANModel(opt)
    weights = tmp_path / "w.pth"
    torch.save({"params": source.net_g.state_dict()}, weights)
    opt["path"]["pretrain_network_g"] = str(weights)
    loaded = DANModel(opt)
    for key, value in source.net_g.state_dict().items():
        assert torch.equal(loaded.net_g.state_dict()[key], value)
    broken = {k: v for k, v in source.net_g.state_dict().items() if "tail" not in k}
    torch.save({"params": broken}, weights)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)w\.pth \[params\] does not match .*missing keys.*tail"):
        DANModel(opt)
    assert os.path.isfile(weights)
