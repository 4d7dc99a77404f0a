r"""Exact tiled inference for any model composed of dan-blocks modules: `upscale()` and `tiled()`.

The model runs its own ``forward`` (its own alternation loop: nothing is re-implemented here) on a *tiling
copy*: a shallow copy of the module tree, sharing every parameter, in which each **spatially local** sub-module
is replaced by a wrapper that runs it tile by tile with a halo of its receptive radius and pastes the tiles'
interiors into whole maps. Everything else (global poolings, the PCA encoding, the alternation) runs as written,
on whole maps. The original model is not changed, so tiling is safe while other threads use it.

The protocol (what a module implements to be tiled as one unit):

- ``receptive_radius() -> int``: the module is spatially local: its output at a pixel depends only on inputs
  within this many pixels of the LR grid (at the LR resolution; inputs at ``s`` times the LR size, such as an SR
  image, are cropped ``s`` times larger) and it contains **no global pooling**. Its output may be at an integer
  multiple of the LR size (an upsampler).
- ``tile_multiple: int`` (optional, default 1): tile corners must lie on multiples of this (a module that
  downsamples by 2 inside, like MANet's U-Net, needs 2).
- ``tile_as_unit: bool`` (optional, default False): never split the module into its children, however wide
  (``max_halo``): its forward pads or reshapes its input, so its children do not see maps on the LR grid
  (MANet's U-Net pads to a multiple of 8).

A non-local module may mark methods as its **local parts** (`dan_blocks.layers.local_part`): the tiling copy
runs each such method tile by tile as one unit, so the maps inside it are never whole (a DAN v1 block's
convolutions before its channel attention; a DAN v2 estimator's trunk, whose output only its spatial mean is
used: ``pooled=True`` accumulates that mean over the tiles and holds no map of it whole). Such a module's
forward gets its arguments as they are (an SR map may stay on ``output_device``); its local parts get tiles on
the compute device.

A module without ``receptive_radius`` is taken to be *non-local* (that is where global poolings live, e.g.
channel attention, an estimator's pooled tail, DAN's PCA encoding): its forward runs on whole maps, and its
children are tiled when they are local. ``nn.Conv2d`` (zero, reflect or replicate padding), ``nn.PixelShuffle``,
point-wise activations and ``nn.Sequential`` chains of them are recognised without declarations. A leaf module
that holds parameters but is neither recognised nor declares ``receptive_radius`` runs untiled (exact, without
the memory saving), with a warning naming it.

Exactness: a local module's output in a tile's interior depends only on the extended tile (the halo covers the
receptive field; at the image border the module's own padding is the same as on the whole image), so the
pasted interiors equal the untiled output up to float summation order.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..layers.local_part import local_parts
from .tiling import Tile, check_size, iter_tiles

__all__ = [
    "DEFAULT_MAP_BUDGET",
    "DEFAULT_MAX_HALO",
    "SingleSRBuffer",
    "TiledModule",
    "TilingPlan",
    "check_device",
    "local_radius",
    "only_final_sr",
    "single_sr_copy",
    "tiled",
]

#: by default a declared unit reaching further than this is split into its children: a DAN v2 restorer (104
#: pixels) and its DPCGs (20) run block by block (a 2-pixel halo each, whole LR feature maps between blocks:
#: least compute); ``max_halo=None`` tiles the whole restorer per tile instead (no whole LR feature map of
#: the trunk: least memory, but each tile recomputes the 104-pixel halo)
DEFAULT_MAX_HALO = 16

#: a declared unit wider than ``max_halo`` is split into its children only while the whole LR-resolution maps
#: the split keeps between them are at most this many bytes each (256 MiB: 64 fp32 channels of 1024 x 1024 LR
#: pixels); larger maps would dominate the memory that tiling is asked to bound, so the unit runs tile by tile
#: whole instead (more compute for its halo, no whole feature map)
DEFAULT_MAP_BUDGET = 256 * 2**20

#: parameter-free modules that act on each pixel (or each pixel's channels) alone
_POINTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Dropout, nn.Dropout2d,
)
#: leaves holding parameters that are not spatial (nothing to tile)
_NON_SPATIAL = (nn.Linear, nn.LayerNorm, nn.Embedding)


@dataclass(frozen=True)
class _Reach:
    """What a chain does on the grid: radius in grid pixels and output resolution (times the grid)."""

    radius: float
    factor: int


def _conv_reach(conv: nn.Conv2d, factor: int) -> _Reach | None:
    """A Conv2d reading a map at ``factor`` x the grid; None if it is not local or its output leaves the grid.

    Output ``j`` reads inputs ``[s j - p, s j - p + d (k - 1)]``; tiles stay exact when the conv keeps the size
    up to its stride (``d (k - 1) - s + 1 <= 2 p <= d (k - 1)``) and the stride divides ``factor``.
    """
    if conv.padding_mode == "circular" or isinstance(conv.padding, str):
        return None
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    if kh != kw or sh != sw or dh != dw or ph != pw:
        return None
    span = dh * (kh - 1)
    if not span - sh + 1 <= 2 * ph <= span or factor % sh:
        return None
    return _Reach(max(ph, span - ph) / factor, factor // sh)


def _is_pointwise(module: nn.Module) -> bool:
    return isinstance(module, _POINTWISE) or (isinstance(module, nn.Softmax) and module.dim in (1, -3))


def _declares(module: nn.Module) -> bool:
    return callable(getattr(type(module), "receptive_radius", None))


def _is_local(module: nn.Module) -> bool:
    """Local by declaration, or a chain of recognised local modules (checked again, with sizes, per call)."""
    if _declares(module) or _is_pointwise(module) or isinstance(module, nn.PixelShuffle):
        return True
    if type(module) is nn.Conv2d:
        return module.padding_mode != "circular" and not isinstance(module.padding, str)
    if type(module) is nn.Sequential:
        return len(module) > 0 and all(_is_local(child) for child in module)
    return False


def _is_chain(module: nn.Module) -> bool:
    """A convolution / pixel-shuffle chain (an upsampler): runs on ``upsampler_tile`` tiles when it upsamples,
    where a larger unit that upsamples (a whole restorer) keeps ``tile_size``."""
    if not isinstance(module, nn.Sequential):
        return type(module) is nn.Conv2d or isinstance(module, nn.PixelShuffle) or _is_pointwise(module)
    return all(_is_chain(child) for child in module)


def _chain_reach(modules: list[nn.Module], factor: int) -> _Reach | None:
    """Reach of local modules applied in order to a map at ``factor`` x the grid (None: cannot tile it)."""
    radius = 0.0
    for module in modules:
        if _is_pointwise(module):
            continue
        if _declares(module):
            if factor != 1:
                return None
            declared = getattr(module, "receptive_radius")()  # noqa: B009 (an nn.Module attribute: Any for mypy)
            step: _Reach | None = _Reach(float(declared), int(getattr(module, "output_scale", 1)))
        elif type(module) is nn.Conv2d:
            step = _conv_reach(module, factor)
        elif isinstance(module, nn.PixelShuffle):
            step = _Reach(0.0, factor * module.upscale_factor)
        elif type(module) is nn.Sequential:
            step = _chain_reach(list(module), factor)
        else:
            return None
        if step is None:
            return None
        radius += step.radius
        factor = step.factor
    return _Reach(radius, factor)


def local_radius(module: nn.Module, factor: int = 1) -> int | None:
    """The receptive radius in LR-grid pixels of a module the tiler runs as one unit, for an input at ``factor``
    x the LR size; None if it is not tiled as a unit.

    ``receptive_radius()`` when the module declares it; computed for ``nn.Conv2d`` and ``nn.Sequential``
    chains of recognised local modules.
    """
    if not _is_local(module) or _is_pointwise(module):
        return None
    reach = _chain_reach([module], factor)
    return None if reach is None else int(-(-reach.radius // 1))


class TilingPlan:
    """Tile sizes and devices shared by every wrapper of one tiled run.

    Args:
        grid: the LR size ``(h, w)``: every tiled tensor is an integer multiple of it.
        tile_size: interior tile side (LR pixels) for units with LR-resolution outputs.
        upsampler_tile: interior tile side for units whose output is larger than the LR (upsamplers).
        output_device: where outputs larger than the LR are stored (None: the compute device).
        max_halo: a declared unit whose radius exceeds this is not tiled as one unit but split into its
            children (None: every declared unit is one unit).
        map_budget: bytes of one whole LR-resolution map a split may keep (`DEFAULT_MAP_BUDGET`; None: no
            limit); a wider unit whose maps would be larger runs tile by tile as one unit.
        map_bytes_per_channel: bytes of one channel of a whole LR-resolution map (batch x h x w x element
            size), to price ``map_budget``.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        tile_size: int,
        upsampler_tile: int,
        output_device: torch.device | None,
        max_halo: int | None = None,
        map_budget: int | None = None,
        map_bytes_per_channel: int = 0,
    ) -> None:
        self.grid = grid
        self.map_budget = map_budget
        self.map_bytes_per_channel = map_bytes_per_channel
        self.tile_size = tile_size
        self.upsampler_tile = upsampler_tile
        self.output_device = output_device
        self.max_halo = max_halo
        self.untiled: list[str] = []
        #: the device of the input (where the computation runs); set by `tiled()`
        self.compute_device: torch.device | None = None
        #: called with (done, total) after each tile of an upsampling unit (progress within an image)
        self.progress: Callable[[int, int], None] | None = None
        #: an SR map the next upsampling unit may write into instead of allocating one (`SingleSRBuffer`)
        self.reuse_output: Tensor | None = None

    def to_compute(self, value: Any) -> Any:
        """``value`` moved to the compute device when it is a tensor stored elsewhere (an SR map kept on
        ``output_device``): non-local code combines it with tensors on the compute device."""
        if isinstance(value, Tensor) and self.compute_device is not None and value.device != self.compute_device:
            return value.to(self.compute_device)
        return value

    def factor(self, x: Tensor) -> int | None:
        """``f`` when ``x`` is (B, C, f h, f w) on the grid; None for a global (B, C, 1, 1) or non-spatial tensor.

        Raises:
            ValueError: a 4-d tensor whose size is not an integer multiple of the grid.
        """
        if x.dim() != 4:
            return None
        h, w = self.grid
        height, width = x.shape[-2], x.shape[-1]
        if (height, width) == (1, 1) and (h, w) != (1, 1):
            return None
        if height % h or width % w or height // h != width // w or height < h:
            raise ValueError(
                f"tiled: a tensor of spatial size {height}x{width} is neither a multiple of the LR grid {h}x{w} "
                "nor 1x1; the module receiving it cannot be tiled"
            )
        return height // h


class TiledModule(nn.Module):
    """Runs a local module tile by tile (see the module docstring); attributes read through to the module."""

    def __init__(self, module: nn.Module, plan: TilingPlan, name: str) -> None:
        super().__init__()
        self.inner = module
        self.multiple = max(1, int(getattr(module, "tile_multiple", 1)))
        self.plan = plan
        self.label = name
        #: return the spatial mean (B, C, 1, 1) of the output instead of the whole map (set when the module is
        #: followed by a global average pooling: the whole map is never held)
        self.pooled = False

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    # a forward that indexes its container child (``self.body1[0]``) reaches the module itself (run whole)
    def __getitem__(self, index: Any) -> Any:
        return self._modules["inner"][index]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self._modules["inner"])  # type: ignore[arg-type]

    def __iter__(self) -> Any:
        return iter(self._modules["inner"])  # type: ignore[call-overload]

    def _device(self, fallback: torch.device) -> torch.device:
        first = next(self.inner.parameters(), None)
        return fallback if first is None else first.device

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        plan = self.plan
        factors = [plan.factor(a) if isinstance(a, Tensor) else None for a in args]
        kw_factors = {k: plan.factor(v) if isinstance(v, Tensor) else None for k, v in kwargs.items()}
        grid_factors = [f for f in (*factors, *kw_factors.values()) if f is not None]
        # the finest-grained input sets the grid the reach is measured on: an estimator's (sr, lr) is at LR size
        base = min(grid_factors) if grid_factors else None
        reach = None if base is None else _chain_reach([self.inner], base)
        if reach is None:  # nothing on the grid, or sizes the module cannot be tiled at: run it whole (exact)
            return self.inner(*args, **kwargs)
        assert base is not None
        upsamples = reach.factor > base
        size = plan.upsampler_tile if upsamples and _is_chain(self.inner) else plan.tile_size
        m = self.multiple
        tile_size = -(-size // m) * m
        halo = -(-int(-(-reach.radius // 1)) // m) * m
        first = next(a for a in (*args, *kwargs.values()) if isinstance(a, Tensor) and plan.factor(a) is not None)
        device = self._device(first.device)
        outputs: list[Tensor | None] | None = None
        passed: list[int | None] = []  # per output: the index of the argument it returns as it is, if any
        single = False
        tiles = list(iter_tiles(plan.grid, tile_size, halo, uniform=True, multiple=m))
        report = plan.progress if upsamples else None
        sums: Tensor | None = None
        for index, tile in enumerate(tiles):
            crop_args = [a if f is None else tile.crop(a, f).to(device) for a, f in zip(args, factors, strict=True)]
            crop_kwargs = {k: v if (f := kw_factors[k]) is None else tile.crop(v, f).to(device)
                           for k, v in kwargs.items()}
            result = self.inner(*crop_args, **crop_kwargs)
            if self.pooled and isinstance(result, Tensor) and result.dim() == 4:
                factor = result.shape[-1] // (tile.ex1 - tile.ex0)
                acc = torch.float64 if result.dtype == torch.float64 else torch.float32
                part_sum = tile.interior(result, factor).sum(dim=(-2, -1), keepdim=True, dtype=acc)
                sums = part_sum if sums is None else sums + part_sum
                pixels = factor * factor * plan.grid[0] * plan.grid[1]
                dtype = result.dtype
                continue
            parts = (result,) if isinstance(result, Tensor) else tuple(result)
            single = isinstance(result, Tensor)
            given = [next((i for i, a in enumerate(crop_args) if p is a), None) for p in parts]
            if outputs is None:
                passed = given
                # an input handed back as it is (a code map a block passes on) is not copied: the whole input
                outputs = [self._allocate(p, tile, upsamples) if i is None else args[i] for p, i in zip(
                    parts, passed, strict=True)]
            elif given != passed:
                raise RuntimeError(f"tiled: {self.label} returned its input as it is for one tile but not another")
            for out, part, i in zip(outputs, parts, passed, strict=True):
                if out is not None and i is None:
                    factor = out.shape[-1] // plan.grid[1]
                    tile.place(out, factor).copy_(tile.interior(part, factor))
            if any(o is None for o in outputs):  # global outputs: the same in every tile, keep the first
                outputs = [part if o is None else o for o, part in zip(outputs, parts, strict=True)]
            if report is not None:
                report(index + 1, len(tiles))
        if sums is not None:
            return (sums / pixels).to(dtype)
        assert outputs is not None
        return outputs[0] if single else tuple(outputs)

    def _allocate(self, part: Tensor, tile: Tile, upsamples: bool) -> Tensor | None:
        """A whole-image output tensor for a tile's output ``part`` (None: a global output, kept as is)."""
        ext_h, ext_w = tile.ey1 - tile.ey0, tile.ex1 - tile.ex0
        height, width = part.shape[-2], part.shape[-1]
        if part.dim() != 4 or ((height, width) == (1, 1) and (ext_h, ext_w) != (1, 1)):
            return None  # not a map on the grid (a code): the same for every tile (a local unit does not pool)
        if height % ext_h or width % ext_w or height // ext_h != width // ext_w:
            raise ValueError(
                f"tiled: {self.label} returned a tensor of shape {list(part.shape)} for a {ext_h}x{ext_w} tile; a "
                "module declaring receptive_radius() must return maps at an integer multiple of its input's size"
            )
        factor = height // ext_h
        device = self.plan.output_device if (upsamples and self.plan.output_device is not None) else part.device
        channels_last = part.is_contiguous(memory_format=torch.channels_last) and not part.is_contiguous()
        shape = (*part.shape[:-2], factor * self.plan.grid[0], factor * self.plan.grid[1])
        reuse = self.plan.reuse_output
        if (
            upsamples
            and reuse is not None
            and tuple(reuse.shape) == shape
            and reuse.dtype == part.dtype
            and reuse.device == torch.device(device)
        ):
            self.plan.reuse_output = None  # the previous iteration's SR image, no longer needed: overwritten
            return reuse
        return torch.empty(
            shape,
            dtype=part.dtype,
            device=device,
            memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        )

    def extra_repr(self) -> str:
        return f"{self.label}, multiple={self.multiple}"


def _leaf_runs_whole(module: nn.Module) -> bool:
    """A leaf that needs no tiling (no parameters of its own, point-wise, or not spatial)."""
    own = list(module.parameters(recurse=False))
    return not own or isinstance(module, (*_POINTWISE, *_NON_SPATIAL))


def _whole_map_bytes(module: nn.Module, plan: TilingPlan) -> int:
    """Bytes of the widest whole LR map a split of ``module`` keeps between its children: the widest input of
    its convolutions (an upsampler's wide LR-size map stays within its own tiled unit)."""
    channels = max((m.in_channels for m in module.modules() if isinstance(m, nn.Conv2d)), default=0)
    return channels * plan.map_bytes_per_channel


def _split(module: nn.Module, plan: TilingPlan, children: list[tuple[str, nn.Module]]) -> bool:
    """Whether a wide declared unit is split into its parts (never a conv chain such as an upsampler, nor a
    unit whose whole maps would exceed ``plan.map_budget``)."""
    return bool(
        plan.max_halo is not None
        and _declares(module)
        and children
        and not _is_chain(module)
        and not getattr(module, "tile_as_unit", False)
        and getattr(module, "receptive_radius")() > plan.max_halo  # noqa: B009
        and (plan.map_budget is None or _whole_map_bytes(module, plan) <= plan.map_budget)
    )


class _BoundPart(nn.Module):
    """A module's local-part method (`dan_blocks.layers.local_part`) as a unit `TiledModule` runs tile by tile."""

    def __init__(self, owner: nn.Module, method: str, radius: int) -> None:
        super().__init__()
        self.owner = owner
        self.method = method
        self.radius = radius

    def receptive_radius(self) -> int:
        return self.radius

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.owner, self.method)(*args, **kwargs)


def _tile_local_parts(module: nn.Module, proxy: nn.Module, plan: TilingPlan, name: str) -> bool:
    """Set each local part of ``module`` on ``proxy`` as a `TiledModule`; whether there was one."""
    found = False
    for method, part in local_parts(module).items():
        radius = part.radius(module)
        if radius is None:  # built from a part that is not local: the method runs whole, its children tiled
            continue
        unit = TiledModule(_BoundPart(module, method, int(radius)), plan, f"{name}.{method}")
        unit.pooled = part.pooled
        object.__setattr__(proxy, method, unit)
        found = True
    return found


def _tiling_copy(module: nn.Module, plan: TilingPlan, name: str) -> nn.Module:
    """``module`` itself, a `TiledModule` around it, or a shallow copy whose children are tiled."""
    children = list(module.named_children())
    too_wide = _split(module, plan, children)
    if _is_local(module) and not _is_pointwise(module) and not isinstance(module, nn.PixelShuffle) and not too_wide:
        return TiledModule(module, plan, name)
    if not children:
        if not _leaf_runs_whole(module):
            plan.untiled.append(f"{name} ({type(module).__name__})")
        return module
    proxy = copy.copy(module)
    proxy._modules = {
        child_name: (None if child is None else _tiling_copy(child, plan, f"{name}.{child_name}"))
        for child_name, child in module._modules.items()
    }
    if isinstance(module, nn.Sequential):
        _pool_before_global_average(proxy)
    # local parts take their tiles to the compute device one by one, so such a forward needs no move
    if not _tile_local_parts(module, proxy, plan, name) and plan.output_device is not None:
        # a non-local forward combines its inputs with tensors it makes on the compute device (an estimator's
        # ``sr - lr.mean()``): SR maps kept on output_device come back to the compute device for it
        object.__setattr__(proxy, "forward", _OnComputeDevice(proxy.forward, plan))
    return proxy


def _is_global_average(module: nn.Module | None) -> bool:
    """``nn.AdaptiveAvgPool2d`` to 1 x 1: the spatial mean."""
    if not isinstance(module, nn.AdaptiveAvgPool2d):
        return False
    size = module.output_size
    return size == 1 or (isinstance(size, (tuple, list)) and tuple(size) == (1, 1))


def _pool_before_global_average(proxy: nn.Module) -> None:
    """In a tiled ``nn.Sequential``, a tiled unit followed by a global average pooling returns its output's
    spatial mean, accumulated tile by tile: the pooling then averages a 1 x 1 map (unchanged), and the unit's
    whole output map is never held (an estimator's tail: 64 channels at the LR size). Callers that take the
    Sequential apart (``conv, pool, head, softmax = self.tail``) get the same."""
    children = list(proxy._modules.values())
    for current, following in itertools.pairwise(children):
        if isinstance(current, TiledModule) and _is_global_average(following):
            current.pooled = True


class _OnComputeDevice:
    """A non-local module's bound ``forward`` whose tensor arguments are moved to the plan's compute device."""

    def __init__(self, forward: Callable[..., Any], plan: TilingPlan) -> None:
        self.forward = forward
        self.plan = plan

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        move = self.plan.to_compute
        return self.forward(*(move(a) for a in args), **{k: move(v) for k, v in kwargs.items()})


class SingleSRBuffer(nn.Module):
    """Wraps a DAN's restorer so that every iteration's SR image is written into one tensor.

    The alternation consumes each SR image (the next estimate) before the next restore, so only the latest is
    needed: the srs list then holds the same tensor ``loop`` times (callers see only the final image). Untiled,
    the peak holds two SR images instead of ``loop``; tiled (with the ``plan``), the restorer's upsampler writes
    its tiles straight into the buffer, so one. Attributes read through to the restorer.
    """

    def __init__(self, restorer: nn.Module, plan: TilingPlan | None = None) -> None:
        super().__init__()
        self.inner = restorer
        self.buffer: Tensor | None = None
        self.plan = plan

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.plan is not None:  # a tiled upsampler writes its tiles straight into the buffer
            self.plan.reuse_output = self.buffer
        try:
            result = self.inner(*args, **kwargs)
        finally:
            if self.plan is not None:
                self.plan.reuse_output = None
        buffer = self.buffer
        if result is buffer and buffer is not None:
            return buffer
        if (
            not isinstance(result, Tensor)
            or buffer is None
            or buffer.shape != result.shape
            or buffer.dtype != result.dtype
            or buffer.device != result.device
        ):
            self.buffer = result if isinstance(result, Tensor) else None
            return result
        buffer.copy_(result)
        del result
        return buffer


def single_sr_copy(model: nn.Module, plan: TilingPlan | None = None) -> nn.Module:
    """A shallow copy of ``model`` (sharing its parameters) whose ``restorer`` keeps one SR buffer
    (`SingleSRBuffer`); ``model`` itself when it has no ``restorer`` child or no ``alternate`` loop."""
    restorer = model._modules.get("restorer")
    if restorer is None or not callable(getattr(model, "alternate", None)):
        return model
    proxy = copy.copy(model)
    proxy._modules = dict(model._modules)
    proxy._modules["restorer"] = SingleSRBuffer(restorer, plan)
    return proxy


def only_final_sr(result: Any) -> Any:
    """A `DANOutput` made with `single_sr_copy` holds the final image ``loop`` times: keep one."""
    srs = getattr(result, "srs", None)
    replace = getattr(result, "_replace", None)
    if isinstance(srs, list) and srs and callable(replace):
        return replace(srs=[result.sr])
    return result


def check_device(where: str, name: str, device: Any) -> torch.device:
    """``device`` as a `torch.device`, checked to exist on this machine; `ValueError` naming ``where`` and
    ``name`` otherwise (not a device, CUDA / MPS unavailable, a CUDA index beyond the devices present)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{where}: {name} {device!r} is not a device: {err}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{where}: {name} {device!r}: no CUDA device is available (use 'cpu')")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"{where}: {name} {device!r}: this machine has {count} CUDA device(s), 0 to {count - 1}")
    elif parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{where}: {name} {device!r}: MPS is not available on this machine")
    return parsed


def check_lr(where: str, lr: Any) -> None:
    """``lr`` is a (B, C, h, w) tensor holding at least one pixel of one image; `ValueError` naming it else."""
    if not isinstance(lr, Tensor) or lr.dim() != 4:
        shape = tuple(lr.shape) if isinstance(lr, Tensor) else type(lr).__name__
        raise ValueError(f"{where}: lr must be a (B, C, h, w) tensor, got {shape}")
    if lr.shape[0] < 1 or lr.shape[-1] < 1 or lr.shape[-2] < 1:
        raise ValueError(f"{where}: lr must hold at least one pixel of one image, got shape {tuple(lr.shape)}")


@torch.no_grad()
def tiled(
    model: nn.Module,
    lr: Tensor,
    tile_size: int,
    *,
    upsampler_tile: int | None = None,
    output_device: torch.device | str | None = None,
    max_halo: int | None = DEFAULT_MAX_HALO,
    map_budget: int | None = DEFAULT_MAP_BUDGET,
    warn_untiled: bool = True,
    keep_srs: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """``model(lr)`` computed with every local sub-module run tile by tile (see the module docstring).

    Args:
        model: any module built from dan-blocks' (or protocol-implementing) modules.
        lr: (B, C, h, w), the grid every tile refers to.
        tile_size: interior tile side in LR pixels.
        upsampler_tile: interior tile side for upsamplers (default ``min(tile_size, 128)``).
        output_device: where outputs larger than the LR (SR images) are stored.
        max_halo: declared units with a larger radius are split into their children (see `DEFAULT_MAX_HALO`);
            None tiles every declared unit whole.
        map_budget: a split keeps whole LR-resolution maps between the parts; when one would exceed this many
            bytes (`DEFAULT_MAP_BUDGET`, 256 MiB) the unit runs tile by tile whole instead. None: no limit.
        warn_untiled: warn, naming them, about leaves with parameters that run untiled.
        keep_srs: False: a DAN's iterations share one SR buffer and ``srs`` holds only the final image (peak
            memory: two SR images instead of ``loop``; see `SingleSRBuffer`).
        progress: called as ``progress(done, total)`` after each tile of an upsampling unit (the SR image's
            tiles, once per iteration), e.g. to advance a progress bar within a large image.

    Returns:
        what ``model(lr)`` returns, equal up to float summation order.

    Raises:
        TypeError / ValueError: naming the argument: sizes that are not integers in range (`TileSizeError`,
            both at once), an ``lr`` that is not a 4-D tensor with pixels, a device that does not exist here.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"tiled: model must be an nn.Module, got {type(model).__name__}")
    check_lr("tiled", lr)
    tile_size = check_size("tiled", "tile_size", tile_size)  # type: ignore[assignment]
    upsampler_tile = check_size("tiled", "upsampler_tile", upsampler_tile, allow_none=True)
    max_halo = check_size("tiled", "max_halo", max_halo, minimum=0, allow_none=True)
    map_budget = check_size("tiled", "map_budget", map_budget, minimum=0, allow_none=True)
    grid = (int(lr.shape[-2]), int(lr.shape[-1]))
    plan = TilingPlan(
        grid,
        tile_size,
        upsampler_tile if upsampler_tile is not None else min(tile_size, 128),
        None if output_device is None else check_device("tiled", "output_device", output_device),
        max_halo,
        map_budget,
        int(lr.shape[0]) * grid[0] * grid[1] * lr.element_size(),
    )
    plan.compute_device = lr.device
    plan.progress = progress
    proxy = _tiling_copy(model, plan, type(model).__name__)
    if not keep_srs:
        proxy = single_sr_copy(proxy, plan)
    if plan.untiled and warn_untiled:
        warnings.warn(
            "tiled: these modules hold parameters but declare no receptive_radius(), so they run untiled (exact, "
            f"without the memory saving): {', '.join(plan.untiled[:6])}"
            f"{' ...' if len(plan.untiled) > 6 else ''}. Implement receptive_radius() on a module if it is "
            "spatially local (see dan_blocks.inference.tiled)",
            stacklevel=2,
        )
    result = proxy(lr)
    return result if keep_srs else only_final_sr(result)
