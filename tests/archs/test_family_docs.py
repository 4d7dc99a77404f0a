"""docs/family.md's table is what the registry renders (`family_table`), and every family network is registered
and described."""

from __future__ import annotations

import re
from pathlib import Path

from dan_blocks.archs import ARCH_REGISTRY, family_rows, family_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "family.md"


def test_family_page_matches_the_registry():
    text = DOC.read_text()
    match = re.search(r"<!-- family-table:start -->\n(.*?)<!-- family-table:end -->", text, re.S)
    assert match, "docs/family.md lost its family-table markers"
    assert match.group(1) == family_table(), "docs/family.md is stale: paste dan_blocks.archs.family_table()"


def test_every_family_method_is_registered_and_described():
    names = [name for name, _ in family_rows()]
    for name in ("DANv1", "DANv2", "MANetRRDB", "IKC", "DCLS", "DASR"):
        assert name in ARCH_REGISTRY and name in names
    estimates = {name: info["estimates"].split(":")[0] for name, info in family_rows()}
    assert estimates == {"DANv1": "code", "DANv2": "kernel", "MANetRRDB": "per-pixel kernel", "IKC": "code",
                         "DCLS": "kernel", "DASR": "representation"}
    table = family_table()
    assert table.count("\n") == len(names) + 2


def _tiny_models():
    import torch

    from dan_blocks.archs import DASR, DCLS, IKC

    torch.manual_seed(0)
    return {
        "IKC": IKC(nb=1, scale=2, loop=2, sft_branch=False),
        "DCLS": DCLS(nf=16, nb=1, ng=1, scale=2, kernel_size=11, latent=16),
        "DASR": DASR(scale=2, nf=8, rep_nf=8, n_groups=1, n_blocks=1, reduction=4, enc_nf=4),
    }


def test_family_optimize_save_load_and_sr_cli(tmp_path):
    """optimize() keeps the numbers, save_model/load_model rebuild each network exactly, and ``dan-blocks sr``
    runs it on an image (its SR equals the network's forward on that image)."""
    import cv2
    import numpy as np
    import torch
    from skimage import data

    from dan_blocks import load_model, optimize
    from dan_blocks.cli.main import main
    from dan_blocks.formats import save_model

    rgb = np.ascontiguousarray(data.astronaut()[100:117, 200:215])  # 17 x 15
    folder = tmp_path / "in"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "a.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    lr = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    for name, model in _tiny_models().items():
        model.eval()
        with torch.no_grad():
            want = model(lr).sr
        path = tmp_path / f"{name}.pth"
        save_model(model, path)
        loaded = load_model(str(path))
        assert type(loaded) is type(model)
        with torch.no_grad():
            assert torch.equal(loaded(lr).sr, want), name
            fast = optimize(loaded)
            assert torch.allclose(fast(lr).sr, want, rtol=1e-5, atol=1e-5), name
        out = tmp_path / f"out_{name}"
        assert main(["sr", "--no-progress", "-m", str(path), str(folder), "-o", str(out), "--device", "cpu"]) == 0
        written = sorted(p.name for p in out.iterdir())
        image = next(p for p in out.iterdir() if p.suffix == ".png" and "kernel" not in p.name)
        got = cv2.imread(str(image))[:, :, ::-1].astype(np.float32)
        expect = (want[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
        assert got.shape == (34, 30, 3), written
        assert np.abs(got - expect).max() <= 1, name
        assert any("kernel" in n for n in written) == (name != "DASR"), written  # DASR estimates no kernel


def test_spandrel_loads_the_family(tmp_path):
    """DCLS and DASR (release layouts and dan-blocks model files) and an assembled IKC model file load in spandrel;
    the descriptor's SR is the network's (clamped to [0, 1] by spandrel)."""
    import pytest
    import torch

    spandrel = pytest.importorskip("spandrel")
    from dan_blocks.formats import save_model, to_dasr_state_dict, to_dcls_state_dict
    from dan_blocks.spandrel import install

    install()
    models = _tiny_models()
    files = {name: tmp_path / f"{name}.pth" for name in models}
    for name, model in models.items():
        save_model(model.eval(), files[name])
    torch.save(to_dcls_state_dict(models["DCLS"]), tmp_path / "dcls_release.pth")
    torch.save(to_dasr_state_dict(models["DASR"]), tmp_path / "dasr_release.pth")
    lr = torch.rand(1, 3, 12, 11, generator=torch.Generator().manual_seed(2))
    cases = [(files["IKC"], "IKC"), (files["DCLS"], "DCLS"), (files["DASR"], "DASR"),
             (tmp_path / "dcls_release.pth", "DCLS"), (tmp_path / "dasr_release.pth", "DASR")]
    for path, name in cases:
        descriptor = spandrel.ModelLoader().load_from_file(str(path))
        assert descriptor.scale == 2, path
        with torch.no_grad():
            want = models[name](lr).sr.clamp(0, 1)
            got = descriptor(lr)
        assert torch.allclose(got, want, atol=1e-5), path


#: parameter counts of the released configurations (reference facts; DASR: trainable + 24 frozen MeanShift numbers)
FAMILY_RELEASE_PARAMS = {
    "test_IKC_x4.yml": 4_234_691 + 3_731_456 + 430_730 + 649_930,
    "test_DCLS_setting1_x2.yml": 13_478_475, "test_DCLS_setting1_x3.yml": 13_663_115,
    "test_DCLS_setting1_x4.yml": 13_626_187, "test_DCLS_setting2_x2.yml": 8_905_931,
    "test_DCLS_setting2_x4.yml": 19_054_027,
    "test_DASR_x2_iso.yml": 5_821_571 + 24, "test_DASR_x3_iso.yml": 6_006_211 + 24,
    "test_DASR_x4_iso.yml": 5_969_283 + 24, "test_DASR_x4_aniso.yml": 5_969_283 + 24,
}


def test_family_option_files_build_the_released_configurations():
    import torch
    import yaml

    from dan_blocks.archs import build_arch

    root = DOC.parents[1] / "basicsr_options"
    files = sorted(p for folder in ("ikc", "dcls", "dasr") for p in (root / folder).glob("test_*.yml"))
    assert sorted(p.name for p in files) == sorted(FAMILY_RELEASE_PARAMS)
    for path in files:
        opt = yaml.safe_load(path.read_text())
        assert opt["model_type"] == "DANModel" and opt["scale"] == opt["network_g"]["scale"], path
        with torch.device("meta"):
            net = build_arch(opt["network_g"])
        assert sum(p.numel() for p in net.parameters()) == FAMILY_RELEASE_PARAMS[path.name], path


def test_dasr_training_option_files_follow_the_release_protocol():
    """Stage 1: contrastive only, lr 1e-3 x 0.1 at epoch 60 of 100; stage 2: joint, lr 1e-4 x 0.5 every 125 epochs,
    from stage 1's last weights (an epoch ~ 970 iterations); the release's network; Adam (0.9, 0.999)."""
    import yaml

    root = DOC.parents[1] / "basicsr_options" / "dasr"
    epoch = 970
    for scale in (2, 3, 4):
        one = yaml.safe_load((root / f"train_DASR_x{scale}_iso_stage1.yml").read_text())
        two = yaml.safe_load((root / f"train_DASR_x{scale}_iso_stage2.yml").read_text())
        for opt in (one, two):
            assert opt["model_type"] == "DASRModel" and opt["network_g"] == {"type": "DASR", "scale": scale}
            assert opt["train"]["optim_g"]["betas"] == [0.9, 0.999]
            assert opt["datasets"]["train"]["batch_size_per_gpu"] == 32
            assert opt["train"]["contrastive"]["queue_size"] == 32 * 256
        assert one["train"]["contrastive"]["stage"] == "contrastive" and two["train"]["contrastive"]["stage"] == "joint"
        assert (one["train"]["optim_g"]["lr"], one["train"]["total_iter"]) == (1e-3, 100 * epoch)
        assert (one["train"]["scheduler"]["milestones"], one["train"]["scheduler"]["gamma"]) == ([60 * epoch], 0.1)
        assert (two["train"]["optim_g"]["lr"], two["train"]["total_iter"]) == (1e-4, 500 * epoch)
        assert two["train"]["scheduler"]["milestones"] == [125 * epoch, 250 * epoch, 375 * epoch]
        assert two["path"]["pretrain_network_g"].endswith(f"DASR_x{scale}_iso_stage1/models/net_g_{100 * epoch}.pth")
