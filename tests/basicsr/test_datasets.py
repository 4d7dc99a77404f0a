"""BlindSRHRDataset / BlindSRPairedDataset built through BasicSR, DIV2KRK reader, built-in data."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.io
import skimage.data
import torch

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.data import BUILTIN_SETS, load_builtin, make_testset, read_kernel
from dan_blocks.data.image_io import write_image


def _build(opt: dict) -> torch.utils.data.Dataset:
    from basicsr.data import build_dataset

    return build_dataset(opt)


def _hr_opt(root: str, **extra: object) -> dict:
    return {
        "name": "train",
        "type": "BlindSRHRDataset",
        "phase": "train",
        "scale": 4,
        "dataroot_gt": root,
        "io_backend": {"type": "disk"},
        "gt_size": 32,
        "use_hflip": True,
        "use_rot": True,
        **extra,
    }


@pytest.fixture()
def hr_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "hr"
    folder.mkdir()
    write_image(folder / "x.png", skimage.data.astronaut()[:50, :45])
    write_image(folder / "y.png", skimage.data.chelsea()[:40, :60])
    return folder


def test_builtin_sets_are_fixed_rgb_photographs() -> None:
    assert set(BUILTIN_SETS["skimage-train"]).isdisjoint(BUILTIN_SETS["skimage-test"])
    images = load_builtin("builtin:skimage-test")
    assert [n for n, _ in images] == ["astronaut", "chelsea", "coffee"]
    assert np.array_equal(images[0][1], skimage.data.astronaut())
    assert all(img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 for _, img in images)
    with pytest.raises(ValueError, match="skimage-test"):
        load_builtin("builtin:skimage-tst")


def test_builtin_training_photographs_are_natural_rgb_and_never_a_test_photograph() -> None:
    train = load_builtin("builtin:skimage-train")
    assert len(train) >= 10 and all(img.dtype == np.uint8 and img.shape[2] == 3 for _, img in train)
    left, right = skimage.data.stereo_motorcycle()[:2]
    by_name = dict(train)
    assert np.array_equal(by_name["motorcycle_left"], left) and np.array_equal(by_name["motorcycle_right"], right)
    camera = skimage.data.camera()  # grey photographs: replicated to three equal channels
    assert all(np.array_equal(by_name["camera"][..., c], camera) for c in range(3))
    tests = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    for name, img in train:  # held out by content, not only by name (skimage.data.cat is chelsea)
        assert not any(img.shape == t.shape and np.array_equal(img, t) for t in tests), name
    assert min(min(img.shape[:2]) for _, img in train) >= 256  # the x4 option files' HR patches fit every image


def test_hr_dataset_from_folder_gives_augmented_patches(hr_dir: pathlib.Path) -> None:
    import random

    ds = _build(_hr_opt(str(hr_dir)))
    assert len(ds) == 2
    random.seed(0)
    item = ds[0]
    assert item["gt"].shape == (3, 32, 32) and item["gt"].dtype == torch.float32
    assert item["gt_path"].endswith("x.png")
    # every patch is a flipped/rotated crop of the source: its pixel multiset matches some crop's
    src = torch.from_numpy(skimage.data.astronaut()[:50, :45].astype(np.float32) / 255).permute(2, 0, 1)
    patch_sorted = item["gt"].flatten().sort().values
    found = any(
        torch.equal(src[:, t : t + 32, s : s + 32].flatten().sort().values, patch_sorted)
        for t in range(50 - 31)
        for s in range(45 - 31)
    )
    assert found


def test_hr_dataset_validation_phase_mod_crops(hr_dir: pathlib.Path) -> None:
    ds = _build({**_hr_opt(str(hr_dir)), "phase": "val", "name": "val"})
    assert ds[0]["gt"].shape == (3, 48, 44)


def test_hr_dataset_builtin_and_lmdb(tmp_path: pathlib.Path, hr_dir: pathlib.Path) -> None:
    ds = _build(_hr_opt("builtin:skimage-train", gt_size=48))
    assert len(ds) == len(BUILTIN_SETS["skimage-train"]) and ds[1]["gt"].shape == (3, 48, 48)
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    make_lmdb_from_imgs(str(hr_dir), str(tmp_path / "hr.lmdb"), ["x.png", "y.png"], ["x", "y"])
    lm = _build({**_hr_opt(str(tmp_path / "hr.lmdb")), "io_backend": {"type": "lmdb"}, "phase": "val"})
    disk = _build({**_hr_opt(str(hr_dir)), "phase": "val"})
    assert len(lm) == 2 and torch.equal(lm[1]["gt"], disk[1]["gt"])


def test_hr_dataset_errors_name_the_problem(hr_dir: pathlib.Path) -> None:
    with pytest.raises(KeyError, match="gt_sise"):
        _build({**_hr_opt(str(hr_dir)), "gt_sise": 3})
    (hr_dir / "z.png").write_bytes(b"garbage")
    ds = _build(_hr_opt(str(hr_dir)))
    with pytest.raises(OSError, match=r"z\.png"):
        ds[2]
    with pytest.raises(ValueError, match="smaller than gt_size"):
        _build(_hr_opt(str(hr_dir), gt_size=64))[0]


def test_paired_dataset_reads_make_testset_output(hr_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    make_testset(hr_dir, tmp_path / "ts", protocol="gaussian8", scale=2, progress=False)
    ds = _build(
        {
            "name": "val",
            "type": "BlindSRPairedDataset",
            "phase": "val",
            "scale": 2,
            "dataroot": str(tmp_path / "ts"),
            "io_backend": {"type": "disk"},
        }
    )
    assert len(ds) == 16
    item = ds[1]
    assert item["lq"].shape == (3, 25, 22) and item["gt"].shape == (3, 50, 44)
    assert item["kernel"].shape == (21, 21) and ds[9]["lq"].shape == (3, 20, 30)
    assert pathlib.Path(item["lq_path"]).name == "x_sig0.91.png"  # second sigma of x2: 0.8 + 0.8/7
    with pytest.raises(ValueError, match="scale 2"):
        _build({"name": "v", "type": "BlindSRPairedDataset", "scale": 4, "dataroot": str(tmp_path / "ts")})


def test_paired_dataset_reads_the_div2krk_layout(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "DIV2KRK"
    for d in ("gt", "lr_x2", "gt_k_x2"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    kernels = {}
    for n in (1, 2, 10):
        gt = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        write_image(root / "gt" / f"img_{n}_gt.png", gt)
        write_image(root / "lr_x2" / f"im_{n}.png", gt[::2, ::2])
        kernels[n] = rng.random((11, 11))
        scipy.io.savemat(root / "gt_k_x2" / f"kernel_{n}.mat", {"Kernel": kernels[n]})
    ds = _build(
        {"name": "div2krk", "type": "BlindSRPairedDataset", "phase": "val", "scale": 2, "dataroot": str(root)}
    )
    assert len(ds) == 3
    item = ds[2]
    assert (
        pathlib.Path(item["lq_path"]).name == "im_10.png"
        and pathlib.Path(item["gt_path"]).name == "img_10_gt.png"
    )
    np.testing.assert_allclose(item["kernel"].numpy(), kernels[10], atol=1e-7)
    assert item["lq"].shape == (3, 12, 10) and item["gt"].shape == (3, 24, 20)
    torch.testing.assert_close(item["lq"], item["gt"][:, ::2, ::2])
    scipy.io.savemat(root / "bad.mat", {"a": np.ones((3, 3)), "b": np.ones((5, 5))})
    with pytest.raises(ValueError, match=r"bad\.mat"):
        read_kernel(root / "bad.mat")
    with pytest.raises(FileNotFoundError, match="lr_x4"):
        _build({"name": "v", "type": "BlindSRPairedDataset", "scale": 4, "dataroot": str(root)})


def test_paired_dataset_builtin_is_made_in_memory() -> None:
    ds = _build(
        {
            "name": "val",
            "type": "BlindSRPairedDataset",
            "phase": "val",
            "scale": 4,
            "dataroot": "builtin:skimage-test",
            "protocol": "gaussian8",
            "max_size": 64,
        }
    )
    assert len(ds) == 24
    item = ds[0]
    assert item["lq"].shape == (3, 16, 16) and item["kernel"].shape == (21, 21)
    assert pathlib.Path(item["lq_path"]).name == "astronaut_sig1.80.png"
    with pytest.raises(KeyError, match="protcol"):
        _build(
            {
                "name": "v",
                "type": "BlindSRPairedDataset",
                "scale": 4,
                "dataroot": "builtin:skimage-test",
                "protcol": "aniso",
            }
        )


def test_a_misspelled_dataset_key_is_named_with_a_close_match() -> None:
    from dan_blocks.basicsr import BlindSRHRDataset, BlindSRPairedDataset
    from dan_blocks.utils import OptionKeyError

    with pytest.raises(OptionKeyError, match=r"'gt_szie' \(did you mean 'gt_size'\?\).*accepted keys:"):
        BlindSRHRDataset({"dataroot_gt": "builtin:skimage-train", "gt_szie": 32, "scale": 2})
    with pytest.raises(OptionKeyError, match=r"'protocl' \(did you mean 'protocol'\?\)"):
        BlindSRPairedDataset({"dataroot": "builtin:skimage-test", "protocl": "gaussian8", "scale": 2})
