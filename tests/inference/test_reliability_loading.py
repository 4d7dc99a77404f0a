"""Loading errors name the file and the cause, and point at the fix; overrides that cannot be applied are
refused, never dropped silently."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from _helpers import randomise

import dan_blocks
from dan_blocks.cli.main import main
from dan_blocks.formats import to_release_state_dict
from dan_blocks.inference.loading import load_weights
from dan_blocks.utils import CheckpointMismatchError, CheckpointReadError, OptionKeyError
from dan_blocks.utils.state_record import without_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _v1() -> torch.nn.Module:
    return randomise(dan_blocks.dan_v1(2, nf=8, nb=1, est_nf=8, est_nb=1, reduction=4, loop=2), 0).eval()


def _v2(**kwargs) -> torch.nn.Module:
    options = dict(nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2, **kwargs)
    return randomise(dan_blocks.dan_v2(2, **options), 1).eval()


@pytest.fixture
def files(tmp_path):
    paths = {name: tmp_path / f"{name}.pth" for name in ("v1", "release", "legacy", "v2")}
    dan_blocks.save_model(_v1(), paths["v1"])
    torch.save(to_release_state_dict(_v1().state_dict()), paths["release"])
    torch.save({"params": without_records(_v2().state_dict())}, paths["legacy"])  # written before records
    dan_blocks.save_model(_v2(residual="double"), paths["v2"])
    return paths


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (torch.zeros(3), "holds a Tensor, expected a dict of tensors"),
        ({"params": 5}, "'params' holds a int, expected a dict of tensors"),
        ({"a.weight": torch.zeros(3, 3)}, "is no model file dan-blocks knows"),
    ],
)
def test_a_file_that_is_no_model_is_named(tmp_path, content, fragment: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointReadError, match=fragment) as info:
        dan_blocks.load_model(path)
    assert str(path) in str(info.value)


def test_a_plain_pickle_is_refused_as_such_and_never_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    class Evil:
        def __reduce__(self):
            return (eval, ("open('PWNED', 'w')",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"params": Evil()}))
    with pytest.raises(CheckpointReadError, match="plain Python pickle") as info:
        dan_blocks.load_model("evil.pth")
    assert "weights_only=False" not in str(info.value) and not (tmp_path / "PWNED").exists()


def test_a_malformed_options_record_is_an_error(files, tmp_path) -> None:
    raw = torch.load(files["v1"], weights_only=True)
    raw["dan_blocks"] = "junk"
    raw["params"]._metadata.pop("dan_blocks", None)
    torch.save(raw, tmp_path / "junk.pth")
    with pytest.raises(CheckpointReadError, match=r"junk\.pth: its 'dan_blocks' record is malformed"):
        dan_blocks.load_model(tmp_path / "junk.pth")


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("release", {"nf": 16}, r"a DAN release file.*cannot apply nf=16; accepted overrides here: loop, setting"),
        ("legacy", {"residual": "add", "est_input_norm": False, "blah": 1}, r"cannot apply blah=1"),
        ("v1", {"residual": "add"}, r"overrides for .*v1\.pth \(a DANv1\): 'residual'"),
        ("v1", {"nff": 3}, r"'nff' \(did you mean 'nf'\?\)"),
    ],
)
def test_overrides_that_cannot_apply_are_refused(files, name: str, overrides, match: str) -> None:
    with pytest.raises((ValueError, OptionKeyError), match=match):
        dan_blocks.load_model(files[name], **overrides)


def test_override_values_are_checked(files) -> None:
    with pytest.raises(TypeError, match="est_input_norm must be True or False, got 'no'"):
        dan_blocks.load_model(files["legacy"], residual="add", est_input_norm="no")
    with pytest.raises(TypeError, match="scale must be an integer"):
        dan_blocks.load_model(files["v1"], scale="2")
    assert main(["sr", "-m", str(files["legacy"]), "x.png", "-o", "out", "--est-input-norm", "no"]) == 2


def test_replacing_a_recorded_unreadable_option_warns_at_the_callers_line(files) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = dan_blocks.load_model(files["v2"], residual="add")
    assert model.restorer.body[0].residual == "add"
    [warning] = [w for w in caught if "replaced as asked" in str(w.message)]
    assert "residual='double' -> 'add'" in str(warning.message) and warning.filename == __file__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dan_blocks.load_model(files["legacy"], residual="add", est_input_norm=False)
    assert [w.filename for w in caught if "without options" in str(w.message)] == [__file__]


def test_a_missing_param_key_names_what_the_file_holds(files) -> None:
    with pytest.raises(CheckpointReadError, match=r"has no 'nope' \(param_key\); it holds: 'params'"):
        dan_blocks.load_model(files["v1"], param_key="nope")
    assert dan_blocks.load_model(files["v1"], param_key="params_ema") is not None  # BasicSR's fallback to params


def test_a_damaged_release_tensor_is_the_one_named(files, tmp_path) -> None:
    state = torch.load(files["release"], weights_only=True)
    state["Restorer.head.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(CheckpointMismatchError, match=r"damaged\.pth: .*'Restorer\.head\.weight' has shape \(2, 2\)"):
        dan_blocks.load_model(tmp_path / "damaged.pth")


def test_non_strict_loading_names_shape_differences(files) -> None:
    wider = dan_blocks.dan_v1(2, nf=16, nb=1, est_nf=8, est_nb=1, reduction=4)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)v1\.pth does not fit DANv1 even without strict.*"
                       r"restorer\.head\.weight: checkpoint \(8, 3, 3, 3\), model \(16, 3, 3, 3\)"):
        load_weights(wider, str(files["v1"]), strict=False)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.mkdir(), "is a folder, expected a YAML file"),
        (lambda p: p.write_bytes(b"\x80\x02binary"), "is not UTF-8 text"),
        (lambda p: p.write_text("a: [1,\n b: 2\n"), "is not valid YAML: expected ',' or ']'"),
        (lambda p: p.write_text("network_g: {type: DANv1}\npath: {pretrain_network_g: gone.pth}\n"),
         "path.pretrain_network_g 'gone.pth' does not exist"),
    ],
)
def test_option_files_for_load_model_are_named_in_one_line(tmp_path, make, fragment: str) -> None:
    path = tmp_path / "net.yml"
    make(path)
    with pytest.raises((OSError, ValueError)) as info:
        dan_blocks.load_model(path)
    assert fragment in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_pretrain_file_of_other_options_says_which(files, tmp_path, monkeypatch, capsys) -> None:
    from test_cli_train_support import TINY_NET, tiny_train_options, write_yaml

    monkeypatch.chdir(tmp_path)
    wide = {k: v for k, v in TINY_NET.items() if k != "type"} | {"nf": 16}
    dan_blocks.save_model(dan_blocks.dan_v2(**wide), tmp_path / "wide.pth")
    opt = tiny_train_options("wide", total_iter=2)
    opt["path"]["pretrain_network_g"] = "wide.pth"
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "wide.pth [params] does not match DANv2" in err and "shape differences" in err
    assert "the file was saved with other options than this run's network_g: nf: file 16, network_g 8" in err


def test_a_damaged_tensor_of_a_file_without_options_is_named_as_the_file_spells_it(files, tmp_path) -> None:
    raw = torch.load(files["legacy"], weights_only=True)
    raw["params"]["restorer.head1.weight"] = torch.zeros(5)
    torch.save(raw, tmp_path / "damaged.pth")
    with pytest.raises(CheckpointMismatchError, match=r"damaged\.pth: .*'restorer\.head1\.weight' has shape \(5,\)"):
        dan_blocks.load_model(tmp_path / "damaged.pth", residual="add", est_input_norm=False)


def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path) -> None:
    import dan_blocks

    model = dan_blocks.dan_v2(4, nb=1, ng=1, est_nb=1)
    with torch.no_grad():
        model.restorer.head1.weight[0, 0, 0, 0] = float("nan")
        model.estimator.tail[0].bias[1] = float("inf")
    path = tmp_path / "diverged.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match=r"diverged.pth: tensor 'restorer.head1.weight' holds 1 non-finite value"):
        dan_blocks.load_model(path)
    with torch.no_grad():
        model.restorer.head1.weight[0, 0, 0, 0] = 0.0
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match=r"tensor 'estimator.tail.0.bias' holds 1 non-finite value\(s\) \(NaN or "):
        dan_blocks.load_model(path)  # infinity too


@pytest.mark.parametrize("kw,named", [({"nf": 0}, "RestorerV2 sizes.*nf=0"), ({"est_nf": 0}, "EstimatorV2 sizes.*nf=0"),
                                      ({"nb": 0}, "nb=0")])
def test_zero_sizes_are_named_at_construction(kw: dict, named: str) -> None:
    import dan_blocks

    with pytest.raises(ValueError, match=named):
        dan_blocks.dan_v2(4, **kw)
    with pytest.raises(ValueError, match=r"RestorerV1 sizes.*nf=0"):
        dan_blocks.dan_v1(4, nf=0)
