"""ComfyUI's own tiling path on a DAN v2 x4 model, against the untiled SR (issue 22, hosts).

Run: ``python benchmarks/comfyui_tiling.py COMFYUI_DIR [--size 700x600] [--model FILE] [--threads N]``.

``COMFYUI_DIR`` is a ComfyUI checkout (its ``comfy/``, ``comfy_api/``, ``comfy_extras/`` and ``folder_paths.py``
are enough). ComfyUI's own code runs: ``comfy.utils.tiled_scale`` and the stock "Upscale Image (using Model)"
node (``comfy_extras.nodes_upscale_model.ImageUpscaleWithModel``). Stubbed, because they are not installed or
touch the machine: ``comfy.model_management`` (CPU device, no memory management) and, when missing, the video
library ``av`` that ``comfy_api`` imports. The model goes through spandrel after ``dan_blocks.spandrel.install()``
(random seeded weights unless ``--model`` names a file); the LR image is a seeded smooth pattern with noise
growing from left to right (so tiles differ), larger than ComfyUI's 512-px tile, so the node tiles. Printed:
the max abs difference and PSNR against ``dan_blocks.upscale(model, lr)`` untiled, clamped to [0, 1], of

- the stock node (each tile its own kernel estimate);
- ``comfy.utils.tiled_scale`` inside ``dan_blocks.spandrel.one_kernel_per_image``;
- the stock node itself inside ``one_kernel_per_image`` (ComfyUI's tiles are views of the image it is given);
- dan-blocks' node (``dan_blocks.comfyui``), which runs the exact internal tiling.

Not collected by pytest (no ``test_`` names); needs ComfyUI's code, which CI does not have.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import types

__all__ = ["main"]


def _stub_comfy(comfy_dir: str) -> None:
    """ComfyUI importable from ``comfy_dir`` with comfy.model_management (and av, when missing) stubbed."""
    import importlib.util
    from unittest import mock

    import torch

    sys.path.insert(0, comfy_dir)
    if importlib.util.find_spec("av") is None:  # only comfy_api's video types use it
        for name in ("av", "av.container", "av.subtitles", "av.subtitles.stream"):
            sys.modules[name] = mock.MagicMock(name=name)
    import comfy  # noqa: F401  (ComfyUI's namespace package)

    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")  # type: ignore[attr-defined]
    mm.module_size = lambda module: sum(t.nelement() * t.element_size() for t in module.state_dict().values())  # type: ignore[attr-defined]
    mm.free_memory = lambda memory_required, device, keep_loaded=(): None  # type: ignore[attr-defined]
    mm.OOM_EXCEPTION = torch.cuda.OutOfMemoryError  # type: ignore[attr-defined]
    mm.throw_exception_if_processing_interrupted = lambda: None  # type: ignore[attr-defined]
    sys.modules["comfy.model_management"] = mm
    sys.modules["comfy"].model_management = mm  # type: ignore[attr-defined]


def _psnr(a, b) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfyui", help="path of a ComfyUI checkout")
    parser.add_argument("--size", default="700x600", help="LR width x height (default 700x600)")
    parser.add_argument("--model", default=None, help="a DAN v2 file (default: seeded random weights)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--commit", default=None, help="the checkout's ComfyUI commit, when it is no git work tree")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    _stub_comfy(os.path.abspath(args.comfyui))
    import comfy.utils
    import spandrel
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    import dan_blocks
    import dan_blocks.spandrel
    from dan_blocks.comfyui import NODE_CLASS_MAPPINGS

    dan_blocks.spandrel.install()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            torch.manual_seed(0)
            net = dan_blocks.dan_v2(4, nf=16, nb=2, ng=1, est_nf=16, est_nb=1, est_tail_nf=16, loop=2)
            gen = torch.Generator().manual_seed(4)
            with torch.no_grad():
                for p in net.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            path = os.path.join(tmp, "danv2_x4.pth")
            torch.save(net.state_dict(), path)
        desc = spandrel.ModelLoader().load_from_file(path).eval()
    print(f"model: {type(desc.model).__name__} x{desc.scale} ({args.model or 'random weights, seed 4'}), "
          f"{desc.architecture.id}, tiling {desc.tiling.name}")

    gen = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 3, height // 8 + 1, width // 8 + 1, generator=gen)
    lr = torch.nn.functional.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)
    ramp = torch.linspace(0, 0.3, width).reshape(1, 1, 1, width)  # texture grows left to right: tiles differ
    lr = (lr + ramp * (torch.rand(1, 3, height, width, generator=gen) - 0.5)).clamp(0, 1)
    image = lr.permute(0, 2, 3, 1).contiguous()  # ComfyUI's IMAGE: (B, H, W, C)

    def timed(label, fn):
        start = time.perf_counter()
        out = fn()
        print(f"  [{label}: {time.perf_counter() - start:.1f} s]", flush=True)
        return out

    with torch.inference_mode():
        untiled = timed("untiled", lambda: dan_blocks.upscale(desc.model, lr, optimize=False).sr.clamp(0, 1))
    ref = untiled.permute(0, 2, 3, 1)
    steps = comfy.utils.get_tiled_scale_steps(width, height, 512, 512, 32)
    print(f"LR {width}x{height}: ComfyUI makes {steps} tiles of 512 px (32 overlap)")

    rows = []
    stock = timed("stock node", lambda: ImageUpscaleWithModel.execute(desc, image)[0])
    rows.append(("stock ImageUpscaleWithModel (a kernel estimate per tile)", stock))
    in_img = image.movedim(-1, -3)
    with dan_blocks.spandrel.one_kernel_per_image(desc, in_img):
        tiled = timed("tiled_scale in one_kernel_per_image", lambda: comfy.utils.tiled_scale(
            in_img, lambda a: desc(a), tile_x=512, tile_y=512, overlap=32, upscale_amount=desc.scale))
    rows.append(("comfy.utils.tiled_scale inside one_kernel_per_image", tiled.clamp(0, 1).movedim(-3, -1)))
    with dan_blocks.spandrel.one_kernel_per_image(desc, image.movedim(-1, -3)):
        wrapped = timed("stock node in one_kernel_per_image", lambda: ImageUpscaleWithModel.execute(desc, image)[0])
    rows.append(("stock ImageUpscaleWithModel inside one_kernel_per_image", wrapped))
    node = NODE_CLASS_MAPPINGS["DanBlocksUpscaleOneKernel"]()
    ours = timed("dan-blocks node", lambda: getattr(node, node.FUNCTION)(desc, image)[0])
    rows.append(("dan_blocks.comfyui node (tile 512)", ours))

    commit = args.commit
    if commit is None:
        try:
            commit = subprocess.run(["git", "-C", args.comfyui, "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown"
    print(f"ComfyUI {commit}, torch {torch.__version__}, spandrel {spandrel.__version__}, "
          f"dan-blocks {dan_blocks.__version__}, {time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| path | max abs difference vs untiled | PSNR vs untiled |")
    print("|---|---|---|")
    for label, out in rows:
        diff = float((out - ref).abs().max())
        print(f"| {label} | {diff:.2g} | {_psnr(out, ref):.1f} dB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
