"""A ComfyUI node that keeps one kernel estimate per image: "Upscale Image (DAN, one kernel per image)".

ComfyUI's stock "Upscale Image (using Model)" node cuts every image into 512-px tiles and upscales each alone,
so a DAN / MANet / DCLS / DASR model estimates one blur kernel per TILE (docs/hosts.md, "Tiling: one kernel
estimate per image"). This node takes the same inputs (``UPSCALE_MODEL``, ``IMAGE``) and, for dan-blocks'
models, runs their exact tiling instead (`dan_blocks.upscale` with the node's tile size: the numbers of one
untiled pass, one kernel estimate per image, memory bounded by the tile); any other model goes the stock node's
way (``comfy.utils.tiled_scale``, 512-px tiles, 32-px overlap). Install (docs/hosts.md): a folder
``ComfyUI/custom_nodes/dan_blocks_nodes/`` whose ``__init__.py`` reads::

    import dan_blocks.spandrel; dan_blocks.spandrel.install()
    from dan_blocks.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

ComfyUI is imported inside the node's call (``comfy.model_management`` for the device and memory, ``comfy.utils``
for the progress bar and the fallback), so this module imports without ComfyUI.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .archs import DAN, DASR, DCLS
from .inference import upscale

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "UpscaleImageOneKernel", "is_dan_blocks_model"]

#: ComfyUI's tile and overlap in its stock upscale node (the fallback uses them; ours starts at the same tile)
COMFY_TILE, COMFY_OVERLAP = 512, 32
#: below this LR tile side an out-of-memory error is raised, not retried (the stock node's floor)
MIN_TILE = 128


def is_dan_blocks_model(upscale_model: Any) -> bool:
    """True for a spandrel descriptor (or a bare network) of dan-blocks' architectures: DAN v1 / v2, IKC, MANet,
    DCLS, DASR, the models that estimate one kernel per image and that this node tiles exactly."""
    model = getattr(upscale_model, "model", upscale_model)
    return isinstance(model, (DAN, DCLS, DASR)) and callable(getattr(model, "super_resolve", None))


def _comfy(name: str) -> ModuleType | None:
    """``comfy.<name>`` when ComfyUI is importable, else None."""
    try:
        return importlib.import_module(f"comfy.{name}")
    except ImportError:
        return None


def _oom_errors(mm: ModuleType | None) -> tuple[type[BaseException], ...]:
    error = getattr(mm, "OOM_EXCEPTION", None)
    found: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)
    if isinstance(error, type) and issubclass(error, BaseException):
        found = (*found, error)
    return found


class _Progress:
    """comfy.utils.ProgressBar (the bar in ComfyUI's window) when available; else nothing."""

    def __init__(self, utils: ModuleType | None, total: int) -> None:
        bar_type = getattr(utils, "ProgressBar", None)
        self.bar = bar_type(total) if bar_type is not None else None
        self.done = 0

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)


def _dan_upscale(model: nn.Module, image: Tensor, tile: int, device: torch.device, utils: ModuleType | None
                 ) -> Tensor:
    """(B, C, H, W) -> (B, C, sH, sW) on the CPU: each batch item through `dan_blocks.upscale` at ``tile``."""
    weight = next(model.parameters())
    progress = _Progress(utils, 100 * image.shape[0])
    outputs = []
    for index in range(image.shape[0]):
        lr = image[index : index + 1].to(device=device, dtype=weight.dtype)
        base = progress.done

        def report(done: int, total: int, base: int = base) -> None:
            target = base + (100 * done) // max(total, 1)
            progress.update(max(0, target - progress.done))  # done restarts with each DAN iteration

        with torch.no_grad():
            out = upscale(model, lr, tile, optimize=False, keep_srs=False, output_device="cpu", progress=report)
        outputs.append(out.sr.float().clamp(0, 1))
        progress.update(max(0, base + 100 - progress.done))
    return torch.cat(outputs)


def _stock_upscale(upscale_model: Any, image: Tensor, tile: int, utils: ModuleType) -> Tensor:
    """What ComfyUI's stock node does with one tile size: ``comfy.utils.tiled_scale`` (32-px overlap)."""
    steps = image.shape[0] * utils.get_tiled_scale_steps(image.shape[3], image.shape[2], tile_x=tile, tile_y=tile,
                                                         overlap=COMFY_OVERLAP)
    progress = _Progress(utils, steps)
    return utils.tiled_scale(image, lambda a: upscale_model(a), tile_x=tile, tile_y=tile, overlap=COMFY_OVERLAP,
                             upscale_amount=upscale_model.scale, pbar=progress.bar)


class UpscaleImageOneKernel:
    """ComfyUI node: upscale an IMAGE with an UPSCALE_MODEL; dan-blocks' models keep one kernel estimate per
    image (exact tiling), other models are tiled as ComfyUI's stock upscale node tiles them."""

    RETURN_TYPES: ClassVar[tuple[str, ...]] = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    DESCRIPTION = (
        "Upscale an image with a model. DAN / MANet / IKC / DCLS / DASR models (dan-blocks) estimate one blur "
        "kernel from the whole image and are tiled exactly (same result as one untiled pass, bounded memory); "
        "other models are tiled like 'Upscale Image (using Model)'."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802  (ComfyUI's name)
        return {
            "required": {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)},
            "optional": {
                "tile": ("INT", {"default": COMFY_TILE, "min": MIN_TILE, "max": 8192, "step": 8,
                                 "tooltip": "LR tile side for dan-blocks models (halved on out-of-memory); "
                                            "the result does not depend on it"}),
            },
        }

    def upscale(self, upscale_model: Any, image: Tensor, tile: int = COMFY_TILE) -> tuple[Tensor]:
        """``image``: (B, H, W, C) float in [0, 1] (ComfyUI's IMAGE); returns ``((B, sH, sW, C),)`` in [0, 1]."""
        mm, utils = _comfy("model_management"), _comfy("utils")
        ours = is_dan_blocks_model(upscale_model)
        if not ours and utils is None:
            raise RuntimeError("UpscaleImageOneKernel: models other than dan-blocks' need ComfyUI (comfy.utils)")
        device = mm.get_torch_device() if mm is not None else torch.device("cpu")
        network: nn.Module = getattr(upscale_model, "model", upscale_model)
        if mm is not None:  # as the stock node: make room for the model and a tile's activations
            memory = int(mm.module_size(network))
            memory += int(tile * tile * 3 * image.element_size() * max(int(upscale_model.scale), 1) * 384)
            memory += image.nelement() * image.element_size()
            mm.free_memory(memory, device)
        in_img = image.movedim(-1, -3)
        upscale_model.to(device)
        try:
            while True:
                try:
                    if ours:
                        out = _dan_upscale(network.eval(), in_img, tile, device, utils)
                    else:
                        assert utils is not None
                        out = _stock_upscale(upscale_model, in_img.to(device), tile, utils)
                    break
                except _oom_errors(mm):
                    tile //= 2
                    if tile < MIN_TILE:
                        raise
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
        finally:
            upscale_model.to("cpu")
        return (torch.clamp(out.movedim(-3, -1), min=0, max=1.0),)


NODE_CLASS_MAPPINGS: dict[str, type] = {"DanBlocksUpscaleOneKernel": UpscaleImageOneKernel}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {"DanBlocksUpscaleOneKernel": "Upscale Image (DAN, one kernel per image)"}
