"""The blind-SR family in one table, rendered from the architecture registry (docs/family.md holds its output;
a test keeps the two equal).

A registered blind-SR network declares ``family_info``: ``method``, ``estimates`` (what its estimator gives),
``fusion`` (how the estimate enters the restorer) and ``alternation`` (how estimation and restoration alternate).
The classes written before this table (DANv1, DANv2, MANetRRDB) are described here, under their registered names.
"""

from __future__ import annotations

from collections.abc import Mapping

from .registry import ARCH_REGISTRY

__all__ = ["FAMILY_COLUMNS", "family_rows", "family_table"]

#: the table's columns: (family_info key, heading)
FAMILY_COLUMNS = (("method", "Method"), ("estimates", "Estimates"), ("fusion", "Fusion"),
                  ("alternation", "Alternation"))

#: registered classes that do not carry ``family_info`` themselves
_DESCRIBED_HERE: dict[str, dict[str, str]] = {
    "DANv1": {"method": "DAN v1 (NeurIPS 2020)", "estimates": "code: a 10-d PCA code of one kernel",
              "fusion": "stretch_concat", "alternation": "prior first: Dirac code, restore -> estimate (4 steps)"},
    "DANv2": {"method": "DAN v2 (TPAMI)", "estimates": "kernel: one k x k kernel (softmax)",
              "fusion": "dual_path", "alternation": "prior first: Dirac code, restore -> estimate (4 steps)"},
    "MANetRRDB": {"method": "MANet (ICCV 2021)", "estimates": "per-pixel kernel: one k x k kernel per LR pixel",
                  "fusion": "sft_concat", "alternation": "one step: estimate (LR only) -> restore"},
}


def family_rows() -> list[tuple[str, Mapping[str, str]]]:
    """(registered class name, its family facts) for every registered network that has them, in a fixed order:
    the classes described here first, then the others by name."""
    rows: list[tuple[str, Mapping[str, str]]] = []
    for name in _DESCRIBED_HERE:
        if name in ARCH_REGISTRY:
            rows.append((name, _DESCRIBED_HERE[name]))
    others = []
    for name, obj in ARCH_REGISTRY:
        info = getattr(obj, "family_info", None)
        if name not in _DESCRIBED_HERE and isinstance(info, Mapping) and "family_info" in vars(obj):
            others.append((str(name), info))
    return rows + sorted(others)


def family_table() -> str:
    """The Markdown table of `family_rows` (one row per method, the class name in the first column)."""
    lines = ["| Class | " + " | ".join(h for _, h in FAMILY_COLUMNS) + " |",
             "|---" * (len(FAMILY_COLUMNS) + 1) + "|"]
    for name, info in family_rows():
        cells = [f"`{name}`"] + [str(info.get(key, "")).replace("|", "\\|") for key, _ in FAMILY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
