"""dan_blocks.comfyui: the ComfyUI node "Upscale Image (DAN, one kernel per image)", tested with a fake ``comfy``
package (CI has no ComfyUI; benchmarks/comfyui_tiling.py runs it against ComfyUI's own code)."""

from __future__ import annotations

import subprocess
import sys
import types
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from _helpers import randomise

import dan_blocks
import dan_blocks.comfyui as node_module
from dan_blocks.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, UpscaleImageOneKernel


class FakeOOMError(Exception):
    pass


class FakeBar:
    bars: ClassVar[list[FakeBar]] = []

    def __init__(self, total: int) -> None:
        self.total, self.current = total, 0
        FakeBar.bars.append(self)

    def update(self, value: int) -> None:
        self.current += value


@pytest.fixture
def comfy(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A fake ``comfy`` package in sys.modules: model_management (CPU) and utils (progress bar, tiled_scale that
    records its arguments and runs the function on each whole batch item)."""
    calls: list[dict] = []
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.module_size = lambda module: 1
    mm.free_memory = lambda memory, device: calls.append({"free_memory": memory})
    mm.OOM_EXCEPTION = FakeOOMError
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = FakeBar
    utils.get_tiled_scale_steps = lambda width, height, tile_x, tile_y, overlap: 1

    def tiled_scale(samples, function, **kwargs):
        calls.append(kwargs)
        return torch.cat([function(samples[b : b + 1]) for b in range(samples.shape[0])])

    utils.tiled_scale = tiled_scale
    package = types.ModuleType("comfy")
    package.model_management, package.utils = mm, utils
    for name, module in (("comfy", package), ("comfy.model_management", mm), ("comfy.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    FakeBar.bars = []
    return types.SimpleNamespace(calls=calls, mm=mm, utils=utils)


def _model() -> dan_blocks.DAN:
    torch.manual_seed(0)
    net = dan_blocks.dan_v2(2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=8, nb=1, ng=1, est_nf=8,
                            est_nb=1, est_tail_nf=8, loop=2)
    return randomise(net, 4).eval()


def _image(batch: int = 2, height: int = 36, width: int = 300) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(batch, height, width, 3, generator=gen)  # ComfyUI's IMAGE: (B, H, W, C)


def test_node_follows_comfyui_conventions_and_imports_without_comfyui() -> None:
    assert {"DanBlocksUpscaleOneKernel": UpscaleImageOneKernel} == NODE_CLASS_MAPPINGS
    assert NODE_DISPLAY_NAME_MAPPINGS == {"DanBlocksUpscaleOneKernel": "Upscale Image (DAN, one kernel per image)"}
    inputs = UpscaleImageOneKernel.INPUT_TYPES()
    assert inputs["required"] == {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)}
    assert inputs["optional"]["tile"][0] == "INT"
    assert UpscaleImageOneKernel.RETURN_TYPES == ("IMAGE",)
    assert callable(getattr(UpscaleImageOneKernel(), UpscaleImageOneKernel.FUNCTION))
    assert UpscaleImageOneKernel.CATEGORY == "image/upscaling"
    proc = subprocess.run([sys.executable, "-c", "import sys, dan_blocks.comfyui; print('comfy' in sys.modules)"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("as_descriptor", [False, True])
def test_dan_models_give_the_untiled_result(comfy: types.SimpleNamespace, as_descriptor: bool, tmp_path) -> None:
    model = _model()
    upscale_model = model
    if as_descriptor:
        spandrel = pytest.importorskip("spandrel")
        from dan_blocks.spandrel import install

        install()
        torch.save(model.state_dict(), tmp_path / "net.pth")
        upscale_model = spandrel.ModelLoader().load_from_file(tmp_path / "net.pth")
    image = _image()  # 300 px wide: larger than the 128-px tile
    (out,) = UpscaleImageOneKernel().upscale(upscale_model, image, tile=128)
    with torch.no_grad():
        untiled = dan_blocks.upscale(model, image.movedim(-1, -3), optimize=False).sr.clamp(0, 1)
        per_tile = torch.cat([model.super_resolve(image[:, :, x : x + 128].movedim(-1, -3)).clamp(0, 1)
                              for x in (0, 128, 256)], dim=-1)
    assert out.shape == (2, 72, 600, 3)
    assert (out - untiled.movedim(-3, -1)).abs().max() <= 1e-5
    assert (per_tile - untiled).abs().max() > 1e-3  # a kernel estimate per tile would differ
    assert not comfy.calls[1:]  # no comfy.utils.tiled_scale for a dan-blocks model
    assert "free_memory" in comfy.calls[0]
    assert FakeBar.bars and FakeBar.bars[-1].current == FakeBar.bars[-1].total == 200


def test_out_of_memory_halves_the_tile(comfy: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    tiles: list[int] = []
    real = node_module.upscale

    def flaky(model, lr, tile, **kwargs):
        tiles.append(tile)
        if tile > 128:
            raise FakeOOMError("out of memory")
        return real(model, lr, tile, **kwargs)

    monkeypatch.setattr(node_module, "upscale", flaky)
    (out,) = UpscaleImageOneKernel().upscale(_model(), _image(1), tile=512)
    assert tiles == [512, 256, 128]
    assert out.shape == (1, 72, 600, 3)
    monkeypatch.setattr(node_module, "upscale", lambda *a, **k: (_ for _ in ()).throw(FakeOOMError("out of memory")))
    with pytest.raises(FakeOOMError):
        UpscaleImageOneKernel().upscale(_model(), _image(1), tile=512)


class Nearest(torch.nn.Module):
    """Stands for a spandrel descriptor of another architecture: ``model``, ``scale``, a call, ``to``."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Conv2d(3, 3, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.interpolate(image, scale_factor=2, mode="nearest") * 1.5


def test_other_models_go_the_stock_nodes_way(comfy: types.SimpleNamespace) -> None:
    image = _image()
    (out,) = UpscaleImageOneKernel().upscale(Nearest(), image)
    expected = (F.interpolate(image.movedim(-1, -3), scale_factor=2, mode="nearest") * 1.5).clamp(0, 1)
    torch.testing.assert_close(out, expected.movedim(-3, -1), rtol=0, atol=0)
    (kwargs,) = comfy.calls[1:]
    assert kwargs["tile_x"] == kwargs["tile_y"] == 512 and kwargs["overlap"] == 32
    assert kwargs["upscale_amount"] == 2 and isinstance(kwargs["pbar"], FakeBar)


def test_without_comfyui(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dan-blocks model runs on the CPU without ComfyUI; another model needs comfy.utils, and says so."""
    for name in ("comfy", "comfy.model_management", "comfy.utils"):
        monkeypatch.setitem(sys.modules, name, None)  # import comfy.* raises ImportError
    model = _model()
    image = _image(1)
    (out,) = UpscaleImageOneKernel().upscale(model, image, tile=128)
    with torch.no_grad():
        untiled = model.super_resolve(image.movedim(-1, -3)).clamp(0, 1)
    assert (out - untiled.movedim(-3, -1)).abs().max() <= 1e-5
    with pytest.raises(RuntimeError, match="need ComfyUI"):
        UpscaleImageOneKernel().upscale(Nearest(), image)
