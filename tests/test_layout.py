"""The package's floors: a light core import, BasicSR behind one import, no import cycles, imports that only
point down, and the paper's blocks free of speed branches."""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dan_blocks"

#: floor of each top-level part; an import may only point to the same or a lower floor
FLOORS: dict[str, float] = {
    "utils": 0,
    "settings": 0,
    "_version": 0,
    "ops": 0.5,  # functional ops behind the fast forms: torch only, below the layers that use them
    "layers": 1,
    "archs": 2,
    "formats": 2.5,
    "fast": 3,
    "degradations": 4.0,
    "data": 4.1,
    "metrics": 4.1,
    "inference": 4.2,
    "basicsr": 5,
    "timm": 5,
    "spandrel": 5,
    "comfyui": 5,
    "cli": 6,
    "__main__": 7,
}


def _run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_core_import_loads_nothing_but_torch_einops_numpy() -> None:
    proc = _run(
        """
        import sys, time
        import torch, einops, numpy
        base = {m.split(".")[0] for m in sys.modules}
        start = time.perf_counter()
        import dan_blocks
        seconds = time.perf_counter() - start
        new = sorted({m.split(".")[0] for m in sys.modules} - base - set(sys.stdlib_module_names))
        print(repr(new), seconds)
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    new, seconds = proc.stdout.strip().rsplit(" ", 1)
    assert eval(new) == ["dan_blocks"], f"import dan_blocks also loaded {new}"
    assert float(seconds) < 1.0, f"import dan_blocks took {seconds} s on top of torch"


def test_core_import_has_no_side_effects_on_sys_modules_or_numpy() -> None:
    proc = _run(
        """
        import sys
        import numpy as np
        np.seterr(all="raise")
        before = np.geterr()
        import dan_blocks, dan_blocks.layers, dan_blocks.archs, dan_blocks.fast, dan_blocks.inference
        import dan_blocks.degradations
        assert np.geterr() == before
        print([m for m in ("basicsr", "torchvision", "timm", "cv2", "torchvision.transforms.functional_tensor")
               if m in sys.modules])
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("flag", ["error::DeprecationWarning", "error"])
def test_core_import_with_warnings_as_errors(flag: str) -> None:
    proc = _run("import dan_blocks, dan_blocks.fast, dan_blocks.inference, dan_blocks.data", "-W", flag)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_basicsr_subpackage_registers_everything() -> None:
    proc = _run(
        """
        import dan_blocks.basicsr
        from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
        from dan_blocks.archs import ARCH_REGISTRY as OURS, register_arch
        from torch import nn

        missing = [name for name in OURS.keys() if name not in ARCH_REGISTRY]
        assert not missing, missing
        assert "DANModel" in MODEL_REGISTRY
        assert "BlindSRHRDataset" in DATASET_REGISTRY and "BlindSRPairedDataset" in DATASET_REGISTRY

        @register_arch
        class LaterEstimator(nn.Module):
            output_kind = "kernel"

        assert ARCH_REGISTRY.get("LaterEstimator") is LaterEstimator   # later registrations are mirrored
        import importlib
        importlib.reload(dan_blocks.basicsr.registration)            # a second import does not assert
        print(sorted(OURS.keys()))
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("DAN", "DANv1", "DANv2", "EstimatorV1", "EstimatorV2", "RestorerV1", "RestorerV2", "MANetEstimator"):
        assert f"'{name}'" in proc.stdout


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """dan_blocks modules imported anywhere in the file (function-local imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("dan_blocks") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    # Tarjan's strongly connected components: a cycle is a component of more than one module
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_scan_sees_function_local_and_relative_imports(tmp_path: pathlib.Path) -> None:
    # the cycle scan is only worth something if it resolves what the package writes
    graph = _graph()
    assert "dan_blocks.formats.pca_files" in graph["dan_blocks.archs.builders"]  # module-level relative
    assert "dan_blocks.data.testsets" in graph["dan_blocks.cli.make_testset"]  # function-local absolute


#: modules whose floor is not their package's: the PCA file reader lives with the file formats but sits below the
#: architectures, because the presets are built from the shipped PCA matrices (it imports only the layers)
MODULE_FLOORS: dict[str, float] = {"dan_blocks.formats.pca_files": 1.5}


def _floor(module: str) -> float:
    if module in MODULE_FLOORS:
        return MODULE_FLOORS[module]
    parts = module.split(".")
    return -1 if len(parts) == 1 else FLOORS[parts[1]]


def test_imports_point_down_the_floors() -> None:
    upward = [
        f"{name} ({_floor(name)}) -> {target} ({_floor(target)})"
        for name, targets in _graph().items()
        if name != "dan_blocks"
        for target in targets
        if target != "dan_blocks" and _floor(target) > _floor(name)
    ]
    assert not upward, "imports pointing up a floor:\n" + "\n".join(upward)


def test_every_part_has_a_floor() -> None:
    parts = {name.split(".")[1] for name in _modules() if "." in name}
    assert parts <= set(FLOORS), parts - set(FLOORS)


SPEED_WORDS = (
    "fast_path", "mkldnn", "is_capturing", "is_grad_enabled", "memo", "channels_last", "torch.jit", "is_inference",
    "_convolution_pointwise", "addcmul", "sync_layout", "autocast",
)


#: what a module that owns a fast form may not spell out either: the low-level work lives in dan_blocks.ops
LOW_LEVEL_WORDS = ("mkldnn", "_convolution_pointwise", "channels_last", "torch.jit", "autocast", "addcmul",
                   "memo", "fast_path", "sync_layout", "F.linear", "einsum")


def _code_of(cls: type) -> str:
    source = inspect.getsource(cls)
    code = "\n".join(line.split("#")[0] for line in source.splitlines())
    return code.split('"""', 2)[-1]  # past the class docstring


def test_paper_blocks_have_no_speed_branches() -> None:
    from dan_blocks.archs import DAN, EstimatorV1, EstimatorV2, MANetEstimator, RestorerV1, RestorerV2, Upsampler
    from dan_blocks.layers import (
        CRB,
        DPCB,
        DPCG,
        ChannelAttention,
        DualPath,
        MAConv,
        MAConvBlock,
        StretchConcat,
        TwoConv,
    )

    for cls in (CRB, DPCB, DPCG, MAConv, MAConvBlock, RestorerV1, RestorerV2, EstimatorV1, EstimatorV2,
                MANetEstimator, DAN):
        body = _code_of(cls)
        # autocast: DAN keeps the kernel and its code in fp32 under mixed precision (numerics, not speed)
        found = [word for word in (*SPEED_WORDS, "fast") if word in body and word != "autocast"]
        assert not found, f"{cls.__name__} contains {found}"
        assert "fast_path" not in vars(cls) and "fast" not in vars(cls)
        forward = inspect.signature(cls.forward).parameters
        assert not {"memo", "basic", "first_basic"} & set(forward), f"{cls.__name__}.forward takes {list(forward)}"
    # the modules that own a fast form read their flag, and call dan_blocks.ops for the work
    for cls in (TwoConv, ChannelAttention, StretchConcat, DualPath, Upsampler):
        body = _code_of(cls)
        found = [word for word in LOW_LEVEL_WORDS if word in body]
        assert not found, f"{cls.__name__} contains {found}"
        assert "fast_path" not in vars(cls)
        forward = inspect.signature(cls.forward).parameters
        assert not {"memo", "basic", "first_basic"} & set(forward), f"{cls.__name__}.forward takes {list(forward)}"


def test_tests_mirror_the_sub_packages() -> None:
    """Every sub-package of dan_blocks has its folder of tests (tests/layers for dan_blocks/layers, ...)."""
    tests = ROOT / "tests"
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in packages if not list((tests / name).glob("test_*.py"))]
    assert not missing, f"sub-packages without tests/<name>/test_*.py: {missing}"
    folders = [p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    strays = sorted(set(folders) - set(packages) - {"metrics"})  # metrics: the module dan_blocks/metrics.py
    assert not strays, f"test folders that mirror no sub-package: {strays}"
