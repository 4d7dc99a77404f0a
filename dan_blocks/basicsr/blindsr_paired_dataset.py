"""``BlindSRPairedDataset``: LR/HR(/kernel) pairs from make-testset output, DIV2KRK, or built-in photos."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.builtin import is_builtin
from ..data.div2krk import RELEASE_KERNEL_SIZE, list_pairs, pairs_layout, read_kernel
from ..data.image_io import read_image, to_tensor
from ..degradations.kernels import isotropic_gaussian_kernel
from ..utils import check_keys

__all__ = ["BlindSRPairedDataset"]

_KEYS = (
    "name",
    "type",
    "phase",
    "scale",
    "io_backend",
    "dataroot",
    "dataroot_gt",
    "protocol",
    "seed",
    "kernel_size",
    "sigma",
    "random_disturb",
    "max_size",
    "num_worker_per_gpu",
    "batch_size_per_gpu",
    "use_shuffle",
    "prefetch_mode",
    "pin_memory",
    "persistent_workers",
    "dataset_enlarge_ratio",
)


class BlindSRPairedDataset(Dataset):
    """Paired blind-SR data for validation/testing.

    Options: ``dataroot`` (or ``dataroot_gt``): a ``dan-blocks make-testset`` output folder (read through its
    manifest.json), a folder made by the DAN release's Gaussian8 script (``HR/x<s>/`` and ``LRblur/x<s>/``,
    ``sig<σ>_<name>.png``: the kernel is the isotropic Gaussian of that σ, k = 21), a DIV2KRK-layout folder
    (gt/, lr_x<s>/, gt_k_x<s>/ with .mat kernels), or
    ``builtin:skimage-test`` (the set is made in memory with ``protocol`` ``gaussian8``/``aniso``, ``seed``,
    optional ``kernel_size``, ``sigma``, ``random_disturb``, ``max_size``); ``scale``.

    Item: ``{"lq": (3, h, w), "gt": (3, h*s, w*s)`` float32 RGB in [0, 1], ``"kernel": (k, k)`` (when known),
    ``"lq_path": str, "gt_path": str}``.

    Sizes: a make-testset folder's GT is mod-cropped when it is made, so each LR must be exactly GT / s (anything
    else is a damaged or replaced file: an error naming the pair and both sizes). In the other layouts a GT
    larger than s x LR is cropped at the bottom/right to s x LR (the usual mod-crop); a smaller one is an error.
    """

    #: the option keys it accepts (checked before a run starts and on construction)
    OPTION_KEYS: tuple[str, ...] = _KEYS

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        check_keys(opt, _KEYS, "BlindSRPairedDataset options")
        root = opt.get("dataroot", opt.get("dataroot_gt"))
        if root is None:
            raise KeyError(
                "BlindSRPairedDataset: missing option 'dataroot' (make-testset output, DIV2KRK folder "
                "or builtin:skimage-test)"
            )
        if "scale" not in opt:
            raise KeyError("BlindSRPairedDataset: missing option 'scale'")
        self.opt, self.root, self.scale = opt, root, int(opt["scale"])
        self._memory: list[dict[str, Any]] = []
        self._exact_sizes = False
        if is_builtin(root):
            from ..data.testsets import iter_testset, sources

            extra = {k: opt[k] for k in ("kernel_size", "sigma", "random_disturb", "max_size") if k in opt}
            if "sigma" in extra:
                extra["sigma"] = tuple(extra["sigma"])
            for rec in iter_testset(
                sources(root), opt.get("protocol", "gaussian8"), self.scale, int(opt.get("seed", 0)), **extra
            ):
                for stem, lr, kernel, params in rec["items"]:
                    self._memory.append(
                        {
                            "lq": lr,
                            "gt": rec["gt"],
                            "kernel": kernel,
                            "params": params,
                            "lq_path": f"{root}/{stem}.png",
                            "gt_path": f"{root}/{rec['name']}.png",
                        }
                    )
            self.pairs: list[dict[str, Any]] = []
        else:
            if "protocol" in opt:
                raise KeyError(
                    f"BlindSRPairedDataset: 'protocol' only applies to builtin data roots, not {root!r}"
                )
            self._exact_sizes = pairs_layout(root, self.scale) == "manifest"
            self.pairs = list_pairs(root, self.scale)
            if not self.pairs:
                raise FileNotFoundError(f"BlindSRPairedDataset: no LR/HR pairs found in {root!r}")

    def _check(self, lq: np.ndarray, gt: np.ndarray, lq_path: str, gt_path: str) -> np.ndarray:
        """The GT matching the LR: exact sizes for a manifest folder, else mod-cropped to s x LR."""
        h, w = lq.shape[:2]
        s = self.scale
        if self._exact_sizes and gt.shape[:2] != (h * s, w * s):
            gh, gw = gt.shape[:2]
            raise ValueError(
                f"test-set pair LR {lq_path!r} / GT {gt_path!r}: the LR is {h}x{w}, expected {gh / s:g}x{gw / s:g} "
                f"(GT {gh}x{gw} / scale {s}); make-testset writes exact sizes, so one of the files was damaged "
                "or replaced"
            )
        if gt.shape[0] < h * s or gt.shape[1] < w * s:
            raise ValueError(
                f"GT {gt_path!r} ({gt.shape[0]}x{gt.shape[1]}) is smaller than {s}x the LR "
                f"{lq_path!r} ({h}x{w})"
            )
        return gt[: h * s, : w * s]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._memory:
            rec = self._memory[index]
            lq, gt, kernel = rec["lq"], rec["gt"], rec["kernel"]
            lq_path, gt_path = rec["lq_path"], rec["gt_path"]
        else:
            pair = self.pairs[index]
            lq_path, gt_path = pair["lr"], pair["gt"]
            lq, gt = read_image(lq_path), read_image(gt_path)
            kernel = read_kernel(pair["kernel"]) if pair.get("kernel") else None
            if kernel is None and pair.get("sigma") is not None:  # the release's Gaussian8 layout
                kernel = isotropic_gaussian_kernel(
                    torch.tensor([pair["sigma"]], dtype=torch.float64), RELEASE_KERNEL_SIZE
                )[0].float().numpy()
        gt = self._check(lq, gt, lq_path, gt_path)
        item: dict[str, Any] = {
            "lq": to_tensor(lq),
            "gt": to_tensor(np.ascontiguousarray(gt)),
            "lq_path": lq_path,
            "gt_path": gt_path,
        }
        if kernel is not None:
            item["kernel"] = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
        return item

    def __len__(self) -> int:
        return len(self._memory) if self._memory else len(self.pairs)
