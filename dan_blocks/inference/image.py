"""Image in, image out: `upscale_image()` (a path, a PIL image or a NumPy array) and the one pipeline that
``dan-blocks sr`` shares with it (`super_resolve_image()`), so both give the same pixels.

What is kept, as ``sr`` keeps it: the bit depth (8 or 16 bit), grey images (grey in, grey out: BT.601 luma of
the network's RGB), an alpha plane (upscaled separately with MATLAB bicubic, as Real-ESRGAN upscales alpha
apart from the colour), and the EXIF orientation (applied to the pixels, as image viewers do).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..utils import all_finite
from .tiled import DEFAULT_MAX_HALO
from .upscale import upscale

__all__ = [
    "PRECISIONS",
    "SRImage",
    "autocast_dtype",
    "precision_context",
    "super_resolve_image",
    "upscale_image",
]

#: ``precision`` values: ``auto`` is fp32 on the CPU, bf16 on a CUDA GPU that supports it, else fp16
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` on ``device`` (None: plain fp32).

    ``auto`` is the fastest choice that stays accurate: fp32 on the CPU (and other devices), bf16 on a CUDA
    GPU that supports it (Ampere and later), else fp16. Under autocast, convolutions and matrix products run in
    the lower precision while softmax (the kernel estimate) and reductions stay in fp32, as torch.autocast
    decides op by op.

    Raises:
        ValueError: an unknown ``precision`` (naming the accepted ones).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        with torch.cuda.device(device):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _DTYPES[precision]


def precision_context(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class SRImage:
    """What `super_resolve_image()` gives: ``array`` for `dan_blocks.data.sr_io.write_array` ((H, W) grey,
    (H, W, 2) grey+alpha, (H, W, 3) BGR, (H, W, 4) BGRA); ``kernel`` the final estimated kernel (k, k) (the
    image average for per-pixel estimators) and ``kernel_map`` the estimator's own final output (``(k, k)``, or
    ``(k*k, h, w)`` per pixel), both float32 on the CPU, None for a model that estimates no kernel."""

    array: np.ndarray
    kernel: Tensor | None
    kernel_map: Tensor | None


def _model_weight(model: nn.Module) -> Tensor | None:
    return next(model.parameters(), None)


def super_resolve_image(
    model: nn.Module,
    image: Any,
    *,
    out_format: str = ".png",
    tile_size: int | None = None,
    upsampler_tile: int | None = None,
    output_device: torch.device | str | None = None,
    max_halo: int | None = DEFAULT_MAX_HALO,
    optimize: bool = True,
    precision: str = "auto",
    outscale: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SRImage:
    """Super-resolve one decoded image (a `dan_blocks.data.sr_io.InputImage`) on the model's device.

    ``out_format``: the extension of the file the result is for (``.jpg``: 8 bit without alpha; ``.png``: all
    kept), as `dan_blocks.data.sr_io.sr_to_array` decides. On a GPU, a tiled run keeps the SR maps on the CPU
    unless ``output_device`` says otherwise. Only the final SR image is kept between iterations
    (``upscale(keep_srs=False)``).

    Raises:
        ValueError: the model produced NaN or infinite values (its weights are broken), naming the image.
    """
    from ..data.sr_io import sr_to_array

    weight = _model_weight(model)
    device = weight.device if weight is not None else torch.device("cpu")
    dtype = autocast_dtype(precision, device)
    lr = image.rgb.to(device)
    if weight is not None and weight.dtype != torch.float32:
        lr, dtype = lr.to(weight.dtype), None  # a model converted by hand (model.half()): its own dtype
    if output_device is None and tile_size is not None and device.type != "cpu":
        output_device = "cpu"  # the SR maps of a large image stay in host memory
    with precision_context(dtype, device):
        out = upscale(
            model, lr, tile_size, upsampler_tile=upsampler_tile, output_device=output_device, max_halo=max_halo,
            optimize=optimize, keep_srs=False, progress=progress,
        )
    sr = out if isinstance(out, Tensor) else out.sr
    if not all_finite(sr):
        raise ValueError(
            f"{image.path}: the model's output holds NaN or infinite values (its weights are broken or overflow in "
            f"{'fp32' if dtype is None else str(dtype).removeprefix('torch.')}); nothing written"
        )
    scale = int(getattr(model, "scale", sr.shape[-1] // lr.shape[-1]))
    array = sr_to_array(sr, image, scale, f"out{out_format}", outscale)
    kernels = getattr(out, "kernels", None)
    if not kernels:
        return SRImage(array, None, None)
    from ..metrics import mean_kernel

    final = kernels[-1]  # estimated, or reconstructed from a v1 code
    picture = mean_kernel(final[:1])[0].detach().float().cpu()
    return SRImage(array, picture, final[0].detach().float().cpu())


def _from_pil(picture: Any) -> tuple[np.ndarray, str]:
    """A PIL image -> (OpenCV-layout array, the mode to give back), turned as its EXIF orientation says."""
    from PIL import ImageOps

    frames = int(getattr(picture, "n_frames", 1))
    if frames > 1:
        raise ValueError(f"upscale_image: the PIL image holds {frames} frames; give one frame (image.seek(i))")
    picture = ImageOps.exif_transpose(picture)
    mode = picture.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in picture.info else "RGB"
        picture = picture.convert(mode)
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        mode = "L" if mode == "1" else "RGB"
        picture = picture.convert(mode)
    elif mode == "PA":
        mode = "RGBA"
        picture = picture.convert(mode)
    array = np.asarray(picture)
    if mode in ("L", "LA", "I;16", "I;16L", "I;16B"):
        return np.ascontiguousarray(array.astype(np.uint16) if mode.startswith("I;16") else array), mode
    if mode == "RGB":
        return np.ascontiguousarray(array[:, :, ::-1]), mode
    if mode == "RGBA":
        return np.ascontiguousarray(array[:, :, [2, 1, 0, 3]]), mode
    raise ValueError(
        f"upscale_image: PIL images of mode {picture.mode!r} are not supported (expected L, LA, RGB, RGBA, P or "
        "I;16); convert it first, e.g. image.convert('RGB')"
    )


def _to_pil(array: np.ndarray, mode: str) -> Any:
    """An OpenCV-layout result -> a PIL image of the input's ``mode``."""
    from PIL import Image

    if mode == "RGB":
        return Image.fromarray(np.ascontiguousarray(array[:, :, ::-1]), "RGB")
    if mode == "RGBA":
        return Image.fromarray(np.ascontiguousarray(array[:, :, [2, 1, 0, 3]]), "RGBA")
    if mode == "LA":
        return Image.fromarray(np.ascontiguousarray(array[:, :, [0, 3]] if array.shape[2] == 4 else array), "LA")
    if mode.startswith("I;16"):
        return Image.fromarray(np.ascontiguousarray(array.astype("<u2")), "I;16")
    return Image.fromarray(array, "L")


def _array_out(array: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The result in the layout of the caller's array: (H, W, 1) stays 3-d, (H, W, 2) grey+alpha stays 2
    channels."""
    if original.ndim == 3 and original.shape[2] == 1 and array.ndim == 2:
        return array[:, :, None]
    if original.ndim == 3 and original.shape[2] == 2 and array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, [0, 3]])
    return array


def upscale_image(
    model: nn.Module,
    image: Any,
    tile_size: int | None = None,
    *,
    upsampler_tile: int | None = None,
    output_device: torch.device | str | None = None,
    max_halo: int | None = DEFAULT_MAX_HALO,
    optimize: bool = True,
    precision: str = "auto",
    outscale: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    return_kernel: bool = False,
) -> Any:
    """Super-resolve an image: a file path, a PIL image or a NumPy array in, the same kind of image out.

    Like Real-ESRGAN's ``enhance``: arrays are in OpenCV's layout, as ``cv2.imread(path, cv2.IMREAD_UNCHANGED)``
    gives them: (H, W) grey, (H, W, 1), (H, W, 2) grey+alpha, (H, W, 3) BGR or (H, W, 4) BGRA; uint8 or uint16.

    - **path** (str or `os.PathLike`): the file is read as ``dan-blocks sr`` reads it (EXIF orientation applied;
      a multi-page file refused) and a NumPy array is returned, equal to what ``cv2.imread(out,
      cv2.IMREAD_UNCHANGED)`` reads from the file ``sr`` writes for it (nothing is written); its format decides
      as ``sr --ext auto`` does (a JPEG input gives an 8-bit result without alpha);
    - **numpy array**: the same layout and dtype back;
    - **PIL image**: a PIL image of the same mode back (a palette image comes back RGB, or RGBA when it has
      transparency), its EXIF orientation applied.

    Bit depth, grey and alpha are kept (alpha is upscaled separately with MATLAB bicubic).

    Args:
        model: a DAN-like model (``model.scale``), on the device to compute on; in eval mode.
        image: see above.
        tile_size, upsampler_tile, output_device, max_halo, optimize, progress: as `dan_blocks.upscale`.
        precision: ``auto`` (fp32 on the CPU, bf16 or fp16 on CUDA), ``fp32``, ``bf16`` or ``fp16`` (autocast).
        outscale: final scale relative to the input (any float, e.g. 3.5): the model's output is resized with
            Lanczos to ``int(side * outscale)``, as Real-ESRGAN's ``--outscale``. None: the model's scale.
        return_kernel: also return the final estimated kernel, ``(image, kernel)`` with ``kernel`` a (k, k)
            float32 NumPy array (the image average for per-pixel estimators), or None.

    Raises:
        TypeError: ``image`` is none of the three kinds.
        ValueError / OSError: naming the problem: an unsupported layout, mode or dtype, an unreadable file, a
            model output with NaN / inf.
    """
    from ..data.sr_io import SR_EXTENSIONS, image_from_array, read_input

    if outscale is not None and (isinstance(outscale, bool) or not float(outscale) > 0):
        raise ValueError(f"upscale_image: outscale must be a positive number, got {outscale!r}")
    kind: str
    pil_mode = ""
    original: np.ndarray | None = None
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        decoded = read_input(path)
        ext = os.path.splitext(path)[1].lower()
        out_format = ".png" if ext == ".gif" or ext not in SR_EXTENSIONS else ext
        kind = "path"
    elif isinstance(image, np.ndarray):
        original = image
        decoded = image_from_array(np.ascontiguousarray(image), "the array")
        out_format, kind = ".png", "array"
    elif type(image).__module__.startswith("PIL.") or hasattr(image, "getexif"):
        array, pil_mode = _from_pil(image)
        decoded = image_from_array(array, "the PIL image", grey_alpha=False)
        out_format, kind = ".png", "pil"
    else:
        raise TypeError(
            f"upscale_image: image must be a file path, a PIL image or a NumPy array, got {type(image).__name__}"
        )
    result = super_resolve_image(
        model, decoded, out_format=out_format, tile_size=tile_size, upsampler_tile=upsampler_tile,
        output_device=output_device, max_halo=max_halo, optimize=optimize, precision=precision, outscale=outscale,
        progress=progress,
    )
    out: Any = result.array
    if kind == "path" and out.ndim == 3 and out.shape[2] == 2:
        out = np.ascontiguousarray(out[:, :, [0, 0, 0, 1]])  # as OpenCV reads a grey+alpha PNG back
    elif kind == "array":
        assert original is not None
        out = _array_out(out, original)
    elif kind == "pil":
        out = _to_pil(out, pil_mode)
    if return_kernel:
        return out, None if result.kernel is None else result.kernel.numpy()
    return out
