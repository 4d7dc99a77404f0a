"""Issue 22 (hosts): a host that tiles (ComfyUI's upscale node: 512-px tiles, 32-px overlap, feathered blend) keeps
one kernel estimate per image with dan_blocks.spandrel.one_kernel_per_image, within 1e-4 of the untiled result."""

from __future__ import annotations

import pytest
import torch

spandrel = pytest.importorskip("spandrel")

from _helpers import randomise  # noqa: E402

from dan_blocks.archs import DANv2  # noqa: E402
from dan_blocks.spandrel import install, one_kernel_per_image  # noqa: E402
from dan_blocks.utils.state_record import RECORD_KEY  # noqa: E402


@torch.inference_mode()
def host_tiled_scale(image, function, tile: int = 512, overlap: int = 32, scale: int = 2) -> torch.Tensor:
    """The call sequence of ComfyUI's ImageUpscaleWithModel (comfy.utils.tiled_scale, checked against ComfyUI's
    own code at commit a125cd84 with benchmarks/comfyui_tiling.py), written here from its description: under
    inference mode, per batch item, an image that fits in one tile goes to ``function`` whole; else tiles start
    every ``tile - overlap`` pixels below ``size - overlap`` along each side longer than ``tile`` (each start
    clipped to at most ``size - overlap``, the tile cut at the border), each tile a slice (a view) of the image,
    and the outputs are averaged with a mask that ramps linearly over ``overlap * scale`` output pixels at every
    tile border (no ramp along a side shorter than that)."""
    batch, _, height, width = image.shape
    out = torch.empty(batch, 3, height * scale, width * scale)
    for b in range(batch):
        item = image[b : b + 1]
        if height <= tile and width <= tile:
            out[b : b + 1] = function(item)
            continue
        acc = torch.zeros(1, 3, height * scale, width * scale)
        weight = torch.zeros_like(acc)
        rows = range(0, height - overlap, tile - overlap) if height > tile else [0]
        cols = range(0, width - overlap, tile - overlap) if width > tile else [0]
        for y0 in rows:
            for x0 in cols:
                y = max(0, min(height - overlap, y0))
                x = max(0, min(width - overlap, x0))
                part = function(item.narrow(2, y, min(tile, height - y)).narrow(3, x, min(tile, width - x)))
                mask = torch.ones_like(part)
                feather = overlap * scale
                for dim in (2, 3):
                    if feather >= mask.shape[dim]:
                        continue
                    for t in range(feather):
                        ramp = (t + 1) / feather
                        mask.narrow(dim, t, 1).mul_(ramp)
                        mask.narrow(dim, mask.shape[dim] - 1 - t, 1).mul_(ramp)
                rows_out = slice(y * scale, y * scale + part.shape[2])
                cols_out = slice(x * scale, x * scale + part.shape[3])
                acc[:, :, rows_out, cols_out] += part * mask
                weight[:, :, rows_out, cols_out] += mask
        out[b : b + 1] = acc / weight
    return out


def test_host_tiling_keeps_one_kernel_per_image(tmp_path) -> None:
    install()
    model = randomise(DANv2(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=1, ng=1,
                            est_nf=8, est_nb=1, est_tail_nf=8, loop=2), 4)
    torch.save(model.state_dict(), tmp_path / "net.pth")
    desc = spandrel.ModelLoader().load_from_file(tmp_path / "net.pth")
    assert desc.tiling == spandrel.ModelTiling.INTERNAL
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 36, 520, generator=gen).cumsum(-1) / 520  # wider than 480 px: the host makes 2 tiles
    lr = lr / lr.max()
    untiled = desc(lr)
    with torch.no_grad():
        torch.testing.assert_close(untiled, model.eval().super_resolve(lr).clamp(0, 1), rtol=0, atol=1e-6)
    naive = host_tiled_scale(lr, lambda a: desc(a))  # each tile its own kernel estimate
    assert (naive - untiled).abs().max() > 1e-3
    with one_kernel_per_image(desc, lr):
        tiled = host_tiled_scale(lr, lambda a: desc(a))
        copied = host_tiled_scale(lr.clone(), lambda a: desc(a.clone()))  # a host that copies its tiles
    assert (tiled - untiled).abs().max() <= 1e-4
    assert (copied - untiled).abs().max() <= 1e-4
    other = torch.rand(1, 3, 9, 10, generator=gen)
    with one_kernel_per_image(desc, lr):  # an image that is no part of it runs as usual
        torch.testing.assert_close(desc(other), desc.model.super_resolve(other).clamp(0, 1), rtol=0, atol=0)
    assert RECORD_KEY in desc.model.state_dict()


def test_one_kernel_per_image_names_what_it_needs() -> None:
    with pytest.raises(TypeError, match="descriptor of dan-blocks' DAN / MANet"), one_kernel_per_image(
        torch.nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 4, 4)
    ):
        pass
