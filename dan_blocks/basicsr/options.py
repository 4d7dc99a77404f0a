"""The option keys DANModel reads (checked with `dan_blocks.utils.check_keys()`)."""

from __future__ import annotations

__all__ = ["TRAIN_KEYS", "VAL_KEYS"]

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
