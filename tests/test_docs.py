"""The docs site builds with warnings as errors (mkdocs --strict) and shows no raw reST; the README stays in step."""

from __future__ import annotations

import html
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: reST that Markdown leaves as it is: roles (``:class:`X```, rendered ``:class:<code>X</code>``) and the maths
#: directive. Docstrings are Markdown (``$...$``, ``$$...$$``, plain `code` cross references).
RAW_REST = re.compile(r":(?:math|class|func|meth|mod|attr):|\.\.\s+math::")
_NOT_SHOWN = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def raw_rest_snippets(page: str) -> list[str]:
    """Snippets of ``page`` (HTML) around raw reST; scripts, styles and comments (not shown) are left out.

    The page's text without tags is searched, so ``:class:<code>X</code>`` and a role split by highlighting
    spans are found as ``:class:X``; the markup itself only when the text is clean (a role in an attribute).
    """
    markup = _NOT_SHOWN.sub(" ", page)
    text = html.unescape(_TAG.sub("", markup))
    for source in (text, markup):
        snippets = [
            " ".join(source[max(0, m.start() - 60) : m.end() + 60].split()) for m in RAW_REST.finditer(source)
        ]
        if snippets:
            return snippets
    return []


_RESOURCE = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)|<link\b[^>]*\bhref\s*=\s*[\"']([^\"']+)[\"'][^>]*>", re.I
)


def external_resources(page: str) -> list[str]:
    """The scripts and stylesheets/fonts (``<link>`` other than plain links between pages) that ``page`` (HTML)
    loads from another server: an absolute URL (``https://...``) or a protocol-relative one (``//cdn...``)."""
    found = []
    for match in _RESOURCE.finditer(page):
        ref = match.group(1) or match.group(2)
        tag = match.group(0).lower()
        if match.group(2) and not re.search(r"rel\s*=\s*[\"'](?:stylesheet|preload|preconnect|modulepreload)", tag):
            continue  # <link rel="canonical"/"alternate"...>: a reference, nothing loaded
        if re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", ref, re.I):
            found.append(ref)
    return found


def test_external_resources_are_found() -> None:
    page = (
        '<script src="https://unpkg.com/mathjax@3/es5/tex-mml-chtml.js"></script>'
        "<script src='//cdn.example.org/x.js' defer></script>"
        '<link href="https://fonts.googleapis.com/css?family=Roboto" rel="stylesheet">'
        '<link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>'
        '<script src="../javascripts/mathjax/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="../assets/stylesheets/main.css">'
        '<link rel="canonical" href="https://example.org/page/">'
    )
    assert external_resources(page) == [
        "https://unpkg.com/mathjax@3/es5/tex-mml-chtml.js", "//cdn.example.org/x.js",
        "https://fonts.googleapis.com/css?family=Roboto", "https://fonts.gstatic.com",
    ]


def test_mkdocs_loads_only_the_sites_own_scripts() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    block = config.split("\nextra_javascript:\n", 1)[1]
    lines = block.splitlines()
    lines = lines[: next((i for i, line in enumerate(lines) if line and not line.startswith(" ")), len(lines))]
    scripts = [line.strip()[2:] for line in lines if line.strip().startswith("- ")]
    assert scripts == ["javascripts/mathjax.js", "javascripts/mathjax/tex-chtml.js"]
    assert all((ROOT / "docs" / script).is_file() for script in scripts)


def test_docs_build_strict(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is in the [docs] extra, which CI installs")
    pytest.importorskip("mkdocstrings")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "api" / "archs" / "index.html").exists()
    # maths: arithmatex's generic output, typeset by MathJax (configured by docs/javascripts/mathjax.js), which
    # ships with the site together with the fonts it loads from beside itself
    assert (site / "javascripts" / "mathjax.js").exists()
    assert (site / "javascripts" / "mathjax" / "tex-chtml.js").stat().st_size > 500_000
    assert len(list((site / "javascripts" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))) > 20
    layers = (site / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in layers and "javascripts/mathjax.js" in layers
    assert "javascripts/mathjax/tex-chtml.js" in layers
    # nothing loaded from another server: every script and stylesheet of every page is the site's own
    external = sorted({
        f"{page.relative_to(site).as_posix()}: {ref}"
        for page in site.rglob("*.html")
        for ref in external_resources(page.read_text(encoding="utf-8"))
    })
    assert external == []

    # the same build: no page may show reST that Markdown did not render (roles, the math directive)
    pages = sorted(site.rglob("*.html"))
    assert pages
    problems = [
        f"{page.relative_to(site).as_posix()}: ...{snippet}..."
        for page in pages
        for snippet in raw_rest_snippets(page.read_text(encoding="utf-8"))
    ]
    assert not problems, "raw reST in the built site (write Markdown: `code`, $maths$):\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "page",
    [
        "<p>Raise :class:<code>~dan_blocks.utils.OptionKeyError</code> for</p>",
        "<p>see :func:`variant_for`</p>",
        "<p>:meth:<code>x</code> :mod:<code>y</code> :attr:<code>z</code></p>",
        "<p>the :math:`a^2` term</p>",
        "<pre>.. math::\n    a = b</pre>",
        '<code><span class="p">:</span>class<span class="p">:</span>X</code>',
    ],
)
def test_raw_rest_is_found(page: str) -> None:
    assert raw_rest_snippets(page)


@pytest.mark.parametrize(
    "page",
    [
        '<p><span class="arithmatex">\\(a^2\\)</span> and <code>dan_blocks.optimize</code></p>',
        '<p>{"type": "DAN", "class": 1}</p> <a href="https://x.org/a:b">x</a>',
        "<script>var s = ':class:';</script><p>fine</p><!-- a :func: note -->",
    ],
)
def test_markdown_is_not_flagged(page: str) -> None:
    assert raw_rest_snippets(page) == []


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    missing = [p for p in pages if p not in nav]
    assert not missing, f"docs pages missing from mkdocs.yml nav: {missing}"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    line = next(x for x in ci.splitlines() if x.startswith("TEST_CMD="))
    command = line.split("=", 1)[1].strip("'")
    assert command in (ROOT / "README.md").read_text().splitlines()
