"""docs/family.md's table is what the registry renders (`family_table`), and every family network is registered
and described."""

from __future__ import annotations

import re
from pathlib import Path

from dan_blocks.archs import ARCH_REGISTRY, family_rows, family_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "family.md"


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
