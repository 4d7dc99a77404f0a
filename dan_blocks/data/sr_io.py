"""Image and kernel files for ``dan-blocks sr``: grey / grey+alpha / RGB / RGBA in 8 or 16 bit, atomic writes.

An `InputImage` holds the RGB planes the network sees (grey replicated to 3 channels) and what is
needed to write the result back in the input's mode and bit depth: grey results become grey again (BT.601
luma, ``0.299 R + 0.587 G + 0.114 B``), an alpha plane is upscaled separately with MATLAB bicubic
(`imresize()`). A grey+alpha PNG (which OpenCV decodes as 4 channels) is written back as grey+alpha; a
grey+alpha TIFF is refused (OpenCV drops its alpha plane when reading it).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from ..degradations.imresize import imresize
from ..utils import atomic_path
from .image_io import check_complete

__all__ = [
    "SR_EXTENSIONS",
    "InputImage",
    "collect_inputs",
    "kernel_picture",
    "read_input",
    "save_npy",
    "sr_to_array",
    "write_array",
]

#: file types ``dan-blocks sr`` reads (and writes back in the same format)
SR_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

_LUMA = (0.299, 0.587, 0.114)


@dataclass
class InputImage:
    """A decoded input: ``rgb`` (1, 3, H, W) float in [0, 1]; ``alpha`` (1, 1, H, W) or None; ``mode`` and
    ``max_value`` (255 or 65535) to write the result back alike."""

    path: str
    rgb: Tensor
    alpha: Tensor | None
    mode: Literal["grey", "grey_alpha", "rgb", "rgba"]
    max_value: int


def collect_inputs(paths: list[str]) -> tuple[list[str], list[str]]:
    """Expand files and folders (their image files, sorted, not recursive) -> (images, problems)."""
    found: list[str] = []
    problems: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.lower().endswith(SR_EXTENSIONS))
            problems += [f"{os.path.join(path, n)}: hidden file, skipped" for n in names if n.startswith(".")]
            names = [n for n in names if not n.startswith(".")]
            if not names:
                problems.append(f"{path}: folder holds no PNG, JPEG or TIFF file")
            found += [os.path.join(path, n) for n in names]
        elif os.path.isfile(path):
            found.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def _png_colour_type(path: str) -> int | None:
    """The colour type of a PNG's IHDR chunk (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), None if unreadable."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[25]


def _tiff_samples(path: str) -> int | None:
    """SamplesPerPixel (tag 277) of a classic TIFF's first image, None if not found."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            return None
        order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(order + "H", head[2:4])[0] != 42:  # BigTIFF (43) and others: not inspected
            return None
        handle.seek(struct.unpack(order + "I", head[4:8])[0])
        count_bytes = handle.read(2)
        if len(count_bytes) < 2:
            return None
        count = struct.unpack(order + "H", count_bytes)[0]
        entries = handle.read(12 * count)
    for index in range(len(entries) // 12):
        tag, kind = struct.unpack(order + "HH", entries[12 * index : 12 * index + 4])
        if tag == 277:
            value = entries[12 * index + 8 : 12 * index + 12]
            return struct.unpack(order + ("H" if kind == 3 else "I"), value[:2] if kind == 3 else value)[0]
    return None


def read_input(path: str) -> InputImage:
    """Read a PNG / JPEG / TIFF (grey, RGB, RGBA; grey+alpha PNG; 8 or 16 bit).

    Raises:
        OSError: naming the file, when it cannot be decoded or has an unsupported layout (a grey+alpha TIFF,
            whose alpha OpenCV drops: save it as PNG).
    """
    if not path.lower().endswith(SR_EXTENSIONS):
        raise OSError(f"{path}: unsupported file type (expected {', '.join(SR_EXTENSIONS)})")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None and os.path.isfile(path):
        check_complete(path)  # a cut-off file is named as such even when OpenCV decodes none of it
    if img is None:
        raise OSError(f"{path}: cannot decode the image (corrupt, empty or not an image)")
    check_complete(path)  # by content, as OpenCV decodes: a PNG named .jpg is read (and checked) as a PNG
    if img.ndim == 2 and _tiff_samples(path) == 2:
        raise OSError(
            f"{path}: grey+alpha TIFF is not supported (OpenCV drops its alpha plane when reading it); save it as "
            "PNG (grey+alpha PNGs are read and written back as grey+alpha) or as RGBA TIFF"
        )
    if img.dtype == np.uint8:
        max_value = 255
    elif img.dtype == np.uint16:
        max_value = 65535
    else:
        raise OSError(f"{path}: unsupported sample type {img.dtype} (expected 8 or 16 bit)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        planes, alpha, mode = np.repeat(img[:, :, None], 3, axis=2), None, "grey"
    elif img.ndim == 3 and img.shape[2] == 3:
        planes, alpha, mode = img[:, :, ::-1], None, "rgb"
    elif img.ndim == 3 and img.shape[2] == 4:
        grey_alpha = _png_colour_type(path) == 4  # OpenCV: B = G = R = grey (by content, whatever the extension)
        planes, alpha, mode = img[:, :, 2::-1], img[:, :, 3], "grey_alpha" if grey_alpha else "rgba"
    else:
        raise OSError(f"{path}: unsupported channel layout {img.shape} (expected grey, RGB or RGBA)")
    scale = 1.0 / max_value
    rgb = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)).astype(np.float32) * scale)[None]
    alpha_t = None if alpha is None else torch.from_numpy(alpha.astype(np.float32) * scale)[None, None]
    return InputImage(path, rgb, alpha_t, mode, max_value)  # type: ignore[arg-type]


def _quantise(x: Tensor, max_value: int) -> np.ndarray:
    dtype = np.uint8 if max_value == 255 else np.uint16
    return torch.round(x.float().clamp(0, 1) * max_value).cpu().numpy().astype(dtype)


def sr_to_array(sr: Tensor, image: InputImage, scale: int, path: str) -> np.ndarray:
    """SR (1, 3, sH, sW) -> an array for `write_array()` in the input's mode (grey (sH, sW), grey+alpha
    (sH, sW, 2), BGR[A] order) and bit depth.

    The output's format is its name's (``path``), as `write_array()` writes it: a JPEG output is 8-bit without
    alpha even when the input (a PNG named ``.jpg``, read by content) was 16-bit or had an alpha plane.
    """
    rgb = sr[0].detach().float().cpu()
    jpeg = path.lower().endswith((".jpg", ".jpeg"))
    keep_alpha = image.alpha is not None and not jpeg
    max_value = 255 if jpeg else image.max_value
    if image.mode in ("grey", "grey_alpha"):
        planes = [_quantise(sum(w * rgb[i] for i, w in enumerate(_LUMA)), max_value)]
    else:
        planes = [_quantise(rgb[i], max_value) for i in (2, 1, 0)]
    if keep_alpha:
        alpha = imresize(image.alpha.float(), scale)[0, 0]  # type: ignore[union-attr]
        planes.append(_quantise(alpha, max_value))
    if len(planes) == 1:
        return planes[0]
    return np.ascontiguousarray(np.stack(planes, axis=2))


def kernel_picture(kernel: Tensor, min_side: int = 256) -> np.ndarray:
    """A (k, k) kernel -> uint8 grey picture: divided by its maximum (negative taps clipped to 0), enlarged
    with nearest neighbours to at least ``min_side`` pixels."""
    k = kernel.detach().float().cpu()
    if k.dim() != 2:
        raise ValueError(f"kernel_picture: expected a (k, k) kernel, got shape {tuple(k.shape)}")
    peak = float(k.max())
    norm = (k.clamp(min=0) / peak) if peak > 0 else torch.zeros_like(k)
    factor = max(1, -(-min_side // max(k.shape)))
    big = norm.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return torch.round(big * 255).to(torch.uint8).numpy()


def _png_grey_alpha(array: np.ndarray) -> bytes:
    """A grey+alpha PNG (colour type 4, 8 or 16 bit) of an (H, W, 2) array (OpenCV writes 1, 3 or 4 channels)."""
    height, width, _ = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    samples = np.ascontiguousarray(array.astype(">u2" if depth == 16 else np.uint8)).view(np.uint8)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), samples.reshape(height, -1)], axis=1)  # filter 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def write_array(path: str, array: np.ndarray) -> None:
    """``cv2.imwrite`` atomically (see `atomic_path()`); an (H, W, 2) grey+alpha array is written as a grey+alpha
    PNG (8 or 16 bit)."""
    if array.ndim == 3 and array.shape[2] == 2:
        if not path.lower().endswith(".png"):
            raise OSError(f"{path}: grey+alpha images are written as PNG only")
        if array.dtype not in (np.uint8, np.uint16):
            raise OSError(f"{path}: cannot write {array.dtype} samples (expected uint8 or uint16)")
        data = _png_grey_alpha(array)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
        return
    with atomic_path(path, keep_extension=True) as tmp:
        if not cv2.imwrite(tmp, array):
            raise OSError(f"{path}: cannot write the image")


def save_npy(path: str, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
