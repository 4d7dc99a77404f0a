"""``BlindSRHRDataset``: HR training patches (folder, lmdb, built-in photos); the model degrades them."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
from basicsr.data.transforms import augment
from torch.utils.data import Dataset

from ..data.builtin import is_builtin, load_builtin
from ..data.image_io import list_images, read_image, to_tensor
from ..utils import check_keys

__all__ = ["BlindSRHRDataset"]

_KEYS = (
    "name",
    "type",
    "phase",
    "scale",
    "io_backend",
    "gt_size",
    "use_hflip",
    "use_rot",
    "dataroot_gt",
    "meta_info_file",
    "use_shuffle",
    "num_worker_per_gpu",
    "batch_size_per_gpu",
    "dataset_enlarge_ratio",
    "prefetch_mode",
    "pin_memory",
    "persistent_workers",
    "color",
    "filename_tmpl",
)


def _lmdb_keys(root: str) -> list[str]:
    meta = os.path.join(root, "meta_info.txt")
    if not os.path.isfile(meta):
        raise FileNotFoundError(
            f"lmdb data root {root!r} has no meta_info.txt (made by BasicSR's create_lmdb)"
        )
    with open(meta, encoding="utf-8") as f:
        return [line.split(" ")[0].rsplit(".", 1)[0] for line in f if line.strip()]


class BlindSRHRDataset(Dataset):
    """HR images for on-the-fly blind-SR degradation.

    Options (BasicSR keys): ``dataroot_gt`` (folder, ``*.lmdb`` folder, or ``builtin:skimage-train``),
    ``io_backend: {type: disk | lmdb}``, ``phase`` (``train`` crops random ``gt_size`` patches with
    ``use_hflip``/``use_rot`` augmentation as BasicSR; other phases give whole images mod-cropped to
    ``scale``),
    ``gt_size``, ``scale``, optional ``meta_info_file`` (one file name per line, relative to ``dataroot_gt``).

    Item: ``{"gt": (3, H, W) float32 RGB in [0, 1], "gt_path": str}``.
    """

    #: the option keys it accepts (checked before a run starts and on construction)
    OPTION_KEYS: tuple[str, ...] = _KEYS

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        check_keys(opt, _KEYS, "BlindSRHRDataset options")
        if "dataroot_gt" not in opt:
            raise KeyError(
                "BlindSRHRDataset: missing option 'dataroot_gt' (folder, lmdb or builtin:skimage-train)"
            )
        self.opt = opt
        self.root = opt["dataroot_gt"]
        self.scale = int(opt.get("scale", 1))
        self.train = opt.get("phase", "train") == "train"
        self.gt_size = opt.get("gt_size")
        if self.train and not self.gt_size:
            raise KeyError("BlindSRHRDataset: training needs 'gt_size' (HR patch size)")
        backend = dict(opt.get("io_backend") or {"type": "disk"})
        self.backend_type = backend.pop("type", "disk")
        self.backend_args = backend
        self._client: Any = None
        self._images: dict[str, np.ndarray] = {}
        if is_builtin(self.root):
            self._images = {f"{self.root}/{n}.png": img for n, img in load_builtin(self.root)}
            self.paths = list(self._images)
        elif self.backend_type == "lmdb":
            self.paths = _lmdb_keys(self.root)
        elif self.backend_type == "disk":
            if opt.get("meta_info_file"):
                with open(opt["meta_info_file"], encoding="utf-8") as f:
                    names = [line.split(" ")[0] for line in f if line.strip()]
                self.paths = [os.path.join(self.root, n) for n in names]
            else:
                self.paths = list_images(self.root)
        else:
            raise ValueError(
                f"BlindSRHRDataset: unknown io_backend type {self.backend_type!r}; accepted: ['disk', 'lmdb']"
            )
        if not self.paths:
            raise FileNotFoundError(f"BlindSRHRDataset: no images found in {self.root!r}")

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        path = self.paths[index]
        if path in self._images:
            return self._images[path], path
        if self.backend_type == "lmdb":
            import cv2
            from basicsr.utils import FileClient

            if self._client is None:
                self._client = FileClient(
                    "lmdb", db_paths=[self.root], client_keys=["gt"], **self.backend_args
                )
            buf = np.frombuffer(self._client.get(path, "gt"), np.uint8)
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot decode image {path!r} in lmdb {self.root!r}")
            return np.ascontiguousarray(img[:, :, ::-1]), f"{self.root}/{path}"
        return read_image(path), path

    def __getitem__(self, index: int) -> dict[str, Any]:
        img, path = self._read(index)
        h, w = img.shape[:2]
        if self.train:
            size = int(self.gt_size or 0)
            if h < size or w < size:
                raise ValueError(f"BlindSRHRDataset: image {path!r} ({h}x{w}) is smaller than gt_size={size}")
            top, left = random.randint(0, h - size), random.randint(0, w - size)
            img = img[top : top + size, left : left + size].copy()  # never flip a cached image in place
            img = augment(img, self.opt.get("use_hflip", True), self.opt.get("use_rot", True))
        else:
            img = img[: h - h % self.scale, : w - w % self.scale]
        return {"gt": to_tensor(np.ascontiguousarray(img)), "gt_path": path}

    def __len__(self) -> int:
        return len(self.paths)
