"""The option keys DANModel reads (checked with `dan_blocks.utils.check_keys()`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..utils import check_keys
from ..utils.options import OptionKeyError, OptionValueError, check_call_options, did_you_mean
from .option_values import check_option_values

__all__ = [
    "DIST_KEYS",
    "LOGGER_KEYS",
    "PATH_KEYS",
    "TOP_KEYS",
    "TRAIN_KEYS",
    "VAL_KEYS",
    "WANDB_KEYS",
    "check_epoch_size",
    "check_option_file",
    "check_path_block",
    "describe_nonfinite",
    "nonfinite_tensors",
]

#: keys DANModel reads from ``train:`` (BasicSR's SRModel keys plus DAN's)
TRAIN_KEYS: tuple[str, ...] = (
    "ema_decay",
    "optim_g",
    "lr_E",
    "scheduler",
    "total_iter",
    "warmup_iter",
    "pixel_opt",
    "kernel_opt",
    "iteration_weights",
)

#: keys DANModel reads from ``val:``
VAL_KEYS: tuple[str, ...] = ("val_freq", "save_img", "suffix", "metrics", "pbar", "kernel_zoom")

#: keys of BasicSR's ``path:`` block for a DANModel run. BasicSR makes a directory for every other key it
#: finds there (``make_exp_dirs``), so a misspelled ``pretrain_netwrk_g: x.pth`` would silently create a
#: folder ``x.pth`` and train from scratch: `check_path_block` refuses it first.
PATH_KEYS: tuple[str, ...] = (
    "pretrain_network_g",
    "strict_load_g",
    "param_key_g",
    # DANModel: start the estimator alone from a file (e.g. MANet's released estimator)
    "pretrain_network_estimator",
    "strict_load_estimator",
    "param_key_estimator",
    "resume_state",
    "ignore_resume_networks",
    # set by BasicSR's parse_options itself
    "experiments_root",
    "results_root",
    "models",
    "training_states",
    "log",
    "visualization",
)


def check_path_block(opt: Mapping[str, Any]) -> None:
    """Raise `OptionKeyError` for an unknown key of ``opt["path"]`` (with a
    did-you-mean), before BasicSR turns it into a directory."""
    check_keys(opt.get("path"), PATH_KEYS, "path (BasicSR would make a directory for an unknown key)")

#: top-level keys of a BasicSR option file that a DANModel run reads (BasicSR's own, ``degradation``, the
#: precision and compile keys as traiNNer-redux spells them, and, last, five set by BasicSR's parser itself)
TOP_KEYS: tuple[str, ...] = (
    "name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g", "path", "train", "val",
    "logger", "dist_params", "degradation", "find_unused_parameters",
    "use_amp", "amp_bf16", "use_channels_last", "use_compile", "compile_mode",
    "is_train", "dist", "rank", "world_size", "auto_resume", "root_path",
)
LOGGER_KEYS: tuple[str, ...] = ("print_freq", "save_checkpoint_freq", "use_tb_logger", "wandb")
WANDB_KEYS: tuple[str, ...] = ("project", "resume_id", "entity")
DIST_KEYS: tuple[str, ...] = ("backend", "port")


def check_option_file(opt: Mapping[str, Any], train: bool) -> None:
    """Check every block dan-blocks runs before any work starts (before BasicSR makes a folder or a log):

    - the keys of the top level, ``path``, ``logger`` (and its ``wandb``), ``dist_params``, ``train``, ``val``
      and the dataset phases (``train`` / ``val*`` when training);
    - ``network_g``: its type, keys and simple value types, then a trial build (`dan_blocks.archs.build_arch`),
      and its scale against the top-level ``scale`` and the degradation's;
    - ``train``: ``optim_g`` (BasicSR 1.4.2 builds only Adam), ``scheduler``, ``pixel_opt`` / ``kernel_opt``
      (BasicSR's losses) against the signatures they are passed to, and the integers (``total_iter``,
      ``manual_seed``, ``logger`` frequencies, ``val.val_freq``);
    - ``degradation`` (a trial `build_degradation` when training), ``val.metrics`` types, each dataset's type
      and keys (dan-blocks' datasets) and that its data folders exist;
    - ``path.pretrain_network_g`` / ``pretrain_network_estimator`` exist.

    Raises:
        OptionKeyError: an unknown or missing key, with the accepted keys and a did-you-mean.
        OptionValueError: a value of the wrong type or range (the key is named).
        FileNotFoundError: a data folder or pretrained file that does not exist (the key is named).
    """
    check_keys(opt, TOP_KEYS, "the option file's top level")
    check_path_block(opt)
    logger = opt.get("logger")
    check_keys(logger, LOGGER_KEYS, "logger")
    if isinstance(logger, Mapping):
        check_keys(logger.get("wandb"), WANDB_KEYS, "logger.wandb")
    check_keys(opt.get("dist_params"), DIST_KEYS, "dist_params")
    datasets = opt.get("datasets")
    if train and isinstance(datasets, Mapping):
        phases = [key for key in datasets if key != "train" and not str(key).startswith("val")]
        if phases:
            check_keys({key: None for key in phases}, ["train", "val", "val_1", "val_2"],
                       "datasets (a training run's phases are 'train' and names starting with 'val')")
    if not train and not (isinstance(opt.get("val"), Mapping) and "save_img" in opt["val"]):
        raise OptionKeyError(  # BasicSR's test_pipeline reads opt['val']['save_img'] after the first test set loads
            "a test needs a 'val:' block with 'save_img' (and usually 'metrics'), e.g. val: {save_img: false, "
            "metrics: {psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: true}}}"
        )
    dan_model = opt.get("model_type") == "DANModel"  # the train / val keys of another model are its own
    if dan_model:
        check_keys(opt.get("val"), VAL_KEYS, "val (DANModel)")
        if train:
            check_keys(opt.get("train"), TRAIN_KEYS, "train (DANModel)")
    check_option_values(opt, train)
    net = _trial_network(opt)
    if train:
        _check_train_block(opt.get("train"))
        if dan_model:
            _check_degradation(opt, net)
    _check_metrics(opt.get("val"))
    _check_datasets(datasets, opt.get("scale"))
    _check_pretrained(opt.get("path"))


def _trial_network(opt: Mapping[str, Any]) -> Any:
    """Build ``network_g`` once (cheap, before BasicSR seeds its generators) so that every constructor error is
    named now; compare its scale with the top level's."""
    if "network_g" not in opt:
        raise OptionKeyError("the option file has no 'network_g' block (e.g. network_g: {type: DANv2, scale: 4})")
    from ..archs import build_arch

    net = build_arch(opt["network_g"], "network_g")
    net_scale = getattr(net, "scale", None)
    if isinstance(net_scale, int) and "scale" in opt and int(opt["scale"]) != net_scale:
        raise OptionValueError(
            f"scale: {opt['scale']} differs from network_g's x{net_scale}: the datasets and the metrics would use "
            "another factor than the network; make them equal"
        )
    return net


#: BasicSR 1.4.2's schedulers by the names ``setup_schedulers`` accepts
_SCHEDULERS = {"MultiStepLR": "MultiStepRestartLR", "MultiStepRestartLR": "MultiStepRestartLR",
               "CosineAnnealingRestartLR": "CosineAnnealingRestartLR"}


def _typed_block(block: Any, where: str, example: str) -> str:
    if not isinstance(block, Mapping) or "type" not in block:
        raise OptionKeyError(f"{where} must be an option block with a 'type' key, e.g. {example}; got {block!r}")
    return str(block["type"])


def _registered(registry: Any, block: Any, where: str, what: str, example: str) -> tuple[str, Any]:
    """(type, class or function) of an option block whose ``type`` names an entry of a BasicSR registry."""
    kind = _typed_block(block, where, example)
    names = list(registry.keys())  # BasicSR's Registry iterates over pairs
    if kind not in names:
        raise OptionValueError(
            f"{where}.type {kind!r} is not {what}{did_you_mean(kind, names)}; registered: {', '.join(sorted(names))}"
        )
    return kind, registry.get(kind)


def _check_train_block(block: Any) -> None:
    if not isinstance(block, Mapping):
        raise OptionKeyError("a training run needs a 'train:' block (optim_g, total_iter, pixel_opt, ...)")
    import torch
    from basicsr.losses import LOSS_REGISTRY
    from basicsr.models import lr_scheduler

    if "optim_g" not in block:
        raise OptionKeyError("train: missing 'optim_g' (e.g. {type: Adam, lr: 1.0e-4, betas: [0.9, 0.99]})")
    kind = _typed_block(block["optim_g"], "train.optim_g", "{type: Adam, lr: 1.0e-4}")
    if kind != "Adam":
        raise OptionValueError(
            f"train.optim_g.type {kind!r}: BasicSR 1.4.2 builds only 'Adam'{did_you_mean(kind, ['Adam'])}"
        )
    check_call_options(block["optim_g"], torch.optim.Adam, "train.optim_g (Adam)", given=("params",))
    if block.get("scheduler") is not None:
        kind = _typed_block(block["scheduler"], "train.scheduler", "{type: MultiStepLR, milestones: [1000]}")
        if kind not in _SCHEDULERS:
            raise OptionValueError(
                f"train.scheduler.type {kind!r} is not one of BasicSR's{did_you_mean(kind, _SCHEDULERS)}: "
                f"{', '.join(_SCHEDULERS)}"
            )
        scheduler = getattr(lr_scheduler, _SCHEDULERS[kind])
        check_call_options(block["scheduler"], scheduler, f"train.scheduler ({kind})", given=("optimizer",))
    for key in ("pixel_opt", "kernel_opt"):
        if block.get(key) is None:
            continue
        kind, loss = _registered(LOSS_REGISTRY, block[key], f"train.{key}", "a BasicSR loss",
                                 "{type: L1Loss, loss_weight: 1.0}")
        check_call_options(block[key], loss, f"train.{key} ({kind})")


def _check_degradation(opt: Mapping[str, Any], net: Any) -> None:
    if opt.get("degradation") is None:
        return  # DANModel names it; another model type may not need one
    from ..degradations import build_degradation

    degradation = build_degradation(dict(opt["degradation"]))
    net_scale, deg_scale = getattr(net, "scale", None), getattr(degradation, "scale", None)
    if isinstance(net_scale, int) and deg_scale is not None and int(deg_scale) != net_scale:
        raise OptionValueError(f"degradation scale x{deg_scale} differs from network_g's x{net_scale}")


def _check_metrics(val: Any) -> None:
    metrics = val.get("metrics") if isinstance(val, Mapping) else None
    if metrics is None:
        return
    if not isinstance(metrics, Mapping):
        raise OptionKeyError(f"val.metrics must map names to {{type: calculate_psnr, ...}} blocks, got {metrics!r}")
    from basicsr.metrics import METRIC_REGISTRY

    for name, block in metrics.items():
        kind, metric = _registered(METRIC_REGISTRY, block, f"val.metrics.{name}", "a BasicSR metric",
                                   "{type: calculate_psnr, crop_border: 4}")
        # BasicSR's metrics take **kwargs only to ignore the rest of the block: a misspelled key would be lost
        check_call_options(block, metric, f"val.metrics.{name} ({kind})", given=("img", "img2"), extra_ignored=True)


_DATA_ROOTS = ("dataroot", "dataroot_gt", "dataroot_lq")


def _check_datasets(datasets: Any, scale: Any = None) -> None:
    if not isinstance(datasets, Mapping):
        return
    from basicsr.utils.registry import DATASET_REGISTRY

    for phase, block in datasets.items():
        kind, dataset = _registered(DATASET_REGISTRY, block, f"datasets.{phase}", "a registered dataset",
                                    "{type: BlindSRHRDataset, dataroot_gt: ...}")
        accepted = getattr(dataset, "OPTION_KEYS", None)
        if accepted is not None:
            check_keys(block, accepted, f"datasets.{phase} ({kind})")
        for key in _DATA_ROOTS:
            root = block.get(key)
            if isinstance(root, str) and not root.startswith("builtin:") and not os.path.exists(root):
                raise FileNotFoundError(f"datasets.{phase}.{key}: {root!r} does not exist")
        if accepted is not None:  # dan-blocks' datasets only list their files when built: cheap, done now
            _trial_dataset(dataset, block, str(phase), scale)


def _trial_dataset(dataset: Any, block: Mapping[str, Any], phase: str, scale: Any) -> None:
    """Build a dataset as BasicSR will (``phase`` and ``scale`` added), so that an empty folder, a test set of
    another scale or a missing file is named before any work; the error keeps its type. For ``train``, an epoch
    without a single batch is refused too (`check_epoch_size`)."""
    options = {**block, "phase": phase.split("_")[0], **({"scale": scale} if scale is not None else {})}
    try:
        built = dataset(options)
    except (OSError, ValueError, KeyError, TypeError) as err:
        message = f"datasets.{phase}: {err.args[0] if isinstance(err, KeyError) and err.args else err}"
        try:
            raised = type(err)(message)
        except Exception:
            raised = ValueError(message)
        raise raised from None
    if phase == "train":
        check_epoch_size(len(built), block)


def check_epoch_size(samples: int, block: Mapping[str, Any], world_size: int | None = None) -> None:
    """Raise `OptionValueError` when an epoch of the training set holds no batch.

    BasicSR's ``EnlargedSampler`` gives each of ``world_size`` processes ``ceil(samples * dataset_enlarge_ratio /
    world_size)`` indices and its data loader drops the last incomplete batch, so a ``batch_size_per_gpu`` above
    that makes every epoch empty: BasicSR then loops over empty epochs and saves the untrained weights as the
    result. ``world_size`` defaults to torchrun's ``WORLD_SIZE`` (1 without torchrun).
    """
    batch, ratio = block.get("batch_size_per_gpu"), block.get("dataset_enlarge_ratio", 1) or 1
    if not isinstance(batch, int) or not isinstance(ratio, int):
        return  # their types are named by the value check
    if world_size is None:
        try:
            world_size = max(1, int(os.environ.get("WORLD_SIZE", "1")))
        except ValueError:
            world_size = 1
    per_process = -(-samples * ratio // world_size)
    if per_process < batch:
        spread = f" over {world_size} processes" if world_size > 1 else ""
        raise OptionValueError(
            f"datasets.train.batch_size_per_gpu {batch} is larger than the training set: {samples} image(s) x "
            f"dataset_enlarge_ratio {ratio} = {per_process} sample(s) per epoch{spread}, so an epoch would have 0 "
            f"iterations. Lower batch_size_per_gpu to at most {per_process}, or raise dataset_enlarge_ratio to at "
            f"least {-(-batch * world_size // max(1, samples))}"
        )


def _check_pretrained(paths: Any) -> None:
    if not isinstance(paths, Mapping):
        return
    from ..inference.loading import dan_state_dict

    pairs = (("pretrain_network_g", "param_key_g"), ("pretrain_network_estimator", "param_key_estimator"))
    for key, param_key in pairs:
        value = paths.get(key)
        if not isinstance(value, str) or not value or value == "~":
            continue
        if not os.path.isfile(value):
            what = "is a folder" if os.path.isdir(value) else "does not exist"
            raise FileNotFoundError(f"path.{key}: {value!r} {what}; expected a checkpoint file")
        state = dan_state_dict(value, paths.get(param_key, "params"))  # readable, safe, holding that key
        bad = nonfinite_tensors(state)
        if bad:
            raise OptionValueError(f"path.{key}: {value!r} {describe_nonfinite(bad)}")


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinity (`dan_blocks.utils.all_finite`,
    the check `load_model` makes)."""
    import torch

    from ..utils import all_finite

    return [name for name, value in state.items() if isinstance(value, torch.Tensor) and not all_finite(value)]


def describe_nonfinite(names: list[str]) -> str:
    """``holds NaN or infinite weights in ...`` for an error message (the first five names)."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"holds NaN or infinite weights ({shown}): a diverged training saved it, or it is damaged; "
            "training or testing from it would only produce NaN")
