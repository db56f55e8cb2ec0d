"""Every relative link in the lessons' markdown and in the repository's docs points at a file
that exists: a "Next" link to a lesson that is not written yet is a dead end for a learner."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from tests.conftest import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")
HREF = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # links inside code are examples, not links
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.I)  # http:, mailto:, //host, #anchor


def relative_links(markdown: str) -> list[str]:
    """The relative link targets in ``markdown`` (without #fragment or ?query)."""
    text = CODE.sub("", markdown)
    targets = [a or b for a, b in LINK.findall(text)] + HREF.findall(text)
    return [unquote(re.split(r"[#?]", t)[0]) for t in targets if not EXTERNAL.match(t)]


def _documents() -> list[Path]:
    return sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("**/*.md"),
                   *(ROOT / "notebooks").glob("*.ipynb")])


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    broken = [t for t in relative_links(_markdown(path)) if not (path.parent / t).exists()]
    assert not broken, f"{path.relative_to(ROOT)}: links to missing files: {broken}"


def test_the_link_finder_finds_links():
    text = ("Next: [01 · Formats](01_whole_model_formats.ipynb) and ![plot](img/a.png#x) "
            "[site](https://example.org) [top](#top) `[not](code.md)` <a href='docs/x.md'>x</a>"
            "\n```\n[fenced](f.md)\n```\n[spaced](<my file.md>)")
    assert sorted(relative_links(text)) == ["01_whole_model_formats.ipynb", "docs/x.md",
                                            "img/a.png", "my file.md"]
