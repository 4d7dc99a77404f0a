"""Issue 22 (hosts): descriptors claim fp16 / bf16 only where measured (docs/hosts.md, "Precision"): DAN v1 and
MANet both, DAN v2 fp16 only, IKC / DCLS / DASR neither until measured."""

from __future__ import annotations

import pytest
import torch

import dan_blocks
from dan_blocks.archs import DASR, DCLS, IKC
from dan_blocks.spandrel import precision_support


def test_measured_claims_only() -> None:
    assert precision_support(dan_blocks.dan_v1(2, nf=16, nb=1, loop=1)) == (True, True)
    assert precision_support(dan_blocks.dan_v2(2, nf=16, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8,
                                               loop=1)) == (True, False)
    for model in (IKC(nf=8, nb=1, scale=2, loop=1), DCLS(nf=16, nb=1, ng=1, scale=2, kernel_size=11, latent=64),
                  DASR(scale=2, nf=16, rep_nf=16, n_groups=1, n_blocks=1, enc_nf=16)):
        assert precision_support(model) == (False, False), type(model).__name__


def test_family_descriptor_declares_no_half(tmp_path) -> None:
    spandrel = pytest.importorskip("spandrel")
    from dan_blocks.spandrel import install

    install()
    torch.manual_seed(0)
    model = DASR(scale=2, nf=16, rep_nf=16, n_groups=1, n_blocks=1, enc_nf=16)
    torch.save(model.state_dict(), tmp_path / "dasr.pth")
    desc = spandrel.ModelLoader().load_from_file(tmp_path / "dasr.pth")
    assert desc.architecture.id == "BlindSRFamily"
    assert (desc.supports_half, desc.supports_bfloat16) == (False, False)
