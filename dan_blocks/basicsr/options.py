"""The option keys DANModel reads (checked with `dan_blocks.utils.check_keys()`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..utils import check_keys

__all__ = [
    "DIST_KEYS",
    "LOGGER_KEYS",
    "PATH_KEYS",
    "TOP_KEYS",
    "TRAIN_KEYS",
    "VAL_KEYS",
    "WANDB_KEYS",
    "check_option_file",
    "check_path_block",
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

#: top-level keys of a BasicSR option file that a DANModel run reads (BasicSR's own plus ``degradation``; the
#: last five are set by BasicSR's parser itself)
TOP_KEYS: tuple[str, ...] = (
    "name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g", "path", "train", "val",
    "logger", "dist_params", "degradation", "find_unused_parameters",
    "is_train", "dist", "rank", "world_size", "auto_resume", "root_path",
)
LOGGER_KEYS: tuple[str, ...] = ("print_freq", "save_checkpoint_freq", "use_tb_logger", "wandb")
WANDB_KEYS: tuple[str, ...] = ("project", "resume_id", "entity")
DIST_KEYS: tuple[str, ...] = ("backend", "port")


def check_option_file(opt: Mapping[str, Any], train: bool) -> None:
    """Check every block dan-blocks runs before any work starts: the top level, ``path``, ``logger`` (and its
    ``wandb``), ``dist_params`` and the dataset phases (``train`` / ``val*`` when training); ``train``, ``val``
    and ``degradation`` are checked by DANModel and ``build_degradation`` with the same messages.

    Raises:
        OptionKeyError: an unknown key, with the accepted keys and a did-you-mean.
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
