"""The fusion ablation recipes (basicsr_options/fusion/): one per fusion, each the quickstart's training with only
the restorer's fusion (and its depth) changed, at about equal parameter counts, and each trains.

The expectations are written out independently of the files: the seven fusions of the issue, the quickstart's
option dict (`quickstart_train_options`) as the reference every recipe must equal outside the keys an ablation
changes, and the block structure of `RestorerV2` (``ng`` groups of ``nb`` DPCBs, one fusion per DPCB).
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import dan_blocks  # noqa: F401  (registers everything)
from dan_blocks.archs import build_arch
from dan_blocks.basicsr import DANModel
from dan_blocks.basicsr.options import check_option_file
from dan_blocks.cli.quickstart import quickstart_train_options
from dan_blocks.layers import CRB, DPCB, get_fusion, list_fusions
from dan_blocks.utils.options import read_yaml_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "basicsr_options" / "fusion"
#: the fusions the issue asks for (the registry's built-ins)
FUSIONS = ("stretch_concat", "dual_path", "sft", "sft_concat", "da_conv", "film", "code_attention")
#: the largest restorer may have at most this many times the parameters of the smallest (docs/fusion.md)
PARAM_TOLERANCE = 1.10
#: full-size option files: (file, the release's file it changes, fusion, restorer block type)
FULL_SIZE = (
    ("train_DANv2_sft_setting1_x4.yml", "train_DANv2_setting1_x4.yml", "sft", DPCB),
    ("train_DANv1_da_conv_setting1_x4.yml", "train_DANv1_setting1_x4.yml", "da_conv", CRB),
)
#: the keys an ablation recipe may change relative to the quickstart's training
CHANGED_NETWORK_KEYS = ("nb", "fusion", "fusion_kwargs")


def _path(name: str) -> Path:
    return RECIPES / f"fusion_{name}_x4.yml"


def _recipe(name: str) -> dict[str, Any]:
    return dict(read_yaml_file(str(_path(name)), "fusion recipe"))


def test_one_recipe_per_fusion_and_every_recipe_names_a_registered_fusion() -> None:
    files = sorted(p.name for p in RECIPES.glob("fusion_*.yml"))
    assert files == sorted(_path(name).name for name in FUSIONS)
    assert set(FUSIONS) <= set(list_fusions())
    for name in FUSIONS:
        assert _recipe(name)["network_g"]["fusion"] == name


@pytest.mark.parametrize("name", FUSIONS)
def test_recipe_is_the_quickstart_with_only_the_fusion_changed(name: str) -> None:
    recipe = _recipe(name)
    reference = quickstart_train_options(recipe["train"]["total_iter"], seed=0)
    assert recipe["name"] == f"fusion_{name}_x4"
    network = {k: v for k, v in recipe["network_g"].items() if k not in CHANGED_NETWORK_KEYS}
    expected = {k: v for k, v in reference["network_g"].items() if k not in CHANGED_NETWORK_KEYS}
    assert network == expected  # same estimator, PCA, width, groups, scale
    for key in reference:
        if key not in ("name", "network_g", "logger"):
            assert recipe[key] == reference[key], key  # same data, degradation, schedule, seed
    assert {k: v for k, v in recipe["logger"].items() if k != "print_freq"} == {
        k: v for k, v in reference["logger"].items() if k != "print_freq"}
    assert 1 <= recipe["train"]["total_iter"] <= 2000  # CPU-sized


@pytest.mark.parametrize("name", FUSIONS)
def test_recipe_passes_the_option_check_and_builds_one_fusion_per_block(name: str) -> None:
    recipe = _recipe(name)
    check_option_file(copy.deepcopy(recipe), train=True)
    net: Any = build_arch(copy.deepcopy(recipe["network_g"]), "network_g")
    opt = recipe["network_g"]
    cls = get_fusion(name)
    fusions: list[Any] = [m for m in net.restorer.modules() if type(m) is cls]
    assert len(fusions) == opt["nb"] * opt["ng"]
    assert all(f.nf == opt["nf"] for f in fusions)
    kwargs = opt.get("fusion_kwargs") or {}
    if name == "code_attention":  # query/key width
        assert fusions[0].query.out_channels == kwargs["dim"] == 16
    if name == "sft_concat":  # the hidden width of the scale and shift branches
        assert fusions[0].scale[0].out_channels == fusions[0].shift[0].out_channels == kwargs["hidden"] == 12
    estimator_fusions = {type(m).__name__ for m in net.estimator.modules() if hasattr(m, "fusion_name")}
    assert estimator_fusions == {"DualPath"}  # the quickstart's estimator, whatever the restorer's fusion


def _counts() -> dict[str, tuple[int, int]]:
    counts = {}
    for name in FUSIONS:
        net: Any = build_arch(copy.deepcopy(_recipe(name)["network_g"]), "network_g")
        counts[name] = (sum(p.numel() for p in net.restorer.parameters()),
                        sum(p.numel() for p in net.estimator.parameters()))
    return counts


def test_restorers_have_about_equal_parameter_counts_and_the_estimator_is_shared() -> None:
    counts = _counts()
    restorers = [r for r, _ in counts.values()]
    assert max(restorers) <= PARAM_TOLERANCE * min(restorers), counts
    assert len({e for _, e in counts.values()}) == 1, counts  # one estimator for all
    # the quickstart's network is the dual_path family at nb 2: the recipes are deeper, not a different shape
    quick: Any = build_arch(quickstart_train_options(1)["network_g"], "network_g")
    assert sum(p.numel() for p in quick.estimator.parameters()) == counts["dual_path"][1]
    assert sum(p.numel() for p in quick.restorer.parameters()) < min(restorers)


@pytest.mark.parametrize("name", FUSIONS)
def test_one_training_step_trains_the_fusion(name: str, tmp_path: Path) -> None:
    opt = _recipe(name)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt["path"].update({k: str(tmp_path) for k in ("models", "training_states", "log", "visualization")})
    model = DANModel(opt)
    net = model.get_bare_model(model.net_g)
    cls = get_fusion(name)
    blocks = [m for m in net.restorer.modules() if isinstance(m, DPCB)]
    assert len(blocks) == opt["network_g"]["nb"] and all(type(b.body2) is cls for b in blocks)
    # the fusion and what reads its output (stretch_concat has no parameters: its 1x1 projection back to nf)
    fused: list[Any] = [b.body2 if name != "stretch_concat" else b.proj for b in blocks]
    fusion_params = {f"{i}.{n}": p.detach().clone() for i, m in enumerate(fused) for n, p in m.named_parameters()}
    assert fusion_params
    model.feed_data({"gt": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))})
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.log_dict["l_pix"]))
    after = {f"{i}.{n}": p.detach() for i, m in enumerate(fused) for n, p in m.named_parameters()}
    moved = [k for k in fusion_params if not torch.equal(fusion_params[k], after[k])]
    assert moved, f"no parameter of the {name} fusions changed in a training step"


def test_the_runner_lists_the_recipes_and_writes_its_table() -> None:
    spec = importlib.util.spec_from_file_location("fusion_ablation", ROOT / "benchmarks" / "fusion_ablation.py")
    assert spec is not None and spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    assert sorted(runner.recipe_files()) == sorted(FUSIONS)
    with pytest.raises(SystemExit, match="no recipe for nope"):
        runner.recipe_files(["nope"])
    counts = runner.parameter_counts(_recipe("sft")["network_g"])
    assert counts["total"] == counts["restorer"] + counts["estimator"]  # DANv2: restorer + estimator, PCA buffers
    row = {"fusion": "sft", "params": counts, "psnr_y": 25.125, "kernel_error": 0.01234,
           "ms_per_forward": {"plain": 10.04, "optimized": 8.0}, "runs": [{"seed": 0, "iterations": 300},
                                                                         {"seed": 1, "iterations": 300}]}
    table = runner.markdown_table([row]).splitlines()
    assert table[2] == (f"| `sft` | {counts['restorer']:,} | {counts['total']:,} | 25.12 | 0.0123 | 10.0 | 8.0 "
                        "| 0, 1 | 300 |")


def test_every_option_file_here_is_a_recipe_or_a_full_size_file() -> None:
    names = {p.name for p in RECIPES.glob("*.yml")}
    assert names == {_path(name).name for name in FUSIONS} | {full for full, *_ in FULL_SIZE}


@pytest.mark.parametrize(("full", "release", "fusion", "block"), FULL_SIZE, ids=[f for f, *_ in FULL_SIZE])
def test_full_size_file_is_the_release_recipe_with_another_fusion(full: str, release: str, fusion: str,
                                                                   block: type) -> None:
    opt = dict(read_yaml_file(str(RECIPES / full), "full-size fusion file"))
    reference = dict(read_yaml_file(str(ROOT / "basicsr_options" / "train" / release), "release training file"))
    assert opt["name"] == reference["name"].replace("_setting", f"_{fusion}_setting")
    for key in reference:
        if key not in ("name", "network_g"):
            assert opt[key] == reference[key], key  # the release's data, schedule, losses, validation
    changed = {k for k in opt["network_g"] if opt["network_g"].get(k) != reference["network_g"].get(k)}
    assert changed <= {"fusion", "fusion_kwargs", "residual", "nb"} and opt["network_g"]["fusion"] == fusion
    net: Any = build_arch(copy.deepcopy(opt["network_g"]), "network_g")
    ref: Any = build_arch(copy.deepcopy(reference["network_g"]), "network_g")
    blocks = [m for m in net.restorer.modules() if type(m) is block]
    assert blocks and all(type(getattr(b, "body2", getattr(b, "fusion", None))) is get_fusion(fusion) for b in blocks)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(net.estimator) == count(ref.estimator)  # the release's estimator
    assert abs(count(net.restorer) / count(ref.restorer) - 1) < 0.01  # about the release's size
    with torch.inference_mode():
        out = net.eval()(torch.rand(1, 3, 6, 6))
    assert out.sr.shape == (1, 3, 24, 24) and torch.isfinite(out.sr).all()


DOC = ROOT / "docs" / "fusion.md"


def test_the_docs_recipe_table_states_the_files_and_their_sizes() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|([^|]*)\| ([\d,]+) \|$", DOC.read_text(), re.MULTILINE)
    assert sorted(name for name, *_ in rows) == sorted(FUSIONS)
    counts = _counts()
    for name, nb, kwargs, params in rows:
        network = _recipe(name)["network_g"]
        assert int(nb) == network["nb"]
        stated = dict(re.findall(r"`(\w+): (\d+)`", kwargs))
        assert {k: int(v) for k, v in stated.items()} == (network.get("fusion_kwargs") or {})
        assert int(params.replace(",", "")) == counts[name][0]


def test_the_docs_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
