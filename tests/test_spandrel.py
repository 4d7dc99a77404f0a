"""dan_blocks.spandrel: the real spandrel package (from the registry) loads DAN release files, dan-blocks model
files and MANet's stage-3 file, and its descriptors give load_model's final SR (clamped to [0, 1] by spandrel)."""

from __future__ import annotations

import pytest
import torch

spandrel = pytest.importorskip("spandrel")

from _helpers import randomise  # noqa: E402

from dan_blocks import load_model  # noqa: E402
from dan_blocks.archs import DANv1, DANv2, MANetEstimator, MANetRRDB  # noqa: E402
from dan_blocks.formats import save_model, to_manet_state_dict, to_release_state_dict  # noqa: E402
from dan_blocks.spandrel import ARCH_IDS, install  # noqa: E402


def _lr(h: int = 11, w: int = 14) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def loader() -> spandrel.ModelLoader:
    install()
    install()  # twice is harmless
    return spandrel.ModelLoader()


def _expected(path, lr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(path).super_resolve(lr).clamp(0, 1)


def test_install_adds_both_architectures_ahead_of_the_builtins(loader) -> None:
    ids = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures("detection")]
    assert set(ARCH_IDS) <= set(ids)
    assert ids.index("MANet") < ids.index("ESRGAN")  # ESRGAN's detection would claim MANet's RRDB keys


@pytest.mark.parametrize("version", [1, 2])
def test_release_layout_file(loader, tmp_path, version: int) -> None:
    if version == 1:
        model = DANv1(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=2, est_nf=8, est_nb=1,
                      reduction=4)
    else:
        model = DANv2(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=1, ng=1, est_nf=8,
                      est_nb=1, est_tail_nf=8)
    path = tmp_path / f"danv{version}_x2.pth"
    torch.save(to_release_state_dict(randomise(model, version).state_dict()), path)
    desc = loader.load_from_file(path)
    assert isinstance(desc, spandrel.ImageModelDescriptor)
    assert desc.architecture.id == "DAN" and desc.scale == 2 and desc.purpose == "SR"
    assert desc.tiling == spandrel.ModelTiling.INTERNAL  # one kernel per image: the call tiles exactly inside
    assert f"DANv{version}" in desc.tags
    assert desc.supports_half and desc.supports_bfloat16 == (version == 1)  # measured: docs/hosts.md
    lr = _lr()
    sr = desc(lr)
    assert sr.shape == (1, 3, 22, 28)
    torch.testing.assert_close(sr, _expected(path, lr), rtol=1e-5, atol=1e-6)


def test_dan_blocks_model_file_keeps_options_the_tensors_cannot_tell(loader, tmp_path) -> None:
    # residual="add" and est_input_norm=True cannot be read off the tensors: they travel in the state dict
    model = randomise(DANv2(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=1, ng=1,
                             est_nf=8, est_nb=1, est_tail_nf=8, residual="add", est_input_norm=True, loop=2), 3)
    path = tmp_path / "net_g_latest.pth"
    save_model(model, path)
    desc = loader.load_from_file(path)
    assert desc.architecture.id == "DAN"
    got = desc.model
    assert got.loop == 2 and got.restorer.body[0].residual == "add" and got.estimator.input_norm
    lr = _lr(9, 12)
    with torch.no_grad():
        direct = model.super_resolve(lr).clamp(0, 1)
    torch.testing.assert_close(desc(lr), direct, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(desc(lr), _expected(path, lr), rtol=0, atol=0)
    double = randomise(DANv2(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=1, ng=1,
                              est_nf=8, est_nb=1, est_tail_nf=8, loop=2), 3)
    with torch.no_grad():
        assert (double.super_resolve(lr).clamp(0, 1) - direct).abs().max() > 1e-4  # the options matter


def test_manet_stage3_file(loader, tmp_path) -> None:
    model = randomise(MANetRRDB(nf=8, nb=1, gc=4, scale=2, kernel_size=5, code_length=3, manet_nf=8), 5)
    path = tmp_path / "stage3_MANet+RRDB_x2.pth"
    torch.save(to_manet_state_dict(model.state_dict()), path)
    desc = loader.load_from_file(path)
    assert desc.architecture.id == "MANet" and desc.scale == 2
    assert desc.tiling == spandrel.ModelTiling.INTERNAL
    lr = _lr(13, 10)  # not multiples of 8
    torch.testing.assert_close(desc(lr), _expected(path, lr), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(desc(lr), model.super_resolve(lr).clamp(0, 1), rtol=1e-5, atol=1e-6)


def test_manet_stage1_file_is_not_an_sr_model(loader, tmp_path) -> None:
    est = MANetEstimator(nf=8, kernel_size=5, use_sr=False, pad_multiple=8)
    path = tmp_path / "stage1_MANet_x4.pth"
    torch.save(to_manet_state_dict(est.state_dict()), path)
    with pytest.raises(spandrel.UnsupportedModelError, match=r"stage-1 file: a kernel estimator.*not a super-resol"):
        loader.load_from_file(path)
