"""Every block of an option file is checked before any work starts: a bad type, key or value is named with what
is expected, and nothing (no experiments folder, no log) is made."""

from __future__ import annotations

import pytest
import torch
from test_cli_train_support import tiny_train_options, write_yaml

from dan_blocks.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _set(block: str, key: str, value):
    def edit(opt):
        node = opt
        for part in block.split(".") if block else []:
            node = node[part]
        node[key] = value

    return edit


def _pop(block: str, key: str, new_key: str):
    def edit(opt):
        node = opt
        for part in block.split("."):
            node = node[part]
        node[new_key] = node.pop(key)

    return edit


def _pretrain_with_a_wrong_key(opt) -> None:
    torch.save({"params": {"a": torch.zeros(1)}}, "w.pth")  # in the test's working folder
    opt["path"].update(pretrain_network_g="w.pth", param_key_g="params_emma")


CASES = {
    # name: (edit, fragments the one-line error must hold)
    "arch-type": (_set("network_g", "type", "DANv9"), ["network_g type 'DANv9'", "did you mean 'DANv2'?"]),
    "arch-key": (_pop("network_g", "nf", "nff"), ["network_g (DANv2)", "'nff' (did you mean 'nf'?)", "accepted keys"]),
    "arch-value-type": (_set("network_g", "nf", "eight"), ["network_g (DANv2): nf must be int, got 'eight'"]),
    "arch-bool-for-int": (_set("network_g", "nb", True), ["nb must be int, got True (bool)"]),
    "arch-range": (_set("network_g", "loop", 0), ["network_g (DANv2)", "loop", ">= 1, got 0"]),
    "optimizer-key": (_pop("train.optim_g", "betas", "beta"), ["train.optim_g (Adam)", "did you mean 'betas'?"]),
    "optimizer-type": (_set("train.optim_g", "type", "Adm"), ["train.optim_g.type 'Adm'", "did you mean 'Adam'?"]),
    "scheduler-key": (_pop("train.scheduler", "milestones", "milestone"),
                      ["train.scheduler (MultiStepLR)", "did you mean 'milestones'?"]),
    "scheduler-type": (_set("train.scheduler", "type", "StepLR"), ["train.scheduler.type 'StepLR'", "MultiStepLR"]),
    "loss-key": (_pop("train.pixel_opt", "loss_weight", "loss_wieght"),
                 ["train.pixel_opt (L1Loss)", "did you mean 'loss_weight'?"]),
    "loss-type": (_set("train.kernel_opt", "type", "L1Los"),
                  ["train.kernel_opt.type 'L1Los'", "did you mean 'L1Loss'?"]),
    "total-iter": (_set("train", "total_iter", "abc"), ["train.total_iter must be an integer >= 1, got 'abc'"]),
    "print-freq": (_set("logger", "print_freq", 0), ["logger.print_freq must be an integer >= 1, got 0"]),
    "seed": (_set("", "manual_seed", 1.5), ["manual_seed must be an integer, got 1.5"]),
    "scale": (_set("", "scale", 4), ["scale: 4 differs from network_g's x2"]),
    "degradation-key": (_pop("degradation", "preset", "presett"), ["'presett' (did you mean 'preset'?)"]),
    "degradation-scale": (_set("degradation", "scale", 4), ["degradation scale x4 differs from network_g's x2"]),
    "dataset-key": (_pop("datasets.train", "gt_size", "gt_sise"),
                    ["datasets.train (BlindSRHRDataset)", "'gt_sise' (did you mean 'gt_size'?)"]),
    "dataset-type": (_set("datasets.train", "type", "BlindSRHRDatset"),
                     ["datasets.train.type 'BlindSRHRDatset'", "did you mean 'BlindSRHRDataset'?"]),
    "dataset-root": (_set("datasets.train", "dataroot_gt", "no/such/folder"),
                     ["datasets.train.dataroot_gt: 'no/such/folder' does not exist"]),
    "pretrain-missing": (_set("path", "pretrain_network_g", "missing.pth"),
                         ["path.pretrain_network_g: 'missing.pth' does not exist"]),
    "val-metric": (lambda o: o.update(val={"val_freq": 2, "metrics": {"psnr": {"type": "calculate_psnrr"}}}),
                   ["val.metrics.psnr.type 'calculate_psnrr'", "did you mean 'calculate_psnr'?"]),
    "val-metric-key": (lambda o: o.update(val={"val_freq": 2, "metrics": {"psnr": {
        "type": "calculate_psnr", "crop_border": 2, "test_y_chanel": True}}}),
                       ["val.metrics.psnr (calculate_psnr)", "'test_y_chanel' (did you mean 'test_y_channel'?)"]),
    "pretrain-param-key": (_pretrain_with_a_wrong_key,
                           ["checkpoint w.pth has no 'params_emma' (param_key); it holds: 'params'"]),
    "gt-size-negative": (_set("datasets.train", "gt_size", -32), ["datasets.train.gt_size must be an integer >= 1"]),
    "gt-size-odd": (_set("datasets.train", "gt_size", 33), ["gt_size 33 is not a multiple of the scale 2"]),
    "batch-text": (_set("datasets.train", "batch_size_per_gpu", "2"),
                   ["datasets.train.batch_size_per_gpu must be an integer >= 1, got '2' (str)"]),
    "workers": (_set("datasets.train", "num_worker_per_gpu", -1), ["num_worker_per_gpu must be an integer >= 0"]),
    "enlarge": (_set("datasets.train", "dataset_enlarge_ratio", 0), ["dataset_enlarge_ratio must be an integer >= 1"]),
    "io-backend": (_set("datasets.train", "io_backend", "disk"), ["io_backend must be a mapping with a 'type'"]),
    "flip-text": (_set("datasets.train", "use_hflip", "no"), ["use_hflip must be true or false", "got 'no'"]),
    "lr-text": (_set("train.optim_g", "lr", "abc"), ["train.optim_g.lr must be a number > 0, got 'abc'"]),
    "betas": (_set("train.optim_g", "betas", [0.9]), ["train.optim_g.betas must be a list of 2 values"]),
    "milestones-text": (_set("train.scheduler", "milestones", "1000"), ["train.scheduler.milestones must be a list"]),
    "gamma": (_set("train.scheduler", "gamma", "x"), ["train.scheduler.gamma must be a number > 0"]),
    "loss-weight": (_set("train.pixel_opt", "loss_weight", "1"), ["train.pixel_opt.loss_weight must be a number"]),
    "reduction": (_set("train.pixel_opt", "reduction", "avg"), ["train.pixel_opt.reduction must be one of"]),
    "ema": (_set("train", "ema_decay", 2.0), ["train.ema_decay must be a number >= 0 and < 1, got 2.0"]),
    "warmup": (_set("train", "warmup_iter", 5), ["train.warmup_iter 5 must be below total_iter 2"]),
    "iterations": (_set("train", "total_iter", 10**30), ["train.total_iter must be an integer from 1 to 2147483647"]),
    "name-slash": (_set("", "name", "a/b"), ["name must be one folder name"]),
    "name-up": (_set("", "name", "../escape"), ["name must be one folder name"]),
    "name-empty": (_set("", "name", ""), ["name must be a non-empty folder name"]),
    "gpus": (_set("", "num_gpu", 2), ["num_gpu: 2, but this machine has 0 CUDA device(s)"]),
    "model-type": (_set("", "model_type", "DANModle"), ["model_type 'DANModle'", "did you mean 'DANModel'?"]),
    "no-train-set": (lambda o: o["datasets"].pop("train"), ["a training run needs datasets.train"]),
    "null-logger": (_set("", "logger", None), ["option block 'logger' is empty (null)"]),
    "val-metric-missing": (lambda o: o.update(val={"val_freq": 2, "metrics": {"psnr": {"type": "calculate_psnr"}}}),
                           ["val.metrics.psnr (calculate_psnr): missing required key(s) 'crop_border'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_block_is_named_before_any_work(tmp_path, monkeypatch, capsys, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    edit, fragments = CASES[case]
    opt = tiny_train_options("bad", total_iter=2)
    edit(opt)
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dan-blocks train: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "tb_logger").exists()


def test_the_good_file_of_these_cases_trains(tmp_path, monkeypatch) -> None:
    """The base file the cases above break is itself accepted (so each case fails for its own edit), and YAML's
    float spelling of an integer frequency is accepted as BasicSR does."""
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("good", total_iter=2)
    opt["logger"]["save_checkpoint_freq"] = 2.0
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 0
    assert (tmp_path / "experiments" / "good" / "models" / "net_g_2.pth").is_file()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\n  bad: [unclosed\n", "is not valid YAML: mapping values are not allowed here at line 2"),
        ("- just\n- a list\n", "is not a YAML mapping"),
        ("name: !!python/object/apply:os.system ['touch PWNED']\n", "is not valid YAML"),
    ],
)
def test_an_unreadable_option_file_is_one_line(tmp_path, monkeypatch, capsys, text: str, fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.yml").write_text(text)
    assert main(["train", "-opt", "o.yml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[0] and "'o.yml'" in err[0]
    assert not (tmp_path / "PWNED").exists()


def test_a_binary_option_file_is_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.yml").write_bytes(b"\x80\x02\xff\xfe binary")
    assert main(["test", "-opt", "o.yml"]) == 1
    assert "'o.yml' is not UTF-8 text" in capsys.readouterr().err


def test_a_key_given_twice_is_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "o.yml"
    write_yaml(path, tiny_train_options("first", total_iter=2))
    path.write_text(path.read_text() + "name: second\n")
    assert main(["train", "-opt", "o.yml"]) == 1
    assert "key 'name' is given twice (lines 1 and" in capsys.readouterr().err
    assert not (tmp_path / "experiments").exists()


def test_force_yml_with_a_bad_value_is_a_usage_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("force", total_iter=2))
    assert main(["train", "-opt", yml, "--force_yml", "train:total_iter=[1,2"]) == 2
    assert "--force_yml 'train:total_iter=[1,2': the value is not valid YAML" in capsys.readouterr().err


def test_testing_random_weights_is_refused(tmp_path, monkeypatch, capsys) -> None:
    from test_cli_train_support import tiny_test_options, tiny_testset

    monkeypatch.chdir(tmp_path)
    opt = tiny_test_options("untrained", None, tiny_testset(tmp_path / "set"))
    assert main(["test", "-opt", write_yaml(tmp_path / "t.yml", opt)]) == 1
    assert "path.pretrain_network_g is not set" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_test_set_of_another_scale_is_named_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    from test_cli_train_support import TINY_NET, tiny_test_options, tiny_testset

    import dan_blocks

    monkeypatch.chdir(tmp_path)
    x4 = tiny_testset(tmp_path / "set", scale=4)
    weights = tmp_path / "w.pth"
    dan_blocks.save_model(dan_blocks.dan_v2(**{k: v for k, v in TINY_NET.items() if k != "type"}), weights)
    opt = tiny_test_options("wrong_scale", str(weights), x4)  # an x2 network on an x4 set
    assert main(["test", "-opt", write_yaml(tmp_path / "t.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "datasets.test_1:" in err and "scale 4" in err
    assert not (tmp_path / "results").exists()


def test_an_empty_force_yml_key_is_a_usage_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("force", total_iter=2))
    assert main(["train", "-opt", yml, "--force_yml", "=3"]) == 2
    assert "--force_yml '=3': expected KEY:SUBKEY=VALUE, with no empty key" in capsys.readouterr().err


def test_a_val_block_without_a_val_set_warns() -> None:
    from dan_blocks.basicsr.option_values import check_option_values

    opt = tiny_train_options("noval", total_iter=2)
    opt["val"] = {"val_freq": 2}
    with pytest.warns(UserWarning, match="a 'val' block but no datasets.val"):
        check_option_values(opt, train=True)
