"""Image reading/writing helpers: RGB uint8 arrays, errors naming the file, atomic writes."""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch import Tensor

from ..utils import atomic_path
from ..utils.files import file_kind

__all__ = [
    "IMAGE_EXTENSIONS",
    "check_complete",
    "image_format",
    "list_images",
    "read_image",
    "to_tensor",
    "to_uint8",
    "write_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"


def list_images(folder: str | os.PathLike[str]) -> list[str]:
    """Sorted image file paths directly inside ``folder``.

    Raises:
        NotADirectoryError: ``folder`` is a file (names it).
        FileNotFoundError: ``folder`` does not exist (names it).
        OSError: an entry named like an image is no regular file (a named pipe would make its reader wait
            forever; a folder would fail later): each is named.
    """
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"image folder {folder} is a file, expected a folder of images")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    special = [f"{os.path.basename(p)} ({kind})" for p in paths if (kind := file_kind(p)) is not None]
    if special:
        raise OSError(f"image folder {folder} holds entries that are not regular files: {', '.join(special)}; "
                      "move them out of it")
    return paths


def image_format(path: str | os.PathLike[str]) -> str | None:
    """``"png"`` or ``"jpeg"`` from the file's first bytes (its real format, whatever its extension), else None."""
    with open(os.fspath(path), "rb") as handle:
        head = handle.read(8)
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def check_complete(path: str | os.PathLike[str]) -> None:
    """Raise ``OSError`` naming the file when a JPEG or PNG ends before its end marker (a cut-off download or
    copy): OpenCV decodes such files with the missing part grey, silently.

    The format is the file's real one (its magic bytes: PNG ``89 50 4E 47``, JPEG ``FF D8``), not its extension:
    OpenCV decodes by content, so a PNG named ``.jpg`` is checked (and read) as the PNG it is.
    JPEG: the end-of-image marker ``FF D9`` must be among the last 1 KiB (entropy-coded data escapes ``FF``, so
    the marker cannot occur there); PNG: the ``IEND`` chunk must end the file.
    """
    path = os.fspath(path)
    kind = image_format(path)
    if kind is None:
        return
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1024))
        tail = handle.read()
    if kind == "png":
        complete = b"IEND" in tail[-16:]
        what = "its IEND chunk"
    else:
        complete = b"\xff\xd9" in tail
        what = "its end-of-image marker"
    if not complete:
        raise OSError(
            f"{path}: the {kind.upper()} file is truncated (it ends before {what}); not processing a partial image"
        )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB (grey replicated, alpha dropped, 16-bit scaled).

    Decoded by content (a PNG named ``.jpg`` is read as the PNG it is).

    Raises:
        OSError: naming the file, when it is missing, cannot be decoded, is truncated or has an unsupported
            sample type.
    """
    path = os.fspath(path)
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is not None or os.path.isfile(path):
        check_complete(path)  # a cut-off file is named as such, whether OpenCV decoded part of it or nothing
    if img is None:
        raise OSError(f"cannot read image file {path!r} (missing, unreadable or not an image)")
    if img.dtype == np.uint16:
        img = np.round(img / 257.0).astype(np.uint8)
    if img.dtype != np.uint8:
        raise OSError(f"unsupported image dtype {img.dtype} in {path!r} (expected 8 or 16 bit)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB


def to_tensor(img: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (H, W, 3) RGB -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(dtype) / 255.0


def to_uint8(img: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> uint8 (H, W, 3) RGB with rounding (round(clamp(x, 0, 1) * 255))."""
    arr = torch.round(img.detach().float().clamp(0, 1) * 255.0).to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def write_image(path: str | os.PathLike[str], img: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) RGB image atomically (see `atomic_path()`)."""
    path = os.fspath(path)
    with atomic_path(path, keep_extension=True) as tmp:
        if not cv2.imwrite(tmp, np.ascontiguousarray(img[:, :, ::-1])):
            raise OSError(f"cannot write image file {path!r}")
