"""The documentation: the site builds in strict mode, and every relative link points somewhere.

``mkdocs build --strict`` (mkdocs.yml turns on its link, anchor and omitted-page checks) catches
a broken link, anchor or mkdocstrings reference inside ``docs/``; the README is not part of the
site, so its links are checked here, anchors included. Both checks read files only (the build
takes about 2 s).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)[^`].*?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans (whose brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _links(text: str) -> list[str]:
    prose = _prose(text)
    return INLINE_LINK.findall(prose) + REFERENCE_DEF.findall(prose)


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def _slug(heading: str) -> str:
    """Python-Markdown's ``toc`` slug (what mkdocs and, for these headings, GitHub produce)."""
    text = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_link_extraction_on_a_hand_case():
    text = (
        'See [a](a.md), ![img](img/x.png "title") and [b](b.md#part).\n'
        "`[not](a link)` and\n```\n[nor](this.md)\n```\n[ref]: c.md\n[web](https://x.org/y)\n"
    )
    assert _links(text) == ["a.md", "img/x.png", "b.md#part", "https://x.org/y", "c.md"]
    assert _slug("Measured: the 12-job lastfm sweep") == "measured-the-12-job-lastfm-sweep"
    assert _slug("Bad input stops with `FILE:LINE: what was expected`") == (
        "bad-input-stops-with-fileline-what-was-expected"
    )


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(path: Path):
    broken = []
    for target in _links(path.read_text(encoding="utf-8")):
        if _is_external(target) or target.startswith("#"):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif anchor and path.name == "README.md" and resolved.suffix == ".md":
            if anchor not in _anchors(resolved):
                broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_the_nav_lists_every_page_and_only_existing_ones():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert sorted(set(nav) - pages) == [], "nav entries without a file"
    assert sorted(pages - set(nav)) == [], "pages under docs/ that mkdocs.yml's nav does not list"
    assert len(nav) == len(set(nav)), "a page listed twice in the nav"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs and mkdocstrings not installed (pip install -e '.[docs]')",
)
def test_mkdocs_build_strict(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()
