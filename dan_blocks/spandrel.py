"""``dan_blocks.spandrel.install()``: DAN and MANet in spandrel (and so in chaiNNer, ComfyUI and other hosts that
load models through it), in the style of ``spandrel_extra_arches``.

After ``install()``, ``spandrel.ModelLoader().load_from_file(path)`` loads

- the DAN release's v1 / v2 files (``danv2_x4_setting1.pth`` ...),
- MANet's stage-3 file (``stage3_MANet+RRDB_x4.pth``; the stage-1 file is a kernel estimator, not an SR model:
  it is refused with an `UnsupportedModelError` that says so),
- dan-blocks model files (``dan_blocks.archs.save_model``, BasicSR's ``net_g_*.pth`` written by DANModel,
  ``dan-blocks convert``) and any state dict a registered network wrote itself (``torch.save(model.state_dict())``,
  safetensors, a host's Save Model): the options travel inside the state dict, so the network is rebuilt exactly,

each through `dan_blocks.load_model`, as an ``ImageModelDescriptor`` whose call gives the final SR image
(spandrel clamps it to [0, 1]). The call tiles exactly inside (`dan_blocks.upscale`) when the image is large, so
descriptors declare ``ModelTiling.INTERNAL``: one kernel estimate per image. For hosts that tile anyway
(ComfyUI's upscale node), `one_kernel_per_image` answers their tile calls from one whole-image result.
Needs ``pip install dan-blocks[spandrel]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from .archs import ARCH_REGISTRY, DAN, DANv1, DANv2, MANetEstimator, MANetRRDB
from .formats.manet_files import manet_release_kind
from .formats.model_files import file_metadata
from .inference import load_model, upscale

if TYPE_CHECKING:
    import spandrel

__all__ = ["ARCH_IDS", "INTERNAL_TILE", "architectures", "install", "one_kernel_per_image", "precision_support"]

#: the ids of the architectures `install` adds
ARCH_IDS = ("DAN", "MANet", "BlindSRFamily")


def precision_support(model: nn.Module) -> tuple[bool, bool]:
    """``(supports_half, supports_bfloat16)`` a descriptor declares, as measured (docs/hosts.md, "Precision"):
    fp16 kept every output finite and within 55 dB (DANv2) / 71 dB (DANv1, MANet) of fp32 on CUDA and on the CPU;
    bf16 (3 fewer mantissa bits) within 53-55 dB for DANv1 and MANet, but only 39 dB (up to 0.07 off) for DANv2,
    whose doubled group residuals amplify the rounding: DANv2 declares no bf16. IKC, DCLS and DASR declare
    neither until measured (benchmarks/family_precision.py measures them)."""
    from .archs import DASR, DCLS, IKC

    if isinstance(model, (IKC, DCLS, DASR)):
        return False, False
    return True, not isinstance(model, DANv2)
#: the LR tile side of the exact tiling a descriptor's call runs for images above ``4 * INTERNAL_TILE**2`` pixels
INTERNAL_TILE = 512


def _recorded_type(state: Mapping[str, Any]) -> type | None:
    """The class a file's recorded options name (None: no record, an unreadable one, or an unknown type)."""
    try:
        meta = file_metadata(state)
    except ValueError:
        return None
    network = meta.get("network_g") if isinstance(meta, Mapping) else None
    kind = network.get("type") if isinstance(network, Mapping) else None
    if not isinstance(kind, str) or kind not in ARCH_REGISTRY:
        return None
    found = ARCH_REGISTRY.get(kind)
    return found if isinstance(found, type) else None


def _is_dan(state: Mapping[str, Any]) -> bool:
    if _is_family(state):  # DCLS's release also uses Restorer.* / Estimator.* keys
        return False
    recorded = _recorded_type(state)
    if recorded is not None:  # what the file says it is decides (a MANet state dict has restorer.* keys too)
        return issubclass(recorded, DAN) and not issubclass(recorded, MANetRRDB)
    keys = list(state)
    release = any(k.startswith("Restorer.") for k in keys) and any(k.startswith("Estimator.") for k in keys)
    ours = any(k.startswith("restorer.") for k in keys) and "pca.matrix" in state and "init_code" in state
    return release or (ours and manet_release_kind(state) is None)


def _is_family(state: Mapping[str, Any]) -> bool:
    """DCLS and DASR (release files or dan-blocks model files); IKC's release files (its parts, loaded to be told
    they are parts); an assembled IKC model file is a DAN."""
    from .archs import DASR, DCLS
    from .formats.family_files import family_release_kind

    recorded = _recorded_type(state)
    if recorded is not None:
        return issubclass(recorded, (DCLS, DASR))
    return family_release_kind(state) is not None


def _is_manet(state: Mapping[str, Any]) -> bool:
    recorded = _recorded_type(state)
    if recorded is not None:
        return issubclass(recorded, (MANetRRDB, MANetEstimator))
    return manet_release_kind(state) is not None  # stage 1 too: refused by load with a message, not ignored


def _whole_sr(model: nn.Module, image: Tensor) -> Tensor:
    """The final SR of ``image``: untiled up to ``4 * INTERNAL_TILE**2`` pixels, else exactly tiled
    (`dan_blocks.upscale`: the same numbers, bounded memory)."""
    height, width = image.shape[-2:]
    if height * width <= 4 * INTERNAL_TILE * INTERNAL_TILE:
        super_resolve = cast(Callable[[Tensor], Tensor], model.super_resolve)  # a model `load` accepted (it has one)
        return super_resolve(image)
    out = upscale(model, image, INTERNAL_TILE, optimize=False, keep_srs=False)
    return out.sr


class _WholeImage:
    """The whole image a host tiles, and its SR (computed once per batch item, on first use)."""

    def __init__(self, image: Tensor) -> None:
        self.image = image
        self.srs: dict[int, Tensor] = {}

    def locate(self, tile: Tensor) -> tuple[int, int, int] | None:
        """(batch index, top, left) of ``tile`` inside the image, or None when it is not part of it."""
        image = self.image
        if tile.dim() != 4 or tile.shape[0] != 1 or tile.shape[1] != image.shape[1]:
            return None
        height, width = tile.shape[-2:]
        if height > image.shape[-2] or width > image.shape[-1]:
            return None
        found = self._as_view(tile)
        if found is None:
            found = self._by_content(tile)
        return found

    def _as_view(self, tile: Tensor) -> tuple[int, int, int] | None:
        """A tile that is a slice of the image (what ComfyUI's tiled_scale passes): read off its storage offset."""
        image = self.image
        if (tile.device != image.device or tile.dtype != image.dtype or tile.stride() != image.stride()
                or tile.untyped_storage().data_ptr() != image.untyped_storage().data_ptr()):
            return None
        offset = int(tile.storage_offset()) - int(image.storage_offset())
        if offset < 0:
            return None
        index = [0, 0, 0, 0]
        strides = image.stride()
        for dim in sorted(range(4), key=lambda d: -strides[d]):
            step = strides[dim]
            if step > 0:
                index[dim], offset = divmod(offset, step)
        batch, channel, top, left = index
        height, width = tile.shape[-2:]
        if (offset or channel or batch >= image.shape[0] or top + height > image.shape[-2]
                or left + width > image.shape[-1]):
            return None
        return batch, top, left

    def _by_content(self, tile: Tensor) -> tuple[int, int, int] | None:
        """A copy of a part of the image (a host that moved or converted it): the first position, in raster
        order, whose pixels are equal."""
        image = self.image.to(tile.device, tile.dtype)
        height, width = tile.shape[-2:]
        rows, cols = image.shape[-2] - height + 1, image.shape[-1] - width + 1
        corner = tile[0, :, 0, 0].reshape(1, -1, 1, 1)
        hits = (image[:, :, :rows, :cols] == corner).all(dim=1).nonzero().tolist()
        for batch, top, left in hits[:4096]:
            if torch.equal(image[batch, :, top : top + height, left : left + width], tile[0]):
                return batch, top, left
        return None

    def sr_of(self, model: nn.Module, batch: int, like: Tensor) -> Tensor:
        if batch not in self.srs:
            self.srs[batch] = _whole_sr(model, self.image[batch : batch + 1].to(like.device, like.dtype))
        return self.srs[batch]


_WHOLE_ATTR = "_dan_blocks_whole_image"


def _super_resolve(model: nn.Module, image: Tensor) -> Tensor:
    whole: _WholeImage | None = getattr(model, _WHOLE_ATTR, None)
    if whole is not None:
        found = whole.locate(image)
        if found is not None:
            batch, top, left = found
            scale = int(model.scale)  # type: ignore[arg-type]
            height, width = image.shape[-2:]
            sr = whole.sr_of(model, batch, image)
            return sr[..., top * scale : (top + height) * scale, left * scale : (left + width) * scale].to(
                image.dtype).clone()
    return _whole_sr(model, image)


@contextlib.contextmanager
def one_kernel_per_image(descriptor: Any, image: Tensor) -> Iterator[None]:
    """Within the block, the descriptor's calls on tiles of ``image`` (slices of it, as ComfyUI's
    ``comfy.utils.tiled_scale`` passes, or copies of its pixels) return that tile's part of ONE whole-image SR:
    one kernel estimate per image, as if the host had not tiled (the whole image is super-resolved once per
    batch item, exactly tiled inside when large). Other inputs run as usual. For host integrations (a custom
    node wrapping the host's own tiling)::

        with dan_blocks.spandrel.one_kernel_per_image(descriptor, in_img):
            out = comfy.utils.tiled_scale(in_img, lambda a: descriptor(a), tile_x=512, tile_y=512, overlap=32,
                                          upscale_amount=descriptor.scale)

    Args:
        descriptor: an ``ImageModelDescriptor`` loaded through `install` (or its ``.model``).
        image: (B, C, H, W) in [0, 1], the tensor the host tiles.

    Raises:
        TypeError: ``descriptor`` is not a DAN / MANet descriptor, or ``image`` not a 4-D floating tensor.
    """
    model = getattr(descriptor, "model", descriptor)
    if not isinstance(model, DAN):
        raise TypeError(
            "one_kernel_per_image: expected a descriptor of dan-blocks' DAN / MANet architectures (from "
            f"dan_blocks.spandrel.install()), got {type(descriptor).__name__}"
        )
    if not isinstance(image, Tensor) or image.dim() != 4 or not image.is_floating_point():
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise TypeError(f"one_kernel_per_image: image must be a (B, C, H, W) floating tensor, got {got}")
    previous = getattr(model, _WHOLE_ATTR, None)
    object.__setattr__(model, _WHOLE_ATTR, _WholeImage(image))
    try:
        yield
    finally:
        object.__setattr__(model, _WHOLE_ATTR, previous)


def _tags(model: nn.Module) -> list[str]:
    if isinstance(model, DANv1):
        name = "DANv1"
    elif isinstance(model, DANv2):
        name = "DANv2"
    elif isinstance(model, MANetRRDB):
        name = "MANet+RRDB"
    else:
        name = type(model).__name__
    tags = [name, f"x{model.scale}"]
    if isinstance(model, DAN):
        tags.append(f"{model.kernel_size}x{model.kernel_size} kernels, {model.code_length}-d codes")
        if not isinstance(model, MANetRRDB):
            tags.append(f"loop {model.loop}")
    return tags


def architectures(before: tuple[str, ...] = ()) -> list[spandrel.ArchSupport]:
    """The ``spandrel.ArchSupport`` entries of DAN and MANet (what `install` adds), detected before the
    architectures ``before`` (`install` passes every one already registered: their detection could claim our
    files first, e.g. ESRGAN's on the RRDB keys of MANet's stage 3; ours match only our layouts)."""
    import spandrel

    class _Arch(spandrel.Architecture[nn.Module]):
        def __init__(self, arch_id: str, name: str, detect: Any) -> None:
            super().__init__(id=arch_id, name=name, detect=detect)

        def load(self, state_dict: spandrel.StateDict) -> spandrel.ImageModelDescriptor[nn.Module]:
            model = load_model(state_dict)
            if not callable(getattr(model, "super_resolve", None)):
                what = ("MANet's stage-1 file: a kernel estimator (LR image -> per-pixel blur kernels)"
                        if isinstance(model, MANetEstimator) else f"a {type(model).__name__}")
                raise spandrel.UnsupportedModelError(
                    f"this file holds {what}, not a super-resolution model, so it cannot upscale images; use the "
                    "stage-3 file (stage3_MANet+RRDB_x4.pth) here, or load this one in Python with "
                    "dan_blocks.load_model(path)"
                )
            scale = int(cast(int, model.scale))  # every DAN-family model records its scale
            return spandrel.ImageModelDescriptor(
                model,
                model.state_dict(),  # spandrel loads this into the model: ours, not the file's (release) layout
                architecture=self,
                purpose="SR" if scale > 1 else "Restoration",
                tags=_tags(model),
                supports_half=precision_support(model)[0],
                supports_bfloat16=precision_support(model)[1],
                scale=scale,
                input_channels=int(getattr(model.restorer, "in_nc", 3)),
                output_channels=3,
                size_requirements=spandrel.SizeRequirements(minimum=1),
                # one kernel estimate per image (DAN: global pooling; MANet: its estimate and RRDB trunk reach far
                # beyond a host's 32-px overlap): the call tiles exactly inside instead (see _whole_sr)
                tiling=spandrel.ModelTiling.INTERNAL,
                call_fn=_super_resolve,
            )

    return [
        spandrel.ArchSupport.from_architecture(_Arch("DAN", "DAN (Deep Alternating Network)", _is_dan), before=before),
        spandrel.ArchSupport.from_architecture(_Arch("MANet", "MANet+RRDB", _is_manet), before=before),
        spandrel.ArchSupport.from_architecture(_Arch("BlindSRFamily", "DCLS / DASR (blind SR)", _is_family),
                                               before=before),
    ]


def install(registry: spandrel.ArchRegistry | None = None, ignore_duplicates: bool = True) -> list[Any]:
    """Add DAN and MANet to spandrel's registry (``spandrel.MAIN_REGISTRY`` by default); calling it again is
    harmless. Returns the entries added.

    Raises:
        ImportError: spandrel is not installed (``pip install dan-blocks[spandrel]``).
    """
    try:
        import spandrel
    except ImportError as err:
        raise ImportError(
            "dan_blocks.spandrel needs spandrel: pip install 'dan-blocks[spandrel]' (or pip install spandrel)"
        ) from err
    target = spandrel.MAIN_REGISTRY if registry is None else registry
    others = tuple(a.architecture.id for a in target.architectures() if a.architecture.id not in ARCH_IDS)
    return target.add(*architectures(others), ignore_duplicates=ignore_duplicates)
