"""The architecture registry: class-valued arguments recorded by registered name, and the BasicSR name collision
refused with both classes named (BasicSR itself asserts on a duplicate name)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from torch import nn

from dan_blocks.archs import ARCH_REGISTRY, RestorerV1, RestorerV2, arch_options, build_arch, register_arch
from dan_blocks.layers import SFT, DAConv, StretchConcat


def test_class_valued_fusion_is_recorded_by_name_and_rebuilds() -> None:
    model = RestorerV2(nf=8, nb=1, ng=1, fusion=DAConv, fusion_kwargs={"reduction": 4})
    options = arch_options(model)
    assert options is not None and options["fusion"] == "da_conv" and options["fusion_kwargs"] == {"reduction": 4}
    rebuilt = build_arch(options)
    assert type(rebuilt.body[0].body[0].body2) is DAConv
    assert RestorerV1(nf=16, nb=1, fusion="sft").body[0].fusion.__class__ is SFT


def test_unregistered_class_argument_is_named_when_saving() -> None:
    class MyFusion(StretchConcat):
        pass

    model = RestorerV1(nf=16, nb=1, fusion=MyFusion)
    with pytest.raises(ValueError, match=r"MyFusion.*register"):
        arch_options(model)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_a_name_taken_in_basicsr_is_refused_naming_both_classes() -> None:
    proc = _run(
        """
        import dan_blocks.basicsr
        from torch import nn
        from basicsr.utils.registry import ARCH_REGISTRY
        from dan_blocks.archs import ARCH_REGISTRY as OURS, register_arch
        try:
            @register_arch
            class RRDBNet(nn.Module):
                pass
        except ValueError as error:
            print("REFUSED", error)
        assert "RRDBNet" not in OURS                       # registered nowhere rather than half-way
        assert ARCH_REGISTRY.get("RRDBNet").__module__ == "basicsr.archs.rrdbnet_arch"

        @register_arch(replace=True)
        class EDSR(nn.Module):
            pass
        assert ARCH_REGISTRY.get("EDSR") is EDSR and OURS.get("EDSR") is EDSR
        print("REPLACED")
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED" in proc.stdout and "basicsr.archs.rrdbnet_arch.RRDBNet" in proc.stdout
    assert "__main__.RRDBNet" in proc.stdout and "REPLACED" in proc.stdout


def test_registering_before_the_basicsr_import_is_checked_at_the_import() -> None:
    proc = _run(
        """
        from torch import nn
        from dan_blocks.archs import register_arch

        @register_arch
        class SwinIR(nn.Module):
            pass

        try:
            import dan_blocks.basicsr
        except ValueError as error:
            print("REFUSED", error)
        """
    )
    assert "REFUSED" in proc.stdout and "SwinIR" in proc.stdout, proc.stderr[-2000:]


def test_dan_blocks_registry_refuses_a_second_class_under_one_name() -> None:
    class RestorerV1(nn.Module):
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_arch(RestorerV1)
    assert ARCH_REGISTRY.get("RestorerV1").__module__ == "dan_blocks.archs.dan_v1_arch"
