"""The values of a BasicSR option file, checked before any work starts: types and ranges of the keys BasicSR
and DANModel read, the run's name, the model type, the blocks a run needs.

BasicSR itself reads these values only when it gets to them, after it has made the experiment's folders, and
then fails with whatever torch, OpenCV or Python says (``could not convert string to float``, ``division by
zero``, ``Found no NVIDIA driver``), or takes a wrong value silently (``milestones: "1000"`` becomes a Counter
of characters and never decays the learning rate; ``use_hflip: "no"`` is true).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..utils.options import OptionKeyError, OptionValueError, did_you_mean

__all__ = ["check_option_values"]

_INT_MAX = 2**31 - 1  # BasicSR passes total_iter to C code


def _fail(where: str, expected: str, value: Any) -> OptionValueError:
    return OptionValueError(f"{where} must be {expected}, got {value!r} ({type(value).__name__})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(low: float | None = None, high: float | None = None, *, open_low: bool = False,
            open_high: bool = False, text_ok: bool = False) -> Callable[[Any, str], None]:
    """A checker of a finite number in a range (``text_ok``: a numeric string too, for values BasicSR float()s,
    such as YAML's ``1e-4``, which PyYAML reads as a string)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if open_high else '<='} {high}")
    expected = "a number" + (f" {' and '.join(parts)}" if parts else "")

    def check(value: Any, where: str) -> None:
        number = value
        if text_ok and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _fail(where, expected, value) from None
        if not _is_number(number):
            raise _fail(where, expected, value)
        if low is not None and (number <= low if open_low else number < low):
            raise _fail(where, expected, value)
        if high is not None and (number >= high if open_high else number > high):
            raise _fail(where, expected, value)

    return check


def _integer(low: int | None, high: int = _INT_MAX, *, text_ok: bool = False) -> Callable[[Any, str], None]:
    """A checker of an integer in [low, high] (``5.0e+3``, a float YAML reads, counts; ``text_ok``: a string
    of digits too, for values BasicSR int()s)."""
    expected = "an integer" if low is None else f"an integer >= {low}"
    if high != _INT_MAX:
        expected = f"an integer from {low} to {high}"

    def check(value: Any, where: str) -> None:
        whole = isinstance(value, float) and value.is_integer()  # 5.0e+3
        digits = text_ok and isinstance(value, str) and value.strip().lstrip("-").isdigit()
        number = int(value) if whole or digits else value
        if not isinstance(number, int) or isinstance(number, bool):
            raise _fail(where, expected, value)
        if (low is not None and number < low) or number > high:
            raise _fail(where, expected if number <= high else f"an integer from {low} to {high}", value)

    return check


def _gpus(value: Any, where: str) -> None:
    if value != "auto":
        _integer(0)(value, f"{where} ('auto' or an integer)")


def _boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise _fail(where, "true or false (YAML true / false, unquoted)", value)


def _choice(*choices: str) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        if value not in choices:
            raise _fail(where, f"one of {', '.join(map(repr, choices))}{did_you_mean(value, choices)}", value)

    return check


def _list_of(item: Callable[[Any, str], None], length: int | None = None) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            raise _fail(where, f"a list of {length} values" if length else "a list, e.g. [1000, 2000]", value)
        for index, entry in enumerate(value):
            item(entry, f"{where}[{index}]")

    return check


def _mapping_with_type(value: Any, where: str) -> None:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise _fail(where, "a mapping with a 'type', e.g. {type: disk}", value)


#: dataset keys and their checks (BasicSR's data loader and dan-blocks' datasets read them)
_DATASET: dict[str, Callable[[Any, str], None]] = {
    "gt_size": _integer(1),
    "batch_size_per_gpu": _integer(1),
    "num_worker_per_gpu": _integer(0),
    "dataset_enlarge_ratio": _integer(1),
    "use_hflip": _boolean,
    "use_rot": _boolean,
    "use_shuffle": _boolean,
    "pin_memory": _boolean,
    "persistent_workers": _boolean,
    "io_backend": _mapping_with_type,
}

#: keys of blocks under ``train:`` and their checks
_TRAIN: dict[str, Callable[[Any, str], None]] = {
    "optim_g.lr": _number(0, open_low=True, text_ok=True),
    "optim_g.betas": _list_of(_number(0, 1, open_high=True), 2),
    "optim_g.weight_decay": _number(0, text_ok=True),
    "optim_g.eps": _number(0, open_low=True, text_ok=True),
    "lr_E": _number(0, text_ok=True),  # 0: the estimator stays as loaded
    "ema_decay": _number(0, 1, open_high=True),
    "scheduler.milestones": _list_of(_integer(0)),
    "scheduler.gamma": _number(0, open_low=True),
    "scheduler.restarts": _list_of(_integer(0)),
    "scheduler.restart_weights": _list_of(_number(0)),
    "scheduler.periods": _list_of(_integer(1)),
    "scheduler.eta_min": _number(0, text_ok=True),
    "pixel_opt.loss_weight": _number(0),
    "pixel_opt.reduction": _choice("none", "mean", "sum"),
    "kernel_opt.loss_weight": _number(0),
    "kernel_opt.reduction": _choice("none", "mean", "sum"),
}

#: keys read anywhere in the file (a missing key is left to its reader's default)
_ANYWHERE: dict[str, Callable[[Any, str], None]] = {
    "scale": _integer(1),
    "num_gpu": _gpus,
    "manual_seed": _integer(None),
    "logger.print_freq": _integer(1),
    "logger.save_checkpoint_freq": _integer(1),
    "logger.use_tb_logger": _boolean,
    "val.val_freq": _integer(1),
    "path.strict_load_g": _boolean,
    "path.strict_load_estimator": _boolean,
    # mixed precision, memory format and compilation (traiNNer-redux's keys; DANModel reads them)
    "use_amp": _boolean,
    "amp_bf16": _boolean,
    "use_channels_last": _boolean,
    "use_compile": _boolean,
    "compile_mode": _choice("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
}

#: ``train:`` keys of any training run (BasicSR's own loop reads them, int()-ing total_iter)
_TRAINING: dict[str, Callable[[Any, str], None]] = {
    "total_iter": _integer(1, text_ok=True),
    "warmup_iter": _integer(-1, text_ok=True),
}


def _lookup(block: Any, dotted: str) -> tuple[bool, Any]:
    node = block
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_table(block: Any, table: Mapping[str, Callable[[Any, str], None]], prefix: str) -> None:
    for dotted, check in table.items():
        present, value = _lookup(block, dotted)
        if present and value is not None:
            check(value, f"{prefix}{dotted}")


def _check_name(opt: Mapping[str, Any]) -> None:
    if "name" not in opt:
        raise OptionKeyError("the option file has no 'name' (the experiment's folder name, e.g. name: my_DANv2_x4)")
    name = opt["name"]
    if not isinstance(name, str) or not name.strip():
        raise _fail("name", "a non-empty folder name", name)
    if "/" in name or "\\" in name or name in (".", "..") or name != os.path.basename(name):
        raise _fail("name", "one folder name, without '/' or '..' (it becomes experiments/<name>)", name)


def _check_model_type(opt: Mapping[str, Any]) -> None:
    from basicsr.utils.registry import MODEL_REGISTRY

    if "model_type" not in opt:
        raise OptionKeyError("the option file has no 'model_type' (dan-blocks' is model_type: DANModel)")
    kind = opt["model_type"]
    names = list(MODEL_REGISTRY.keys())  # BasicSR's Registry iterates over pairs
    if kind not in names:
        raise OptionValueError(
            f"model_type {kind!r} is not a registered model{did_you_mean(kind, names)}; registered: "
            f"{', '.join(sorted(names))}"
        )


def _check_gpus(opt: Mapping[str, Any]) -> None:
    wanted = opt.get("num_gpu")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if wanted > have:
            raise OptionValueError(
                f"num_gpu: {wanted}, but this machine has {have} CUDA device(s); use num_gpu: 0 for the CPU, or "
                "'auto'"
            )


def _check_blocks(opt: Mapping[str, Any], train: bool) -> None:
    for key in ("path", "logger", "datasets", "dist_params", "train"):
        if key in opt and opt[key] is None and (key != "train" or train):
            raise OptionKeyError(f"option block {key!r} is empty (null); remove the key or give its entries")
    datasets = opt.get("datasets")
    if not isinstance(datasets, Mapping):
        raise OptionKeyError("the option file has no 'datasets' block (e.g. datasets: {train: {...}, val: {...}})")
    if train and "train" not in datasets:
        raise OptionKeyError(f"a training run needs datasets.train; the datasets are: {', '.join(map(str, datasets))}")
    if not datasets:
        raise OptionKeyError("datasets is empty: there is nothing to test")


def _check_datasets(datasets: Mapping[str, Any], scale: Any) -> None:
    for phase, block in datasets.items():
        if not isinstance(block, Mapping):
            continue  # named by the dataset type check
        _check_table(block, _DATASET, f"datasets.{phase}.")
        size = block.get("gt_size")
        if phase == "train" and isinstance(size, int) and isinstance(scale, int) and scale > 0 and size % scale:
            raise OptionValueError(
                f"datasets.train.gt_size {size} is not a multiple of the scale {scale}: the LR patch would not be "
                "whole"
            )


def _check_precision(opt: Mapping[str, Any]) -> None:
    """Combinations of the precision keys that do nothing, warned as traiNNer-redux warns them: ``amp_bf16`` and
    ``use_channels_last`` act only with ``use_amp: true``; ``compile_mode`` only with ``use_compile: true``."""
    if not opt.get("use_amp"):
        for key, effect in (("amp_bf16", "bf16"), ("use_channels_last", "channels-last memory format")):
            if opt.get(key):
                warnings.warn(f"{key}: true without use_amp: true has no effect (no {effect}); add use_amp: true "
                              "to train and validate in mixed precision", stacklevel=3)
    if opt.get("compile_mode") not in (None, "default") and not opt.get("use_compile"):
        warnings.warn("compile_mode is set but use_compile is not true: the network is not compiled",
                      stacklevel=3)


def check_option_values(opt: Mapping[str, Any], train: bool) -> None:
    """Types and ranges of the values a run reads, the run's name and model type, and the blocks it needs.

    Raises:
        OptionKeyError: a block or key the run needs is missing or empty.
        OptionValueError: a value of the wrong type or out of range; the message names the key.
    """
    _check_table(opt, _ANYWHERE, "")
    if train:
        block = opt.get("train")
        if isinstance(block, Mapping) and block.get("total_iter") is None:
            raise OptionKeyError("train: missing 'total_iter' (the number of training iterations)")
        _check_table(block, _TRAINING, "train.")
    _check_name(opt)
    _check_model_type(opt)
    _check_blocks(opt, train)
    _check_gpus(opt)
    _check_datasets(opt["datasets"], opt.get("scale"))
    if train and isinstance(opt.get("val"), Mapping) and not any(str(k).startswith("val") for k in opt["datasets"]):
        warnings.warn("the option file has a 'val' block but no datasets.val*: this training never validates",
                      stacklevel=2)
    _check_precision(opt)
    if train and opt.get("model_type") == "DANModel":
        block = opt.get("train")
        _check_table(block, _TRAIN, "train.")
        total, warmup = (_lookup(block, key)[1] for key in ("total_iter", "warmup_iter"))
        if isinstance(total, int) and isinstance(warmup, int) and warmup >= total:
            raise OptionValueError(f"train.warmup_iter {warmup} must be below total_iter {total} (or -1: none)")
    if not train and opt.get("model_type") == "DANModel":
        present, weights = _lookup(opt, "path.pretrain_network_g")
        if not present or not weights:
            raise OptionKeyError("path.pretrain_network_g is not set: the test would score a network of random "
                                 "weights; give the checkpoint to test")
