"""``dan-blocks sr`` on built-in photos in every image mode, with released / BasicSR checkpoints and options."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest
import torch
from skimage import data

import dan_blocks
import dan_blocks.basicsr
from dan_blocks.cli.main import main
from dan_blocks.cli.sr import output_names
from dan_blocks.formats import to_release_state_dict

SCALE = 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _v2() -> dan_blocks.DAN:
    torch.manual_seed(0)
    pca = dan_blocks.default_pca(21, 10).matrix.clone()  # no mean: the release's format
    return dan_blocks.dan_v2(SCALE, pca=pca, nf=16, nb=1, ng=2, est_nf=16, est_nb=1, est_tail_nf=16).eval()


def _v1() -> dan_blocks.DAN:
    torch.manual_seed(1)
    return dan_blocks.dan_v1(SCALE, nf=16, nb=2, est_nf=16, est_nb=1, loop=2).eval()  # default (centred) PCA


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sr")
    v2, v1 = _v2(), _v1()
    torch.save(to_release_state_dict(v2.state_dict()), root / "danv2_release.pth")  # released layout
    torch.save({"params": v1.state_dict()}, root / "v1_basicsr.pth")  # BasicSR checkpoint
    (root / "v1.yml").write_text(
        "network_g:\n  type: DANv1\n  scale: 2\n  nf: 16\n  nb: 2\n  est_nf: 16\n  est_nb: 1\n  loop: 2\n"
        f"path:\n  pretrain_network_g: {root / 'v1_basicsr.pth'}\n  param_key_g: params\n  strict_load_g: true\n"
    )
    inputs = root / "in"
    inputs.mkdir()
    rgb = np.ascontiguousarray(data.astronaut()[90:112, 180:199])  # 22 x 19, odd width
    grey = np.ascontiguousarray(data.camera()[200:217, 300:320])  # 17 x 20
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).round().astype(np.uint8), (rgb.shape[0], 1))
    bgr = rgb[:, :, ::-1]
    for name, img in {
        "rgb.png": bgr, "rgb.jpg": bgr, "rgb.tif": bgr, "grey.png": grey, "grey.jpg": grey, "grey.tif": grey,
        "rgba.png": np.dstack([bgr, alpha]), "rgba.tif": np.dstack([bgr, alpha]),
    }.items():
        assert cv2.imwrite(str(inputs / name), np.ascontiguousarray(img))
    return {"root": root, "in": inputs, "v2": v2, "v1": v1, "rgb": rgb, "grey": grey, "alpha": alpha}


def _run(*args: object) -> int:
    return main(["sr", "--no-progress", *map(str, args)])


def _sr(model: dan_blocks.DAN, rgb: np.ndarray) -> tuple[np.ndarray, dan_blocks.DANOutput]:
    """Independent expectation: the untiled forward on the RGB image, as float (H, W, 3) in RGB order."""
    lr = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = model(lr)
    return out.sr[0].permute(1, 2, 0).numpy(), out


def test_released_checkpoint_every_mode_tiled(setup: dict, tmp_path: pathlib.Path) -> None:
    out_dir = tmp_path / "out"
    assert _run("-m", setup["root"] / "danv2_release.pth", setup["in"], "-o", out_dir, "--tile", 7) == 0
    sr, ref = _sr(setup["v2"], setup["rgb"])
    expected = np.clip(np.round(sr * 255), 0, 255)
    got = cv2.imread(str(out_dir / "rgb_png_x2.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1].astype(np.float64)
    assert got.shape == (44, 38, 3)
    assert np.abs(got - expected).max() <= 1  # lossless PNG: rounding only
    assert cv2.imread(str(out_dir / "rgb_tif_x2.tif"), cv2.IMREAD_UNCHANGED).shape == (44, 38, 3)
    assert cv2.imread(str(out_dir / "rgb_jpg_x2.jpg"), cv2.IMREAD_UNCHANGED).shape == (44, 38, 3)
    # kernel of the last iteration, as a .npy and a normalised enlarged picture
    kernel = np.load(out_dir / "rgb_png_x2_kernel_png.npy")
    assert np.allclose(kernel, ref.kernels[-1][0].numpy(), atol=1e-6)
    picture = cv2.imread(str(out_dir / "rgb_png_x2_kernel_png.png"), cv2.IMREAD_UNCHANGED)
    assert picture.ndim == 2 and picture.shape[0] >= 256 and picture.shape[0] % 21 == 0 and picture.max() == 255
    factor = picture.shape[0] // 21
    assert np.abs(picture[::factor, ::factor] - np.round(255 * kernel / kernel.max())).max() <= 1
    # grey in -> grey out: BT.601 luma of the RGB result of the replicated grey image
    grey_sr, _ = _sr(setup["v2"], np.repeat(setup["grey"][:, :, None], 3, axis=2))
    luma = cv2.cvtColor(np.ascontiguousarray(grey_sr.astype(np.float32)), cv2.COLOR_RGB2GRAY)
    for name in ("grey_png_x2.png", "grey_tif_x2.tif"):
        got_grey = cv2.imread(str(out_dir / name), cv2.IMREAD_UNCHANGED)
        assert got_grey.shape == (34, 40)
        assert np.abs(got_grey.astype(np.float64) - np.clip(np.round(luma * 255), 0, 255)).max() <= 1
    assert cv2.imread(str(out_dir / "grey_jpg_x2.jpg"), cv2.IMREAD_UNCHANGED).ndim == 2
    # RGBA: colour from the network, alpha by MATLAB bicubic (BasicSR's own imresize)
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    expected_alpha = basicsr_imresize(setup["alpha"][:, :, None].astype(np.float64) / 255, SCALE)[:, :, 0]
    for name in ("rgba_png_x2.png", "rgba_tif_x2.tif"):
        rgba = cv2.imread(str(out_dir / name), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (44, 38, 4)
        assert np.abs(rgba[:, :, 3] - np.clip(np.round(expected_alpha * 255), 0, 255)).max() <= 1
        assert np.abs(rgba[:, :, 2::-1].astype(np.float64) - expected).max() <= 1


def test_basicsr_checkpoint_option_file_and_untiled_agree(setup: dict, tmp_path: pathlib.Path) -> None:
    image = setup["in"] / "rgb.png"
    sr, ref = _sr(setup["v1"], setup["rgb"])
    expected = np.clip(np.round(sr * 255), 0, 255)
    runs = {
        "ckpt": ("-m", setup["root"] / "v1_basicsr.pth", "--arch", "DANv1", "--scale", 2),
        "yml": ("-m", setup["root"] / "v1.yml", "--tile", 5),
        "opt": ("-m", setup["root"] / "v1_basicsr.pth", "--opt", setup["root"] / "v1.yml", "--tile", 6),
    }
    for name, args in runs.items():
        assert _run(*args, image, "-o", tmp_path / name) == 0, name
        got = cv2.imread(str(tmp_path / name / "rgb_x2.png"))[:, :, ::-1].astype(np.float64)
        assert np.abs(got - expected).max() <= 1, name
        # v1 estimates codes: the kernel is their reconstruction m + (c - m P) P^T with m the setting-1 training
        # mean (every route builds a setting-1 DANv1, whose shipped PCA file carries it)
        matrix = setup["v1"].pca.matrix.double().numpy()
        mean = dan_blocks.default_pca(21, 10, 1).kernel_mean.double().numpy()
        code = ref.codes[-1][0].double().numpy()
        decoded = mean + (code - mean @ matrix) @ matrix.T
        kernel = np.load(tmp_path / name / "rgb_x2_kernel_png.npy")
        assert np.allclose(kernel.reshape(-1), decoded, atol=1e-5), name


def test_bad_files_are_reported_and_skipped(setup: dict, tmp_path: pathlib.Path, capsys) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "ok.png"), setup["rgb"][:, :, ::-1])
    code = _run("-m", setup["root"] / "danv2_release.pth", folder, tmp_path / "missing.png", "-o", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 1
    for name in ("broken.png", "empty.jpg", "missing.png"):
        assert name in err
    assert (tmp_path / "o" / "ok_x2.png").exists()
    assert not (tmp_path / "o" / "broken_x2.png").exists()


def test_nothing_is_overwritten_without_the_flag(setup: dict, tmp_path: pathlib.Path, capsys) -> None:
    image, out_dir = setup["in"] / "grey.png", tmp_path / "o"
    out_dir.mkdir()
    target = out_dir / "grey_x2.png"
    target.write_bytes(b"keep me")
    assert _run("-m", setup["root"] / "danv2_release.pth", image, "-o", out_dir) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert not (out_dir / "grey_x2_kernel_png.npy").exists()
    assert _run("-m", setup["root"] / "danv2_release.pth", image, "-o", out_dir, "--overwrite") == 0
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).shape == (34, 40)


def test_model_errors_are_one_line(setup: dict, tmp_path: pathlib.Path, capsys) -> None:
    image = setup["in"] / "rgb.png"
    assert _run("-m", tmp_path / "nope.pth", image, "-o", tmp_path / "o") == 1
    assert "nope.pth" in capsys.readouterr().err
    assert _run("-m", setup["root"] / "danv2_release.pth", "--arch", "DANv1", image, "-o", tmp_path / "o") == 1
    assert "DAN v2" in capsys.readouterr().err
    assert _run("-m", setup["root"] / "danv2_release.pth", "--scale", 4, image, "-o", tmp_path / "o") == 1
    assert "x2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_v2_add_residual_needs_the_flag(setup: dict, tmp_path: pathlib.Path, capsys) -> None:
    torch.manual_seed(2)
    model = dan_blocks.dan_v2(SCALE, nf=16, nb=1, ng=2, est_nf=16, est_nb=1, est_tail_nf=16, residual="add").eval()
    # an older file: the state dict without the options record that newer files carry ("dan_blocks~options")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("dan_blocks~")}
    torch.save({"params": state}, tmp_path / "add.pth")
    expected = np.clip(np.round(_sr(model, setup["rgb"])[0] * 255), 0, 255)
    image = setup["in"] / "rgb.png"
    args = ("--residual", "add", "--est-input-norm", "false", "--tile", 8, "--upsampler-tile", 4)
    assert _run("-m", tmp_path / "add.pth", *args, image, "-o", tmp_path / "a") == 0
    got = cv2.imread(str(tmp_path / "a" / "rgb_x2.png"))[:, :, ::-1].astype(np.float64)
    assert np.abs(got - expected).max() <= 1
    # without the flags: an error naming what the tensors cannot tell, not the release's "double" silently
    assert _run("-m", tmp_path / "add.pth", image, "-o", tmp_path / "d") == 1
    assert "cannot tell residual and est_input_norm" in capsys.readouterr().err
    assert not (tmp_path / "d" / "rgb_x2.png").exists()
    # a wrong explicit choice is the user's: it loads, and the image differs
    assert _run("-m", tmp_path / "add.pth", "--residual", "double", "--est-input-norm", "false", image, "-o",
                tmp_path / "w") == 0
    wrong = cv2.imread(str(tmp_path / "w" / "rgb_x2.png"))[:, :, ::-1].astype(np.float64)
    assert np.abs(wrong - expected).max() > 1


def test_output_names_are_unique() -> None:
    names = output_names(["a/x.png", "b/x.jpg", "c/y.png", "d/x.png"], 4)
    assert len(set(names)) == 4
    assert names[2] == "y_x4"
    assert output_names(["a/z.tif"], 2) == ["z_x2"]


def test_bf16_precision_is_close_to_fp32(setup: dict, tmp_path: pathlib.Path) -> None:
    image = setup["in"] / "rgb.png"
    expected = np.clip(np.round(_sr(setup["v2"], setup["rgb"])[0] * 255), 0, 255)
    assert _run("-m", setup["root"] / "danv2_release.pth", image, "-o", tmp_path, "--precision", "bf16") == 0
    got = cv2.imread(str(tmp_path / "rgb_x2.png"))[:, :, ::-1].astype(np.float64)
    assert np.abs(got - expected).mean() < 1.0 and np.abs(got - expected).max() <= 12
    assert np.load(tmp_path / "rgb_x2_kernel_png.npy").dtype == np.float32
