"""Image and kernel files for ``dan-blocks sr``: grey / grey+alpha / RGB / RGBA in 8 or 16 bit, atomic writes.

Reading follows image viewers: the EXIF orientation tag (JPEG, PNG, TIFF, WebP) is applied to the pixels; a
file holding several pages or frames (multi-page TIFF, animated GIF / WebP) is refused with its page count
(only its first would be read). Only regular files are read: a named pipe, a socket or a device is named and
skipped (reading a pipe would wait forever).

An `InputImage` holds the RGB planes the network sees (grey replicated to 3 channels) and what is
needed to write the result back in the input's mode and bit depth: grey results become grey again (BT.601
luma, ``0.299 R + 0.587 G + 0.114 B``), an alpha plane is upscaled separately with MATLAB bicubic
(`imresize()`). A grey+alpha PNG (which OpenCV decodes as 4 channels) is written back as grey+alpha; a
grey+alpha TIFF is refused (OpenCV drops its alpha plane when reading it).
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from ..degradations.imresize import imresize
from ..utils import atomic_path
from ..utils.files import file_kind, probe_space
from .image_io import check_complete

__all__ = [
    "SR_EXTENSIONS",
    "InputImage",
    "apply_orientation",
    "check_output_size",
    "collect_inputs",
    "exif_orientation",
    "frame_count",
    "image_from_array",
    "kernel_picture",
    "output_size",
    "read_input",
    "save_npy",
    "sr_to_array",
    "write_array",
]

#: file types ``dan-blocks sr`` reads (and, with ``--ext auto``, writes back in the same format; GIF as PNG)
SR_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")

#: image types that ``sr`` does not read: named when met in a folder
OTHER_IMAGE_EXTENSIONS = (
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".exr", ".hdr", ".pfm", ".ppm", ".pgm", ".pbm", ".pnm",
    ".svg", ".ico", ".dng", ".cr2", ".nef", ".arw", ".raw", ".psd",
)

#: formats that can hold several pages / frames (checked, and refused when they do)
_MULTI_FRAME = (".tif", ".tiff", ".gif", ".webp")

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


def collect_inputs(
    paths: list[str], is_output: Callable[[str], str | None] | None = None, notes: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Expand files and folders (their image files, sorted, not recursive) -> (images, problems).

    A file given explicitly is always returned (a bad one then fails by name when read), unless it is not a
    regular file. In a folder, only regular files of `SR_EXTENSIONS` are taken; everything else is named in
    ``problems``: hidden files, pipes and other special files, other image types, files ``is_output(name)``
    recognises as this command's outputs (it returns why), and, in one line, the remaining non-image files.
    A file reached twice (given and inside a given folder) is returned once. With a ``notes`` list, what is
    not a failure (earlier outputs, non-image files) is named there instead of in ``problems``.
    """
    found: list[str] = []
    problems: list[str] = []
    notes = problems if notes is None else notes
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)

    for path in paths:
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            taken = 0
            others: list[str] = []
            for name in names:
                full = os.path.join(path, name)
                if os.path.isdir(full):
                    continue  # not recursive
                lower = name.lower()
                kind = file_kind(full)
                if kind is not None:
                    problems.append(f"{full}: {kind}, not a regular file: not read")
                elif lower.endswith(SR_EXTENSIONS) and name.startswith("."):
                    problems.append(f"{full}: hidden file, skipped")
                elif lower.endswith(SR_EXTENSIONS):
                    why = is_output(full) if is_output is not None else None
                    if why is not None:
                        notes.append(f"{full}: {why}; give it explicitly to process it")
                    else:
                        add(full)
                        taken += 1
                elif lower.endswith(OTHER_IMAGE_EXTENSIONS):
                    problems.append(
                        f"{full}: {os.path.splitext(lower)[1]} images are not supported (supported: "
                        f"{', '.join(SR_EXTENSIONS)}); convert it to PNG"
                    )
                elif not name.startswith("."):
                    others.append(name)
            if others:
                listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                notes.append(f"{path}: {len(others)} file(s) that are not images: {listed}")
            if not taken:
                problems.append(f"{path}: folder holds no image to process ({', '.join(SR_EXTENSIONS)})")
        elif os.path.lexists(path) and os.path.exists(path):
            kind = file_kind(path)
            if kind is not None:
                problems.append(f"{path}: {kind}, not a regular file: not read")
            else:
                add(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def frame_count(path: str) -> int:
    """Pages / frames in a TIFF, GIF or WebP file (1 for other types or when it cannot be told)."""
    if not path.lower().endswith(_MULTI_FRAME):
        return 1
    try:
        from PIL import Image

        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:  # not readable by PIL: OpenCV decides below
        return 1


def exif_orientation(path: str) -> int:
    """The EXIF orientation tag (1..8) of an image file, 1 when it has none (or it cannot be read)."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as a viewer shows them for an EXIF ``orientation`` (the transforms of PIL's
    ``ImageOps.exif_transpose``), for (H, W) or (H, W, C) arrays."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(array))


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


@functools.lru_cache(maxsize=1)
def _opencv_turns_tiffs() -> bool:
    """Whether this OpenCV turns a TIFF as its Orientation tag says even with ``IMREAD_UNCHANGED`` (OpenCV 5 does,
    OpenCV 4 does not), probed once on a mirrored 2 x 1 TIFF; applying the tag again would turn it twice."""
    import io

    try:
        from PIL import Image

        buffer = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 2  # mirrored left-right
        Image.fromarray(np.array([[0, 255]], np.uint8)).save(buffer, format="TIFF", exif=exif)
        decoded = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception:
        return False
    return decoded is not None and int(decoded.reshape(-1)[0]) == 255


def _tiff_with_pil(path: str) -> np.ndarray | None:
    """A TIFF that OpenCV refuses, read with PIL in OpenCV's layout (BGR / BGRA / grey, 8 or 16 bit) and turned
    upright as viewers show it (PIL's ``exif_transpose``; PIL may already have turned it while decoding), or None.

    OpenCV 5 fails on TIFFs whose Orientation tag is not 1 (``Internal imread issue``: a scanner's or a phone's
    rotated page, or any TIFF PIL saves with an EXIF orientation), calling a valid image undecodable."""
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as opened:
            opened.load()
            img = ImageOps.exif_transpose(opened)
            if img.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16).copy()
            if img.mode not in ("L", "RGB", "RGBA"):
                return None
            array = np.asarray(img)
    except Exception:
        return None
    if array.ndim == 3:
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]
    return np.ascontiguousarray(array)


def read_input(path: str) -> InputImage:
    """Read a PNG / JPEG / TIFF / WebP / BMP / GIF (grey, RGB, RGBA; grey+alpha PNG; 8 or 16 bit), turned as
    its EXIF orientation says.

    Raises:
        OSError: naming the file, when it is not a regular file, holds several pages or frames, cannot be
            decoded or has an unsupported layout (a grey+alpha TIFF, whose alpha OpenCV drops: save it as PNG).
    """
    if not path.lower().endswith(SR_EXTENSIONS):
        raise OSError(f"{path}: unsupported file type (expected {', '.join(SR_EXTENSIONS)})")
    kind = file_kind(path)
    if kind is not None and os.path.exists(path):  # a pipe would block the reader forever
        raise OSError(f"{path}: {kind}, not a regular file: not read")
    frames = frame_count(path)
    if frames > 1:
        raise OSError(
            f"{path}: holds {frames} pages/frames; sr reads single images only (it would read the first alone): "
            "split it into one file per page first"
        )
    tiff = path.lower().endswith((".tif", ".tiff"))
    img = None
    if tiff and exif_orientation(path) >= 5 and _opencv_turns_tiffs():
        img = _tiff_with_pil(path)  # OpenCV 5 fails on these (width and height swap), logging an error first
    upright = img is not None
    if img is None:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        upright = tiff and img is not None and _opencv_turns_tiffs()  # OpenCV 5 turns a TIFF itself
        if tiff and img is not None and img.ndim == 3 and img.shape[2] == 4 and img.dtype == np.uint8:
            # OpenCV multiplies the colours of a TIFF with unassociated alpha (ExtraSamples 2, as PIL, GIMP and
            # most editors write it) by that alpha: PIL reads them as stored (its mode RGBA)
            straight = _tiff_with_pil(path)
            if straight is not None and straight.ndim == 3 and straight.shape[2] == 4:
                img, upright = straight, True
    if img is None and tiff:
        img = _tiff_with_pil(path)
        upright = img is not None
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
    grey_alpha = img.ndim == 3 and img.shape[2] == 4 and _png_colour_type(path) == 4
    if not upright:
        img = apply_orientation(img, exif_orientation(path))  # as viewers show it (OpenCV's UNCHANGED ignores it)
    return image_from_array(img, path, grey_alpha=grey_alpha)


def image_from_array(img: np.ndarray, path: str = "<array>", *, grey_alpha: bool = False) -> InputImage:
    """An `InputImage` from an OpenCV-layout array: (H, W) grey, (H, W, 2) grey+alpha, (H, W, 3) BGR or
    (H, W, 4) BGRA (``grey_alpha``: a BGRA array whose B = G = R is grey+alpha), uint8 or uint16.

    Raises:
        OSError: naming ``path``, for another dtype or layout.
    """
    if img.dtype == np.uint8:
        max_value = 255
    elif img.dtype == np.uint16:
        max_value = 65535
    else:
        raise OSError(f"{path}: unsupported sample type {img.dtype} (expected 8 or 16 bit)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:
        img, grey_alpha = np.concatenate([img[:, :, :1]] * 3 + [img[:, :, 1:]], axis=2), True
    if img.ndim == 2:
        planes, alpha, mode = np.repeat(img[:, :, None], 3, axis=2), None, "grey"
    elif img.ndim == 3 and img.shape[2] == 3:
        planes, alpha, mode = img[:, :, ::-1], None, "rgb"
    elif img.ndim == 3 and img.shape[2] == 4:
        # a grey+alpha PNG: OpenCV gives B = G = R = grey (by content, whatever the extension)
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


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """(height, width) of an image of ``height x width`` LR pixels resized by ``outscale``: ``int(side *
    outscale)`` as Real-ESRGAN's ``--outscale`` computes it, at least 1."""
    return max(1, int(height * outscale)), max(1, int(width * outscale))


#: the largest side each output format can hold (JPEG's 16-bit sizes, WebP's 14-bit ones)
MAX_SIDE = {".jpg": 65535, ".jpeg": 65535, ".webp": 16383}


#: bytes per output pixel and plane that resizing to ``--outscale`` takes (float planes, copies, rounding):
#: measured 34.7 bytes per RGB pixel (12.8 GB for a 19200 x 19200 output)
RESIZE_BYTES_PER_SAMPLE = 12


def _memory_available() -> int | None:
    """Bytes of memory a new allocation can get (``MemAvailable`` + ``SwapFree``), None where not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.strip()}
    except (OSError, ValueError, IndexError):
        return None
    if "MemAvailable" not in fields:
        return None
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def check_output_size(path: str, height: int, width: int, planes: int = 0) -> None:
    """Raise ``OSError`` naming ``path`` when an image of ``height x width`` cannot be written in its format
    (`MAX_SIDE`), or, with ``planes`` (an ``--outscale`` resize of that many planes), when resizing it would
    take more memory than the machine has: found before the image is computed, not after (a 32-px WebP at
    ``--outscale 600`` took 85 s and 12.8 GB, then "cannot write the image"; a JPEG at ``--outscale 600`` was
    killed by the system)."""
    limit = MAX_SIDE.get(os.path.splitext(path)[1].lower())
    if limit is not None and max(height, width) > limit:
        raise OSError(
            f"{path}: the output would be {width} x {height} pixels, and {os.path.splitext(path)[1][1:].upper()} "
            f"holds at most {limit} per side; choose a smaller --outscale or --ext png / tif"
        )
    need = height * width * planes * RESIZE_BYTES_PER_SAMPLE
    available = _memory_available() if planes else None
    if available is not None and need > available:
        raise OSError(
            f"{path}: the output would be {width} x {height} pixels, and resizing to it takes about "
            f"{need / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB this machine has free; choose a "
            "smaller --outscale"
        )


def _resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float (H, W) or (H, W, C<=4) -> ``size`` with Lanczos (8x8 taps, as Real-ESRGAN's ``--outscale``)."""
    return cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)


def sr_to_array(
    sr: Tensor, image: InputImage, scale: int, path: str, outscale: float | None = None
) -> np.ndarray:
    """SR (1, 3, sH, sW) -> an array for `write_array()` in the input's mode (grey (sH, sW), grey+alpha
    (sH, sW, 2), BGR[A] order) and bit depth.

    The output's format is its name's (``path``), as `write_array()` writes it: a JPEG, WebP or BMP output is
    8-bit, and a JPEG or BMP one has no alpha, even when the input was 16-bit or had an alpha plane.
    ``outscale``: the final size is `output_size()` of the LR size, resized from the model's output (clipped to
    [0, 1]) with Lanczos in floating point (before rounding); None or the model's scale: no resize.
    """
    rgb = sr[0].detach().float().cpu()
    lower = path.lower()
    eight_bit = lower.endswith((".jpg", ".jpeg", ".webp", ".bmp", ".gif"))
    keep_alpha = image.alpha is not None and not lower.endswith((".jpg", ".jpeg", ".bmp"))
    max_value = 255 if eight_bit else image.max_value
    if image.mode in ("grey", "grey_alpha"):
        planes_t = [_LUMA[0] * rgb[0] + _LUMA[1] * rgb[1] + _LUMA[2] * rgb[2]]
    else:
        planes_t = [rgb[i] for i in (2, 1, 0)]
    if keep_alpha:
        planes_t.append(imresize(image.alpha.float(), scale)[0, 0])  # type: ignore[union-attr]
    height, width = image.rgb.shape[-2:]
    if outscale is not None and float(outscale) != float(scale):
        size = output_size(int(height), int(width), float(outscale))
        # clipped first, as Real-ESRGAN resizes its 8-bit output, but not rounded twice
        stacked = np.stack([p.clamp(0, 1).numpy() for p in planes_t], axis=2).astype(np.float32)
        resized = _resize(stacked, size)
        resized = resized[:, :, None] if resized.ndim == 2 else resized
        planes_t = [torch.from_numpy(np.ascontiguousarray(resized[:, :, i])) for i in range(resized.shape[2])]
    planes = [_quantise(p, max_value) for p in planes_t]
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
            failure = OSError(f"{path}: cannot write the image")
            probe_space(tmp, failure)  # a full disk is named as such (OpenCV only says it failed)
            raise failure


def save_npy(path: str, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
