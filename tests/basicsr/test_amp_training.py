"""Mixed precision, memory format and compile options of DANModel (traiNNer-redux's top-level keys)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cli_train_support import tiny_train_options, write_yaml

import dan_blocks  # noqa: F401  (registers everything)
from dan_blocks.basicsr import DANModel
from dan_blocks.basicsr.options import check_option_file
from dan_blocks.cli.main import main
from dan_blocks.utils.options import OptionValueError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model_opt(tmp: str, **top: Any) -> dict[str, Any]:
    opt = tiny_train_options("amp", total_iter=100)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, **top)
    opt["path"].update(models=tmp, training_states=tmp, log=tmp, visualization=tmp)
    opt["train"]["ema_decay"] = 0
    return opt


def _gt(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _conv_output_dtypes(net: torch.nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_bf16_autocast_trains_in_bf16_with_fp32_weights_and_losses(tmp_path) -> None:
    model = DANModel(_model_opt(str(tmp_path), use_amp=True, amp_bf16=True))
    assert model.amp_dtype == torch.bfloat16 and not model.scaler.is_enabled()  # bf16 needs no loss scaling
    dtypes = _conv_output_dtypes(model.net_g)
    gt = _gt()
    losses = []
    for step in range(1, 16):  # one fixed batch (same kernels: iteration 0's generator) must be fitted
        model.feed_data({"gt": gt})
        model.optimize_parameters(step)
        losses.append(model.log_dict["l_pix"])
    assert set(dtypes) == {torch.bfloat16}  # the forward ran under autocast ...
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])  # ... and trains
    bare = model.get_bare_model(model.net_g)
    assert {p.dtype for p in bare.parameters()} == {torch.float32}  # master weights stay fp32
    model.save(0, 1)
    saved = torch.load(tmp_path / "net_g_1.pth", weights_only=True)["params"]
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
    # validation honours the keys too: the network runs in bf16, the outputs handed to metrics are fp32
    dtypes.clear()
    model.feed_data({"lq": torch.rand(1, 3, 16, 16)})
    model.test()
    assert set(dtypes) == {torch.bfloat16} and model.output.dtype == torch.float32


def test_kernel_loss_and_pca_encoding_stay_fp32_under_autocast(tmp_path) -> None:
    model = DANModel(_model_opt(str(tmp_path), use_amp=True, amp_bf16=True))
    net = model.get_bare_model(model.net_g)
    with model.autocast():
        out = net(torch.rand(2, 3, 16, 16))
    assert out.srs[-1].dtype == torch.bfloat16
    assert out.kernels[-1].dtype == torch.float32 and out.codes[-1].dtype == torch.float32
    # independent: the code is the fp32 PCA encoding of the estimated kernel (flat @ P), not a bf16 product
    kernel = out.kernels[-1]
    expected = net.pca.encode(kernel.reshape(2, 21, 21))
    torch.testing.assert_close(out.codes[-1], expected, rtol=1e-6, atol=1e-7)


def test_fp16_amp_uses_a_grad_scaler_and_stays_finite(tmp_path) -> None:
    model = DANModel(_model_opt(str(tmp_path), use_amp=True))
    assert model.amp_dtype == torch.float16 and model.scaler.is_enabled()
    dtypes = _conv_output_dtypes(model.net_g)
    model.feed_data({"gt": _gt()})
    model.optimize_parameters(1)
    assert torch.float16 in dtypes and torch.isfinite(torch.tensor(model.log_dict["l_pix"]))
    assert model.scaler.get_scale() > 1  # the scaler is in use (65536 at the start)


def test_without_use_amp_nothing_changes(tmp_path) -> None:
    model = DANModel(_model_opt(str(tmp_path)))
    dtypes = _conv_output_dtypes(model.net_g)
    model.feed_data({"gt": _gt()})
    model.optimize_parameters(1)
    assert set(dtypes) == {torch.float32} and not model.scaler.is_enabled()


def test_channels_last_with_amp(tmp_path) -> None:
    model = DANModel(_model_opt(str(tmp_path), use_amp=True, amp_bf16=True, use_channels_last=True))
    conv = next(m for m in model.net_g.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    model.feed_data({"gt": _gt()})
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.log_dict["l_pix"]))


def test_use_compile_wraps_the_network_and_saves_plain_keys(tmp_path, monkeypatch) -> None:
    compiled: list[Any] = []
    real = torch.compile

    def eager_compile(net: Any, **kwargs: Any) -> Any:  # inductor on a 2-core CPU takes minutes: trace only
        compiled.append(kwargs)
        return real(net, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    model = DANModel(_model_opt(str(tmp_path), use_compile=True, compile_mode="max-autotune"))
    assert compiled == [{"mode": "max-autotune"}]
    assert hasattr(model.net_g, "_orig_mod")  # the trained network is the compiled wrapper ...
    assert type(model.get_bare_model(model.net_g)).__name__ == "DANv2"  # ... the bare one is the DAN
    model.feed_data({"gt": _gt()})
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.log_dict["l_pix"]))
    model.save(0, 1)
    keys = torch.load(tmp_path / "net_g_1.pth", weights_only=True)["params"].keys()
    assert keys == model.get_bare_model(model.net_g).state_dict().keys()
    assert not any("_orig_mod" in key for key in keys)


@pytest.mark.parametrize(("key", "value"), [("use_amp", "yes"), ("amp_bf16", 1), ("use_channels_last", "true"),
                                            ("use_compile", "on"), ("compile_mode", "fastest")])
def test_option_check_names_bad_precision_values(tmp_path, key: str, value: Any) -> None:
    opt = tiny_train_options("amp_check")
    opt[key] = value
    with pytest.raises(OptionValueError, match=key):
        check_option_file(opt, train=True)


@pytest.mark.parametrize("key", ["amp_bf16", "use_channels_last"])
def test_option_check_warns_keys_without_use_amp(key: str) -> None:
    opt = tiny_train_options("amp_check")
    opt[key] = True
    with pytest.warns(UserWarning, match=f"{key}: true without use_amp: true has no effect"):
        check_option_file(opt, train=True)
    opt["use_amp"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_option_file(opt, train=True)


def test_bf16_amp_training_from_option_keys_through_the_cli(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("bf16_cli", total_iter=12, save_freq=12, enlarge=4)
    opt.update(use_amp=True, amp_bf16=True)
    opt["train"]["optim_g"]["lr"] = 3e-3
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt), "--threads", "1"]) == 0
    exp = Path("experiments/bf16_cli")
    log = next(exp.glob("train_bf16_cli_*.log")).read_text()
    assert "Mixed precision: autocast in bf16" in log
    losses = [float(v) for v in re.findall(r"l_pix: ([-+0-9.e]+|nan|inf)", log)]
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    weights = torch.load(exp / "models" / "net_g_latest.pth", weights_only=True)["params"]
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in weights.values()
               if v.is_floating_point())

