"""Navigation: every page of ``docs/`` is linked from the README and from ``docs/index.md`` (the
map) and is in the site's nav (mkdocs.yml), so a new page cannot be forgotten; and every relative
link of those two pages leads to a file that exists (issue 29, item 5)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md"))
API_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "api").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target


def links(page: Path) -> set[str]:
    """The targets of ``page``'s Markdown links, as paths from the repository root (anchors and
    external addresses left out)."""
    found = set()
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if path and "://" not in path:
            found.add((page.parent / path).resolve().relative_to(ROOT).as_posix())
    return found


def nav_pages(entries: object) -> set[str]:
    """The files of mkdocs.yml's nav, at any depth."""
    if isinstance(entries, str):
        return {entries}
    if isinstance(entries, list):
        return set().union(*(nav_pages(e) for e in entries)) if entries else set()
    if isinstance(entries, dict):
        return set().union(*(nav_pages(v) for v in entries.values())) if entries else set()
    return set()


def test_the_docs_have_their_pages():
    """The lists below are read from disk: they must hold the pages the issue named."""
    assert {"index.md", "physics.md", "outputs.md", "results.md", "performance.md"} <= set(PAGES)
    assert {"reproducibility.md", "apart.md"} <= set(PAGES) and len(API_PAGES) >= 4


@pytest.mark.parametrize("page", PAGES)
def test_the_readme_links_every_page(page):
    assert f"docs/{page}" in links(ROOT / "README.md"), f"README.md has no link to docs/{page}"


def test_the_readme_says_how_to_open_the_api_site():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    assert "API reference" in section and "mkdocs serve" in section and "mkdocs build" in section


@pytest.mark.parametrize("page", [p for p in PAGES if p != "index.md"] + API_PAGES)
def test_the_map_links_every_page(page):
    assert f"docs/{page}" in links(DOCS / "index.md"), f"docs/index.md has no link to {page}"


@pytest.mark.parametrize("page", PAGES + API_PAGES)
def test_the_site_nav_has_every_page(page):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert page in nav_pages(config["nav"]), f"mkdocs.yml's nav has no {page}"


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_every_relative_link_leads_to_a_file(page):
    missing = sorted(target for target in links(ROOT / page) if not (ROOT / target).exists())
    assert not missing, f"{page} links to missing files: {missing}"


def test_the_link_reader_finds_links_and_only_links(tmp_path, monkeypatch):
    """The check can fail: a page mentioned as a plain path is not a link."""
    monkeypatch.setitem(globals(), "ROOT", tmp_path.resolve())
    page = tmp_path.resolve() / "README.md"
    page.write_text(
        "See `docs/physics.md` and [the results](docs/results.md#mnist-1d), [x](https://a.b/c).\n"
    )
    assert links(page) == {"docs/results.md"}
