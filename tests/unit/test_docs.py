"""The documentation's own rules: a README short enough to teach, one page per topic in docs/, links
that resolve, and no references that only make sense inside the project's tracker or on one machine."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
SCRATCH_PATH = re.compile(r"(?<![\w.])/(?:tmp|work)/")
# a repository path in backticks, e.g. `cot_ray/mtp/execute.py` or `configs/`; Gymnasium ids
# (`cot_ray/MTP-v0`) look alike and are not paths
REPO_PATH = re.compile(r"`((?:cot_ray|bench|configs|tests|deployments|docker|jobs|requirements)/[\w./-]*)`")
GYM_ID = re.compile(r"-v\d+$")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _relative_links(page: Path) -> list[str]:
    """Link targets that point into the repository (not web addresses, not same-page anchors)."""
    targets = LINK.findall(page.read_text(encoding="utf-8"))
    return [t for t in targets if "://" not in t and not t.startswith(("#", "mailto:"))]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def test_readme_is_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to a docs/ page"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in _relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve()
        if not file.is_file():
            broken.append(target)
        elif fragment and file.suffix == ".md":
            anchors = {_anchor(h) for h in HEADING.findall(file.read_text(encoding="utf-8"))}
            if fragment not in anchors:
                broken.append(target)
    assert broken == [], f"{_name(page)}: links to nothing: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_repository_path_named_exists(page):
    """A file the docs name must still be there after a refactor moves it."""
    named = [p for p in REPO_PATH.findall(page.read_text(encoding="utf-8")) if not GYM_ID.search(p)]
    assert [p for p in named if not (ROOT / p).exists()] == [], f"{_name(page)} names files that are gone"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _relative_links(README)}
    assert DOCS, "docs/ holds no pages"
    assert [_name(p) for p in DOCS if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_issue_numbers_or_scratch_paths(page):
    text = page.read_text(encoding="utf-8")
    assert ISSUE_NUMBER.findall(text) == [], f"{_name(page)}: say what the issue asked, not its number"
    assert SCRATCH_PATH.findall(text) == [], f"{_name(page)}: a path on one machine"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_the_paper_is_cited_by_its_arxiv_id_never_a_summary_file(page):
    assert "paper.md" not in page.read_text(encoding="utf-8")
    if page == README:
        assert "2510.12157" in page.read_text(encoding="utf-8")


def test_the_link_checker_sees_links_and_anchors():
    """Guards the checks above against a pattern that silently matches nothing."""
    assert "docs/formats.md" in _relative_links(README)
    assert REPO_PATH.findall("in `cot_ray/mtp/execute.py` and `configs/`") == ["cot_ray/mtp/execute.py", "configs/"]
    assert _anchor("Results on Sudoku (cpu-sudoku)") == "results-on-sudoku-cpu-sudoku"
    assert _anchor("Running on a cluster") == "running-on-a-cluster"
    assert ISSUE_NUMBER.search("Against issue 17's targets") and not ISSUE_NUMBER.search("the issue asked")
    assert SCRATCH_PATH.search("(`/tmp/fresh2`)") and not SCRATCH_PATH.search("`step-N.tmp` then renamed")
