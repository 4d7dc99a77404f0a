"""Issue 22 (hosts): a network saved the way hosts save it (torch.save(model.state_dict()), safetensors, spandrel's
descriptor state dict) loads back through load_model and through spandrel with identical outputs; params_ema is
chosen the same way everywhere; a future model-file format is refused with its version named."""

from __future__ import annotations

import pytest
import torch

spandrel = pytest.importorskip("spandrel")
safetensors_torch = pytest.importorskip("safetensors.torch")

from _helpers import randomise  # noqa: E402

from dan_blocks import load_model, save_model  # noqa: E402
from dan_blocks.archs import DANv1, DANv2, MANetRRDB  # noqa: E402
from dan_blocks.formats import to_manet_state_dict, to_release_state_dict  # noqa: E402
from dan_blocks.spandrel import install  # noqa: E402
from dan_blocks.utils import CheckpointReadError  # noqa: E402
from dan_blocks.utils.state_record import RECORD_KEY, decode_record, encode_record  # noqa: E402

PCA = torch.eye(49)[:, :4]


def _models() -> dict[str, torch.nn.Module]:
    return {
        "v1": randomise(DANv1(scale=2, kernel_size=7, code_length=4, pca=PCA, nf=8, nb=2, est_nf=8, est_nb=1,
                              reduction=2, loop=3), 1),
        # options the tensors cannot tell, and another reduction of the estimator's input
        "v2": randomise(DANv2(scale=2, kernel_size=7, code_length=4, pca=PCA, nf=8, nb=1, ng=1, est_nf=8, est_nb=1,
                              est_tail_nf=8, residual="add", est_input_norm=True, loop=2), 2),
        "manet": randomise(MANetRRDB(nf=8, nb=1, gc=4, scale=2, kernel_size=5, code_length=3, manet_nf=8), 3),
    }


@pytest.fixture(scope="module")
def loader() -> spandrel.ModelLoader:
    install()
    return spandrel.ModelLoader()


def _sr(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.super_resolve(lr).clamp(0, 1)


LR = torch.rand(1, 3, 11, 13, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["v1", "v2", "manet"])
@pytest.mark.parametrize("how", ["pth", "safetensors", "spandrel"])
def test_a_host_saved_network_loads_back_everywhere(loader, tmp_path, name: str, how: str) -> None:
    model = _models()[name].eval()
    expected = _sr(model, LR)  # the network that was saved, before any file
    if how == "spandrel":  # chaiNNer's Save Model: the state dict of the descriptor spandrel loaded
        torch.save(model.state_dict(), tmp_path / "first.pth")
        state = loader.load_from_file(tmp_path / "first.pth").model.state_dict()
        path = tmp_path / "saved.safetensors"
        safetensors_torch.save_file(state, path)
    elif how == "safetensors":
        path = tmp_path / "net.safetensors"
        safetensors_torch.save_file(model.state_dict(), path)
    else:
        path = tmp_path / "net.pth"
        torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    torch.testing.assert_close(_sr(loaded, LR), expected, rtol=0, atol=0)
    desc = loader.load_from_file(path)
    assert desc.architecture.id == ("MANet" if name == "manet" else "DAN")  # a MANet state dict is not DAN's
    torch.testing.assert_close(desc(LR), expected, rtol=0, atol=0)


def test_the_record_is_one_entry_at_the_top_and_strict_loading_still_works() -> None:
    model = _models()["v2"]
    state = model.state_dict()
    assert [k for k in state if "~" in k] == [RECORD_KEY]  # not one per registered sub-module
    assert decode_record(state[RECORD_KEY])["network_g"]["residual"] == "add"
    assert [k for k in model.restorer.state_dict() if "~" in k] == [RECORD_KEY]  # a part alone carries its own
    assert decode_record(model.restorer.state_dict()[RECORD_KEY])["network_g"]["type"] == "RestorerV2"
    fresh = DANv2(scale=2, kernel_size=7, code_length=4, pca=PCA, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8,
                  residual="add", est_input_norm=True, loop=2)
    fresh.load_state_dict(state)  # strict, with the record
    fresh.load_state_dict({k: v for k, v in state.items() if k != RECORD_KEY})  # strict, without (older files)
    assert len(to_release_state_dict(state)) == len(state) - 2  # no record, no pca.mean: the release's layout


def test_a_loaded_manet_is_contiguous_and_saves_as_safetensors(tmp_path) -> None:
    release = tmp_path / "stage3_MANet+RRDB_x2.pth"
    torch.save(to_manet_state_dict(_models()["manet"].state_dict()), release)
    model = load_model(release)
    assert all(t.is_contiguous() for t in model.state_dict().values())
    safetensors_torch.save_file(model.state_dict(), tmp_path / "m.safetensors")  # refused before: pca.matrix
    assert isinstance(load_model(tmp_path / "m.safetensors"), MANetRRDB)


def test_params_ema_is_chosen_the_same_way_everywhere(loader, tmp_path) -> None:
    model, ema = _models()["v2"].eval(), randomise(_models()["v2"], 9).eval()
    path = tmp_path / "net_g_latest.pth"
    save_model(model, path, extra_states={"params_ema": ema})
    expected = _sr(ema, LR)
    assert (expected - _sr(model, LR)).abs().max() > 1e-3  # the two weight sets differ
    torch.testing.assert_close(_sr(load_model(path), LR), expected, rtol=0, atol=0)
    torch.testing.assert_close(loader.load_from_file(path)(LR), expected, rtol=0, atol=0)
    torch.testing.assert_close(_sr(load_model(path, param_key="params"), LR), _sr(model, LR), rtol=0, atol=0)


def test_a_future_format_is_refused_with_its_version(tmp_path) -> None:
    state = _models()["v1"].state_dict()
    meta = decode_record(state[RECORD_KEY])
    state[RECORD_KEY] = encode_record({**meta, "format": "dan_blocks.model/7", "version": "9.0.0"})
    torch.save(state, tmp_path / "future.pth")
    with pytest.raises(CheckpointReadError, match=r"format version 7 .*dan-blocks 9\.0\.0.*reads format version 1"):
        load_model(tmp_path / "future.pth")


def test_a_damaged_record_is_named(tmp_path) -> None:
    state = _models()["v1"].state_dict()
    state[RECORD_KEY] = torch.tensor([1.5, 2.0])
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointReadError, match=r"bad\.pth: the 'dan_blocks~options' record holds values"):
        load_model(tmp_path / "bad.pth")


def test_an_interpolated_record_of_equal_options_still_rebuilds(tmp_path) -> None:
    # chaiNNer's Interpolate Models averages every tensor of two state dicts of the same architecture
    a, b = _models()["v2"].state_dict(), randomise(_models()["v2"], 5).state_dict()
    mixed = {k: a[k].float() * 0.3 + b[k].float() * 0.7 for k in a}
    torch.save(mixed, tmp_path / "mixed.pth")
    model = load_model(tmp_path / "mixed.pth")
    assert model.restorer.body[0].residual == "add" and model.loop == 2
