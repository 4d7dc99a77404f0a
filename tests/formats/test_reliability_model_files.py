"""Hostile input to MANet's released-file loading and to `save_model`: each error names the file, the key or
tensor (as the file spells it) and what was expected, and a file that could never load is not written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from _helpers import randomise
from torch import Tensor, nn

import dan_blocks
from dan_blocks.archs import MANetEstimator, MANetRRDB
from dan_blocks.formats import from_manet_state_dict, load_manet_checkpoint, to_manet_state_dict
from dan_blocks.utils import CheckpointMismatchError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

E = "kernel_estimation."
RRDB = {"nf": 4, "nb": 1, "gc": 4, "scale": 2, "kernel_size": 3, "code_length": 2, "manet_nf": 4, "manet_nb": 1}


def _stage1() -> dict[str, Tensor]:
    """A tiny MANet stage-1 file's tensors (MANet's layout), from the real estimator."""
    est = randomise(MANetEstimator(nf=4, num_blocks=1, kernel_size=3, scale=2, use_sr=False), 0)
    return to_manet_state_dict(est.state_dict())


def _stage3() -> dict[str, Tensor]:
    """A tiny MANet stage-3 file's tensors (MANet's layout), from the real MANetRRDB."""
    return to_manet_state_dict(randomise(MANetRRDB(**RRDB), 1).state_dict())


def _save(state: dict[str, Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


# -- B13: missing keys are named as the file spells them -------------------------------------------------
@pytest.mark.parametrize(
    ("make", "key", "ours"),
    [(_stage1, E + "m_body.res.0.fc0.0.weight", "body.0.body.0.fc.0.0.weight"),
     (_stage3, "RRDB_trunk.0.RDB1.conv2.weight", "restorer.trunk.0.rdb1.conv2.weight")],
)
def test_a_missing_key_is_named_in_manets_layout_with_the_file(make, key: str, ours: str, tmp_path) -> None:
    state = make()
    assert key in state
    path = _save({k: v for k, v in state.items() if k != key}, tmp_path / "manet_damaged.pth")
    for load in (dan_blocks.load_model, load_manet_checkpoint):
        with pytest.raises(CheckpointMismatchError, match=r"manet_damaged\.pth") as info:
            load(path)
        assert f"missing keys (1): {key}" in str(info.value)
        assert ours not in str(info.value)


# -- B14: an unknown key ---------------------------------------------------------------------------------
def test_an_unknown_estimator_key_is_an_unexpected_key_naming_the_file(tmp_path) -> None:
    state = dict(_stage1(), **{E + "m_foo.weight": torch.zeros(2)})
    path = _save(state, tmp_path / "stage1_extra.pth")
    with pytest.raises(CheckpointMismatchError, match=r"stage1_extra\.pth[\s\S]*unexpected keys \(1\): "
                                                      r"kernel_estimation\.m_foo\.weight"):
        load_manet_checkpoint(path)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected tensor 'kernel_estimation\.m_foo\.weight'"):
        from_manet_state_dict(state)
    with pytest.raises(CheckpointMismatchError, match=r"in_memory\.pth: unexpected tensor 'kernel_estimation\.m_foo"):
        from_manet_state_dict(state, where="in_memory.pth")


# -- B15: a malformed pca_matrix, or not a mapping -------------------------------------------------------
_BAD_PCA = [
    (torch.zeros(9), r"tensor 'pca_matrix' has shape \(9,\), expected \(1, k\*k, C, 1, 1\)"),
    (torch.zeros(1, 440, 2, 1, 1), r"tensor 'pca_matrix' has shape \(1, 440, 2, 1, 1\), expected \(1, k\*k, C, 1, 1\)"
                                   r".*440 rows are not k\*k for an odd k"),
    (torch.zeros(1, 16, 2, 1, 1), r"tensor 'pca_matrix' has shape \(1, 16, 2, 1, 1\).*16 rows are not k\*k for an odd"),
    (torch.zeros(2, 9, 2, 1, 1), r"tensor 'pca_matrix' has shape \(2, 9, 2, 1, 1\), expected \(1, k\*k, C, 1, 1\)"),
    ("pca", r"'pca_matrix' is a str, expected a tensor of shape \(1, k\*k, C, 1, 1\)"),
]


@pytest.mark.parametrize(("bad", "message"), _BAD_PCA)
def test_from_manet_state_dict_names_a_malformed_pca_matrix(bad, message: str) -> None:
    with pytest.raises(CheckpointMismatchError, match=message):
        from_manet_state_dict(dict(_stage3(), pca_matrix=bad))


def test_from_manet_state_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(TypeError, match=r"from_manet_state_dict: expected a state dict \(a mapping.*got list"):
        from_manet_state_dict(list(_stage3()))  # type: ignore[arg-type]


def test_an_option_file_pointing_at_a_manet_file_with_a_bad_pca_matrix(tmp_path) -> None:
    weights = _save(dict(_stage3(), pca_matrix=torch.zeros(1, 440, 2, 1, 1)), tmp_path / "stage3.pth")
    opt = tmp_path / "opt.yml"
    opt.write_text(yaml.safe_dump({"network_g": {"type": "MANetRRDB", **RRDB},
                                   "path": {"pretrain_network_g": str(weights)}}))
    with pytest.raises(CheckpointMismatchError, match=r"tensor 'pca_matrix' has shape \(1, 440, 2, 1, 1\)"):
        dan_blocks.load_model(opt)
    assert isinstance(dan_blocks.load_model(_save(_stage3(), tmp_path / "good.pth"), opt=str(opt)), MANetRRDB)


# -- B7: the stage-3 pca_matrix, through the loaders, names the file ---------------------------------------
@pytest.mark.parametrize(("bad", "message"), _BAD_PCA[:3])
def test_loading_a_stage3_file_with_a_bad_pca_matrix_names_file_and_tensor(bad: Tensor, message: str,
                                                                          tmp_path) -> None:
    path = _save(dict(_stage3(), pca_matrix=bad), tmp_path / "stage3_bad_pca.pth")
    for load in (dan_blocks.load_model, load_manet_checkpoint):
        with pytest.raises(CheckpointMismatchError, match=r"stage3_bad_pca\.pth: " + message):
            load(path)
    with pytest.raises(CheckpointMismatchError, match=r"named\.pth: " + message):
        load_manet_checkpoint(dict(_stage3(), pca_matrix=bad), where="named.pth")


def test_a_pca_matrix_for_other_kernels_than_the_estimators_is_named(tmp_path) -> None:
    path = _save(dict(_stage3(), pca_matrix=torch.zeros(1, 25, 2, 1, 1)), tmp_path / "stage3_k5.pth")
    with pytest.raises(CheckpointMismatchError, match=r"stage3_k5\.pth: tensor 'pca_matrix' has 25 rows .*"
                                                      r"'kernel_estimation\.m_tail\.weight' gives 9 kernel taps: "
                                                      r"expected shape \(1, 9, C, 1, 1\)"):
        dan_blocks.load_model(path)


def test_the_sizes_tensors_are_still_named_with_the_file(tmp_path) -> None:
    path = _save(dict(_stage1(), **{E + "m_tail.weight": torch.zeros(9)}), tmp_path / "stage1_tail.pth")
    with pytest.raises(CheckpointMismatchError, match=r"stage1_tail\.pth: tensor 'kernel_estimation\.m_tail\.weight' "
                                                      r"has shape \(9,\), expected a non-empty 4-d tensor"):
        dan_blocks.load_model(path)
    good = _save(_stage3(), tmp_path / "stage3_good.pth")
    assert isinstance(dan_blocks.load_model(good), MANetRRDB)  # the checks pass a real file


# -- B26: save_model's argument types --------------------------------------------------------------------
def _estimator() -> MANetEstimator:
    return MANetEstimator(nf=4, kernel_size=3, scale=2)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((None, "x.pth"), {"network_g": "DANv1"}, r"network_g must be a mapping .*'type' key.*got str 'DANv1'"),
        (("some/file.pth", "x.pth"), {}, r"model must be an nn\.Module.*got str 'some/file\.pth'.*swapped"),
        ((None, "x.pth"), {"extra_states": {"params_ema": 5}},
         r"extra_states\['params_ema'\] must be a state dict .* or an nn\.Module, got int 5"),
        ((None, "x.pth"), {"extra_states": [1]}, r"extra_states must be a mapping of entry name -> state dict"),
        ((None, "x.pth"), {"extra_states": {"params_ema": {"w": 1.0}}},
         r"extra_states\['params_ema'\]\['w'\] is a float, expected a tensor"),
        ((None, 3), {}, r"path must be a file path.*got int 3"),
    ],
)
def test_save_model_type_checks_its_arguments(args: tuple, kwargs: dict, message: str, tmp_path) -> None:
    model = _estimator() if args[0] is None else args[0]
    path = tmp_path / args[1] if isinstance(args[1], str) else args[1]
    with pytest.raises(TypeError, match=message):
        dan_blocks.save_model(model, path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_save_model_refuses_extra_states_that_overwrite_the_models(tmp_path) -> None:
    model = _estimator()
    with pytest.raises(ValueError, match=r"extra_states\['params'\] would overwrite the model's own state dict"):
        dan_blocks.save_model(model, tmp_path / "m.pth", extra_states={"params": model.state_dict()})
    dan_blocks.save_model(model, tmp_path / "m.pth", extra_states={"params_ema": model})  # a module is accepted
    loaded = dan_blocks.load_model(tmp_path / "m.pth", param_key="params_ema")
    assert loaded.state_dict().keys() == model.state_dict().keys()


# -- B27: network_g must describe the module -------------------------------------------------------------
class PlainModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)


def test_save_model_refuses_network_g_that_does_not_build_the_module(tmp_path) -> None:
    path = tmp_path / "x.pth"
    with pytest.raises(ValueError, match=r"network_g \(type 'DANv1'\) does not describe the PlainModule[\s\S]*"
                                         r"unexpected keys \(2\): conv\.weight, conv\.bias"):
        dan_blocks.save_model(PlainModule(), path, network_g={"type": "DANv1"})
    options = {"type": "MANetEstimator", "nf": 8, "kernel_size": 3, "scale": 2}
    with pytest.raises(ValueError, match=re.escape("head.weight: module (4, 3, 3, 3), network_g builds (8, 3, 3, 3)")):
        dan_blocks.save_model(_estimator(), path, network_g=options)
    assert not path.exists()
    model = randomise(_estimator(), 3)
    dan_blocks.save_model(model, path, network_g=dict(options, nf=4))  # options that describe it: written
    torch.testing.assert_close(dan_blocks.load_model(path).state_dict(), model.state_dict())
