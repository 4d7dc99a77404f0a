"""The option keys DANModel reads (checked with `dan_blocks.utils.check_keys()`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..utils import check_keys

__all__ = ["PATH_KEYS", "TRAIN_KEYS", "VAL_KEYS", "check_path_block"]

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
