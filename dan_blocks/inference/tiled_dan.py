r"""Exact tiled inference of DAN: :func:`upscale`.

Tiled, every convolution runs tile by tile with a halo of its receptive field and every global average
pooling sums the tiles' interiors, so the result equals ``model(lr)`` up to float summation order:

- v1 (:class:`~dan_blocks.archs.RestorerV1`, :class:`~dan_blocks.archs.EstimatorV1`): the channel attention
  of every CRB pools over the whole image, so the trunk runs block by block. The LR-resolution feature map
  (B, nf, h, w) stays whole; each block's residual :math:`r = W_2 * \delta(W_1 * [f, S(c)])` is computed tile
  by tile with a 2-pixel halo into a second whole map, pooled, gated and added:
  :math:`f \leftarrow f + r \odot \sigma(\mathrm{mean}(r))`. The estimator does the same at its width and
  pools its output tile by tile.
- v2 (:class:`~dan_blocks.archs.RestorerV2`, :class:`~dan_blocks.archs.EstimatorV2`): given the code, the
  restorer is purely local (the condition path is 1x1 convolutions on a 1x1 map), so its trunk runs end to
  end per tile (halo = its receptive radius, about 104 LR pixels at x4) and each tile's features go straight
  into the upsampler: no whole LR-resolution feature map exists. ``groups_per_pass`` runs fewer groups per
  pass (smaller halo, less recomputation, one whole feature map between passes). The estimator runs end to
  end per tile and sums its tail before the softmax.
- The upsampler (the largest activations, at HR resolution) always runs on its own smaller tiles.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..archs import DAN, DANOutput, EstimatorV1, EstimatorV2, RestorerV1, RestorerV2
from ..layers import ChannelAttention
from .tiling import conv_radius, iter_tiles, map_tiles, sum_tiles

__all__ = ["TiledDAN", "supports_tiling", "upscale"]


def supports_tiling(model: nn.Module) -> str | None:
    """``None`` if :func:`upscale` can tile ``model`` exactly, else the reason why not."""
    if not isinstance(model, DAN):
        return f"{type(model).__name__} is not a dan_blocks DAN"
    if type(model.restorer) not in (RestorerV1, RestorerV2):
        return f"restorer {type(model.restorer).__name__} is not RestorerV1/RestorerV2"
    if type(model.estimator) not in (EstimatorV1, EstimatorV2):
        return f"estimator {type(model.estimator).__name__} is not EstimatorV1/EstimatorV2 (global estimates)"
    return None


def _attention(block: nn.Module) -> ChannelAttention:
    for module in block.modules():
        if isinstance(module, ChannelAttention):
            return module
    raise TypeError(f"{type(block).__name__} has no ChannelAttention to gate with")


def _strided_radius(conv: nn.Conv2d) -> int:
    """Radius in LR pixels of a stride-``s`` conv reading an s-times larger image (the estimators' head_HR)."""
    stride, pad, size = conv.stride[0], conv.padding[0], conv.kernel_size[0]
    if conv.stride[0] != conv.stride[1] or pad != size // 2 or conv.padding[0] != conv.padding[1]:
        raise ValueError(f"unsupported head_HR convolution for tiling: {conv}")
    return math.ceil(pad / stride)


def _dpcg_radius(group: nn.Module, r_feat: int, r_cond: int) -> tuple[int, int]:
    """Receptive radii (feature path, condition path) after a DPCG: f' needs f and c, c' needs c."""
    for block in group.body:
        gate = r_cond + conv_radius(block.body2)
        r_feat, r_cond = max(r_feat + conv_radius(block.body1), gate), gate
    return r_feat, r_cond


class TiledDAN:
    """The tiled forward of a supported :class:`~dan_blocks.archs.DAN` (see the module docstring).

    Args:
        model: a DAN with RestorerV1/V2 and EstimatorV1/V2.
        tile_size: interior tile side in LR pixels for the LR-resolution passes.
        upsampler_tile: tile side in LR pixels for the HR upsampler (default ``min(tile_size, 128)``).
        groups_per_pass: v2 only, DPCGs per tiled pass (None: the whole trunk in one pass, so no whole
            LR-resolution feature map is kept during the trunk; smaller values cut the halo overhead).
        output_device: where the SR images are stored (default: the LR's device), e.g. ``"cpu"`` to keep
            the device's memory for the computation.
    """

    def __init__(
        self,
        model: DAN,
        tile_size: int,
        upsampler_tile: int | None = None,
        groups_per_pass: int | None = None,
        output_device: torch.device | str | None = None,
    ) -> None:
        reason = supports_tiling(model)
        if reason is not None:
            raise TypeError(f"cannot tile: {reason}")
        if tile_size < 1:
            raise ValueError(f"tile_size must be >= 1, got {tile_size}")
        if groups_per_pass is not None and groups_per_pass < 1:
            raise ValueError(f"groups_per_pass must be >= 1 or None, got {groups_per_pass}")
        self.model = model
        self.scale = model.scale
        self.tile = int(tile_size)
        self.up_tile = int(upsampler_tile) if upsampler_tile else min(self.tile, 128)
        self.groups_per_pass = groups_per_pass
        self.output_device = None if output_device is None else torch.device(output_device)
        weight = model.restorer.upscale.weight if isinstance(model.restorer.upscale, nn.Conv2d) else None
        weight = next(p for p in model.parameters() if p.dim() == 4) if weight is None else weight
        channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
        #: layout of the whole LR-resolution feature maps: the weights' (channels_last on DAN's fast path)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # -- shared -------------------------------------------------------------------------------------
    def _upsample(self, feat: Tensor, fusion: nn.Module | None, size: tuple[int, int]) -> Tensor:
        restorer = self.model.restorer
        modules = ([fusion] if fusion is not None else []) + [restorer.upscale]
        halo = conv_radius(modules)

        def run(f: Tensor) -> Tensor:
            return restorer.upscale(fusion(f) if fusion is not None else f)

        return map_tiles(
            run, [(feat, 1)], size, self.up_tile, halo, self.scale, device=feat.device, out_device=self.output_device
        )

    def _local_then_upsample(self, run: Callable[[Tensor], Tensor], source: Tensor, halo: int) -> Tensor:
        """``upscale(run(source))`` for a local LR-resolution ``run`` of receptive radius ``halo``, without a
        whole LR feature map: each tile of ``run`` (grown by the upsampler's halo too) is upsampled in
        sub-tiles of ``upsampler_tile`` right away."""
        upscale = self.model.restorer.upscale
        size, scale = (source.shape[-2], source.shape[-1]), self.scale
        up_halo = conv_radius(upscale)
        out: Tensor | None = None
        for tile in iter_tiles(size, self.tile, halo + up_halo):
            feat = run(tile.crop(source))  # valid within up_halo of the interior (clipped to the image)
            for sub in iter_tiles(size, self.up_tile, up_halo, (tile.y0, tile.y1, tile.x0, tile.x1)):
                part = feat[..., sub.ey0 - tile.ey0 : sub.ey1 - tile.ey0, sub.ex0 - tile.ex0 : sub.ex1 - tile.ex0]
                result = sub.interior(upscale(part), scale)
                if out is None:
                    out = result.new_empty(
                        (result.shape[0], result.shape[1], scale * size[0], scale * size[1]),
                        device=self.output_device or result.device,
                    )
                sub.place(out, scale).copy_(result)
        assert out is not None
        return out

    def _crb_trunk(self, feat: Tensor, blocks: nn.ModuleList, cond: Tensor, cond_factor: int | None) -> Tensor:
        """``feat`` (whole, updated in place) through CRBs; cond is a global code (B, C) (``cond_factor``
        None) or a whole map tiled with the features (factor 1)."""
        size = (feat.shape[-2], feat.shape[-1])
        res: Tensor | None = None
        for block in blocks:
            halo = conv_radius(block.body[:-1]) if isinstance(block.body, nn.Sequential) else 2
            if cond_factor is None:
                res = map_tiles(
                    lambda f, b=block: b.residual(f, cond), [(feat, 1)], size, self.tile, halo, out=res,
                    memory_format=self.memory_format,
                )
            else:
                res = map_tiles(
                    lambda f, c, b=block: b.residual(f, c), [(feat, 1), (cond, 1)], size, self.tile, halo, out=res,
                    memory_format=self.memory_format,
                )
            gate = _attention(block).gate(res.mean(dim=(2, 3), keepdim=True))
            feat.add_(res.mul_(gate))
        return feat

    # -- v1 -----------------------------------------------------------------------------------------
    def _restore_v1(self, lr: Tensor, code: Tensor) -> Tensor:
        r: RestorerV1 = self.model.restorer
        size = (lr.shape[-2], lr.shape[-1])
        feat = map_tiles(r.head, [(lr, 1)], size, self.tile, conv_radius(r.head), memory_format=self.memory_format)
        feat = self._crb_trunk(feat, r.body, code, None)
        return self._upsample(feat, r.fusion, size)

    def _estimate_v1(self, sr: Tensor, lr: Tensor) -> Tensor:
        e: EstimatorV1 = self.model.estimator
        size, device = (lr.shape[-2], lr.shape[-1]), lr.device
        fmt = self.memory_format
        feat = map_tiles(e.head_LR, [(lr, 1)], size, self.tile, conv_radius(e.head_LR), memory_format=fmt)
        cond = map_tiles(
            e.head_HR, [(sr, self.scale)], size, self.tile, _strided_radius(e.head_HR), device=device,
            memory_format=fmt,
        )
        feat = self._crb_trunk(feat, e.body, cond, 1)
        del cond
        total = sum_tiles(e.out, [(feat, 1)], size, self.tile, conv_radius(e.out))
        return (total / (size[0] * size[1])).to(feat.dtype)

    # -- v2 -----------------------------------------------------------------------------------------
    def _restore_v2(self, lr: Tensor, code: Tensor) -> Tensor:
        r: RestorerV2 = self.model.restorer
        size = (lr.shape[-2], lr.shape[-1])
        cond = r.head2(code[:, :, None, None] if code.dim() == 2 else code)
        if cond.shape[-2:] != (1, 1):
            raise ValueError("TiledDAN: RestorerV2 is tiled for global codes (B, C) only")
        groups = list(r.body)
        step = len(groups) if self.groups_per_pass is None else self.groups_per_pass
        feat = lr
        for start in range(0, len(groups), step):
            chunk = groups[start : start + step]
            first, last = start == 0, start + step >= len(groups)
            halo = conv_radius(r.head1) if first else 0
            for group in chunk:
                halo = _dpcg_radius(group, halo, 0)[0]
            halo += conv_radius(r.fusion) if last else 0
            state: dict[str, Tensor] = {}

            def run(
                f: Tensor,
                chunk: list[nn.Module] = chunk,
                first: bool = first,
                last: bool = last,
                c: Tensor = cond,
                state: dict[str, Tensor] = state,
            ) -> Tensor:
                if first:
                    f = r.head1(f)
                for group in chunk:
                    f, c = group(f, c)
                state["cond"] = c
                return r.fusion(f) if last else f

            if last:
                return self._local_then_upsample(run, feat, halo)
            feat = map_tiles(
                run, [(feat, 1)], size, self.tile, halo, device=lr.device, memory_format=self.memory_format
            )
            cond = state["cond"]
        raise AssertionError("unreachable: the last pass returns")

    def _estimate_v2(self, sr: Tensor, lr: Tensor) -> Tensor:
        e: EstimatorV2 = self.model.estimator
        size, device = (lr.shape[-2], lr.shape[-1]), lr.device
        r_head = max(conv_radius(e.head_LR), _strided_radius(e.head_HR[0]))
        r_feat, _ = _dpcg_radius(e.body, r_head, r_head)
        halo = r_feat + conv_radius(e.tail[0])

        def run(lr_t: Tensor, sr_t: Tensor) -> Tensor:
            feat, _ = e.body(e.head_LR(lr_t), e.head_HR(sr_t))
            return e.tail[0](feat)

        sr, lr = e.normalise(sr, lr)  # a per-image mean over the whole LR: computed before tiling
        total = sum_tiles(run, [(lr, 1), (sr, self.scale)], size, self.tile, halo, device=device)
        pooled = (total / (size[0] * size[1])).to(lr.dtype)[:, :, None, None]
        return e.flatten(e.tail[2:](pooled))

    # -- the alternation ----------------------------------------------------------------------------
    def __call__(self, lr: Tensor) -> DANOutput:
        model = self.model
        v2_restorer = isinstance(model.restorer, RestorerV2)
        restore: Callable[[Tensor, Tensor], Tensor] = self._restore_v2 if v2_restorer else self._restore_v1
        estimate: Callable[[Tensor, Tensor], Tensor] = (
            self._estimate_v2 if isinstance(model.estimator, EstimatorV2) else self._estimate_v1
        )
        lr = lr.contiguous(memory_format=self.memory_format)
        code = model.init_code.expand(lr.shape[0], -1)
        srs: list[Tensor] = []
        codes: list[Tensor] = []
        kernels: list[Tensor | None] = []
        for _ in range(model.loop):
            sr = restore(lr, code)
            out = estimate(sr, lr)
            if model.output_kind == "kernel":
                kernel = model.as_kernel(out)
                code = model.pca.encode(kernel)
                kernels.append(kernel)
            else:
                code = out
                kernels.append(None)
            srs.append(sr)
            codes.append(code)
        return DANOutput(srs[-1], srs, codes, kernels)


def _check_lr(model: nn.Module, lr: Tensor) -> None:
    if not isinstance(lr, Tensor) or lr.dim() != 4:
        shape = tuple(lr.shape) if isinstance(lr, Tensor) else type(lr).__name__
        raise ValueError(f"upscale: lr must be a (B, C, h, w) tensor, got {shape}")
    in_nc = getattr(getattr(model, "restorer", None), "in_nc", None)
    if in_nc is not None and lr.shape[1] != in_nc:
        raise ValueError(f"upscale: the model expects {in_nc}-channel images, got lr of shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise ValueError(f"upscale: lr must be a floating tensor in [0, 1], got {lr.dtype}")


def upscale(
    model: nn.Module,
    lr: Tensor,
    tile_size: int | None = None,
    *,
    upsampler_tile: int | None = None,
    groups_per_pass: int | None = None,
    output_device: torch.device | str | None = None,
    fallback: str = "warn",
) -> DANOutput:
    """Super-resolve ``lr`` with a DAN, optionally tiled; equals ``model(lr)`` (no gradients are recorded).

    Args:
        model: a :class:`~dan_blocks.archs.DAN` (put it in eval mode yourself; DAN has no train-only layers).
        lr: (B, 3, h, w) in [0, 1], on the model's device.
        tile_size: None for one untiled pass ``model(lr)``; else the LR tile side (any size, a multiple of
            nothing). v1: 64 to 128 cost 6-14 % more compute than untiled; v2 recomputes its trunk's
            ~102-pixel halo, so use >= 512 (1.6x) or ``groups_per_pass=1`` (1.26x at 256).
        upsampler_tile: LR tile side for the HR upsampler (default ``min(tile_size, 128)``: at x4 its
            activations take ~8 KiB per LR pixel, ~130 MiB for a 128 x 128 tile in float32).
        groups_per_pass: v2: DPCGs per tiled pass (None: the whole trunk at once; see :class:`TiledDAN`).
        output_device: where the SR images are stored (default: ``lr``'s device).
        fallback: for a model :func:`supports_tiling` rejects: ``"warn"`` (run untiled with a warning) or
            ``"error"`` (raise TypeError).

    Returns:
        :class:`~dan_blocks.archs.DANOutput` with ``sr`` and the per-iteration ``srs``, ``codes``, ``kernels``
        exactly as ``DAN.forward`` gives them (max difference ~1e-6 in float32).
    """
    _check_lr(model, lr)
    if fallback not in ("warn", "error"):
        raise ValueError(f"upscale: fallback must be 'warn' or 'error', got {fallback!r}")
    with torch.no_grad():
        if tile_size is None:
            return model(lr)
        reason = supports_tiling(model)
        if reason is not None:
            if fallback == "error":
                raise TypeError(f"upscale: cannot tile exactly: {reason}")
            warnings.warn(f"upscale: cannot tile exactly ({reason}); running untiled", stacklevel=2)
            return model(lr)
        tiled = TiledDAN(model, tile_size, upsampler_tile, groups_per_pass, output_device)
        return tiled(lr)
