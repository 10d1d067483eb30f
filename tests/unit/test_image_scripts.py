"""The image scripts' promises that hold without building anything (hack/image/).

A build takes minutes and root, so what runs here is what decides *which* image is
built and *where* it goes, before buildah is ever called: the tag derived from the
build context (``helm upgrade`` needs a new reference exactly when the image can
differ), the refusal of a cache inside the repository, and the refusal of a tag that
is not a tag. The build itself is checked by the scripts (the image runs ``ferry`` as
UID 10001) and by the real-node e2e tier that imports the archive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO_ROOT / "hack" / "image"
SCRIPTS = ("base.sh", "build.sh", "lib.sh")
BASH = shutil.which("bash") or "/bin/bash"


def _bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _digest(root: Path, base_id: str = "sha256:base-1") -> subprocess.CompletedProcess[str]:
    """``context_digest ROOT BASE_ID`` of hack/image/lib.sh, as build.sh calls it."""
    program = (
        'log() { :; }; die() { printf "ERROR: %s\\n" "$*" >&2; exit 1; }; '
        'source "$1"; context_digest "$2" "$3"'
    )
    return _bash("-c", program, "_", str(IMAGE_DIR / "lib.sh"), str(root), base_id)


def _tag(root: Path, base_id: str = "sha256:base-1") -> str:
    result = _digest(root, base_id)
    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip()
    assert len(tag) == 12 and all(c in "0123456789abcdef" for c in tag), tag
    return tag


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A checkout-shaped tree with the real .dockerignore and Dockerfile."""
    root = tmp_path / "repo"
    (root / "controller" / "cli").mkdir(parents=True)
    (root / "tests").mkdir()
    for name in (".dockerignore", "Dockerfile"):
        shutil.copy(REPO_ROOT / name, root / name)
    (root / "pyproject.toml").write_text('[project]\nname = "ferry"\n')
    (root / "README.md").write_text("# Ferry\n")
    (root / "controller" / "__init__.py").write_text('__version__ = "1"\n')
    (root / "controller" / "cli" / "main.py").write_text("def main() -> int:\n    return 0\n")
    (root / "tests" / "test_x.py").write_text("def test_x() -> None: ...\n")
    return root


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script: str) -> None:
    result = _bash("-n", str(IMAGE_DIR / script))
    assert result.returncode == 0, result.stderr


def test_tag_is_stable_for_the_same_inputs(context: Path) -> None:
    assert _tag(context) == _tag(context)


@pytest.mark.parametrize(
    "change",
    [
        "controller/cli/main.py",  # the code
        "controller/new_module.py",  # a new file, not yet in git
        "pyproject.toml",  # the dependencies
        "README.md",  # packaged as the long description
        "Dockerfile",
        ".dockerignore",
    ],
)
def test_tag_changes_with_anything_the_build_reads(context: Path, change: str) -> None:
    before = _tag(context)
    path = context / change
    path.write_text((path.read_text() if path.exists() else "") + "# changed\n")
    assert _tag(context) != before


def test_tag_changes_with_the_base_image(context: Path) -> None:
    assert _tag(context, "sha256:base-1") != _tag(context, "sha256:base-2")


@pytest.mark.parametrize(
    "change",
    [
        "tests/test_x.py",  # outside the build context
        "controller/__pycache__/main.cpython-311.pyc",  # excluded by .dockerignore
        "controller/cli/stale.pyc",
    ],
)
def test_tag_ignores_what_the_build_does_not_read(context: Path, change: str) -> None:
    before = _tag(context)
    path = context / change
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    assert _tag(context) == before


def test_a_dockerignore_pattern_is_refused_not_misread(context: Path) -> None:
    (context / ".dockerignore").write_text("*\n!controller/*.py\n")
    result = _digest(context)
    assert result.returncode != 0
    assert "is a pattern" in result.stderr
    assert result.stdout == ""


def test_no_base_image_id_is_refused(context: Path) -> None:
    result = _digest(context, "")
    assert result.returncode != 0
    assert "no base image ID" in result.stderr


@pytest.fixture
def no_build_tools(tmp_path: Path) -> str:
    """A PATH with the few tools the scripts' checks use and no buildah or debootstrap:
    if the guard under test ever let a run through, it stops at the tool check
    (and the test fails on its message) instead of building inside the repository."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("realpath", "dirname", "id", "date", "sed", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize("script", ["base.sh", "build.sh"])
def test_a_cache_inside_the_repository_is_refused(script: str, no_build_tools: str) -> None:
    inside = REPO_ROOT / ".ferry-image-cache-test"
    assert not inside.exists()
    result = _bash(
        str(IMAGE_DIR / script), env={"FERRY_CACHE": str(inside), "PATH": no_build_tools}
    )
    assert result.returncode == 1
    assert "is inside the repository" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not inside.exists()


@pytest.mark.parametrize(
    "tag",
    ["", "a b", "../escape", "-flag", ".hidden", "x;rm", "a/b", "é", "t" * 129, "ok\nx"],
)
def test_a_tag_that_is_not_a_tag_is_refused(tmp_path: Path, tag: str) -> None:
    cache = tmp_path / "cache"
    result = _bash(str(IMAGE_DIR / "build.sh"), "--tag", tag, env={"FERRY_CACHE": str(cache)})
    assert result.returncode == 1
    assert "invalid tag" in result.stderr
    assert result.stdout == ""
    assert not cache.exists()  # refused before anything was written
