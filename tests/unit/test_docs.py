"""The documents a newcomer reads: every link resolves, every document is in the index,
and the README's quick start runs commands that exist.

Issue #10 found ``docs/runbooks.md`` linked from nowhere and a hand-written CRD page
that had drifted from the CRDs; these tests keep the class of defect from coming back:
a document added without a line in ``docs/README.md``, a link or ``#anchor`` that a
rename broke, or a quick-start flag that no longer parses.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from controller.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "docs" / "README.md"
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(<?([^)\s>]+)>?\)")


def _tracked_markdown() -> list[Path]:
    """Markdown files in Git, or new and not ignored (fixture data excluded: test input)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / p for p in out.split() if not p.startswith("tests/fixtures/")]


def _prose(path: Path) -> str:
    """The text outside code blocks (fenced or inline): a regex in a code span is not a link."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _links(path: Path) -> list[str]:
    text = _CODE.sub("", _prose(path))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(path).splitlines() if line.startswith("#")}


def test_slugs_follow_github() -> None:
    assert _slug("Plans and approval") == "plans-and-approval"
    assert (
        _slug("Testing on real NocoBase (`tests/nocobase`)")
        == "testing-on-real-nocobase-testsnocobase"
    )
    assert _slug("1. Export and commit") == "1-export-and-commit"


@pytest.mark.parametrize("doc", _tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        name, _, anchor = target.partition("#")
        dest = (doc.parent / name).resolve() if name else doc
        checked = dest.is_file() and dest.suffix == ".md" and bool(anchor)
        if not dest.exists() or (checked and anchor not in _anchors(dest)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


def test_every_document_is_in_the_index() -> None:
    listed = {(INDEX.parent / t.partition("#")[0]).resolve() for t in _links(INDEX)}
    docs = [p for p in _tracked_markdown() if p != INDEX and p.name != "CHANGELOG.md"]
    missing = [
        str(p.relative_to(ROOT)) for p in docs if p.parent != ROOT and p.resolve() not in listed
    ]
    assert not missing, f"add a line for each to docs/README.md: {missing}"


def test_the_readme_links_the_index_and_runbooks_are_linked() -> None:
    readme = _links(ROOT / "README.md")
    assert "docs/README.md" in readme
    assert "docs/runbooks.md" in readme


def _first_screen() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[: text.index("## Using the command line")]


@pytest.mark.parametrize(
    "needle",
    [
        "helm install ferry ./charts/ferry --namespace ferry-system",
        "pip install 'ferry @ git+",
        "pip install .",
        "make demo ",
        "make test ",
        "kubectl get migrations",
    ],
)
def test_the_first_screen_says_how_to_install_and_start(needle: str) -> None:
    assert needle in _first_screen()


def _quick_start() -> list[list[str]]:
    block = _first_screen().split("## Quick start", 1)[1].split("```")[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()[1:]]
    return [shlex.split(line) for line in lines if line]


def test_the_quick_start_is_five_lines() -> None:
    assert len(_quick_start()) == 5


@pytest.mark.parametrize("argv", [c for c in _quick_start() if c[0] == "ferry"], ids=lambda c: c[1])
def test_the_quick_start_commands_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv[1:])
    assert callable(args.func)


@pytest.mark.parametrize(
    "path", [c for c in _quick_start() for c in c if c.startswith("manifests/")]
)
def test_the_quick_start_applies_files_that_exist(path: str) -> None:
    assert (ROOT / path).is_file()
