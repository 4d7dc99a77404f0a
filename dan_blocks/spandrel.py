"""``dan_blocks.spandrel.install()``: DAN and MANet in spandrel (and so in chaiNNer, ComfyUI and other hosts that
load models through it), in the style of ``spandrel_extra_arches``.

After ``install()``, ``spandrel.ModelLoader().load_from_file(path)`` loads

- the DAN release's v1 / v2 files (``danv2_x4_setting1.pth`` ...),
- MANet's stage-3 file (``stage3_MANet+RRDB_x4.pth``; the stage-1 file is a kernel estimator, not an SR model),
- dan-blocks model files (``dan_blocks.archs.save_model``, BasicSR's ``net_g_*.pth`` written by DANModel,
  ``dan-blocks convert``): their options travel inside the state dict, so the network is rebuilt exactly,

each through `dan_blocks.load_model`, as an ``ImageModelDescriptor`` whose call gives the final SR image
(spandrel clamps it to [0, 1]). Needs ``pip install dan-blocks[spandrel]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from .archs import DAN, DANv1, DANv2, MANetRRDB
from .formats.manet_files import manet_release_kind
from .formats.model_files import file_metadata
from .inference import load_model

if TYPE_CHECKING:
    import spandrel

__all__ = ["ARCH_IDS", "architectures", "install"]

#: the ids of the architectures `install` adds
ARCH_IDS = ("DAN", "MANet")


def _is_dan(state: Mapping[str, Any]) -> bool:
    keys = list(state)
    release = any(k.startswith("Restorer.") for k in keys) and any(k.startswith("Estimator.") for k in keys)
    ours = any(k.startswith("restorer.") for k in keys) and "pca.matrix" in state
    meta = file_metadata(state)
    described = isinstance(meta, Mapping) and isinstance(meta.get("network_g"), Mapping)
    return release or (ours and (described or "init_code" in state))


def _is_manet_sr(state: Mapping[str, Any]) -> bool:
    return manet_release_kind(state) == "stage3"


def _super_resolve(model: nn.Module, image: Tensor) -> Tensor:
    return model.super_resolve(image)  # type: ignore[operator, no-any-return]


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
        def __init__(self, arch_id: str, name: str, detect: Any, tiling: spandrel.ModelTiling) -> None:
            super().__init__(id=arch_id, name=name, detect=detect)
            self._tiling = tiling

        def load(self, state_dict: spandrel.StateDict) -> spandrel.ImageModelDescriptor[nn.Module]:
            model = load_model(state_dict)
            if not isinstance(model, DAN):
                raise spandrel.UnsupportedModelError(
                    f"{type(model).__name__} is not a super-resolution model (load it with dan_blocks.load_model)"
                )
            scale = int(model.scale)
            return spandrel.ImageModelDescriptor(
                model,
                model.state_dict(),  # spandrel loads this into the model: ours, not the file's (release) layout
                architecture=self,
                purpose="SR" if scale > 1 else "Restoration",
                tags=_tags(model),
                # bf16 keeps fp32's range; fp16 is not validated (softmax kernels and PCA codes), so hosts keep fp32
                supports_half=False,
                supports_bfloat16=True,
                scale=scale,
                input_channels=int(getattr(model.restorer, "in_nc", 3)),
                output_channels=3,
                size_requirements=spandrel.SizeRequirements(minimum=1),
                tiling=self._tiling,
                call_fn=_super_resolve,
            )

    return [
        # DAN estimates one kernel per image (global pooling): a host's tiles would each get their own kernel
        spandrel.ArchSupport.from_architecture(
            _Arch("DAN", "DAN (Deep Alternating Network)", _is_dan, spandrel.ModelTiling.DISCOURAGED), before=before
        ),
        # MANet is spatially variant and local: tiles with enough overlap give the whole image's result
        spandrel.ArchSupport.from_architecture(
            _Arch("MANet", "MANet+RRDB", _is_manet_sr, spandrel.ModelTiling.SUPPORTED), before=before
        ),
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
