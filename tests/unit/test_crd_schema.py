"""The CRD schema digests: what the files carry, what the generator writes, what the
comparison decides. The operator's start-up gate itself: tests/unit/test_crd_schema_gate.py;
against a real API server: tests/e2e/test_crd_schema.py."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from controller.api.crd_digest import (
    ANNOTATION,
    CrdState,
    check_crd,
    schema_digest,
    unreadable,
)
from controller.api.crd_schema import EXPECTED

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_crd_digests", ROOT / "hack" / "gen_crd_digests.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


# -- the files in the repository -----------------------------------------------------------


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_each_crd_carries_the_digest_of_its_spec_and_the_operator_expects_it(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    digest = crd["metadata"]["annotations"][ANNOTATION]
    assert digest == schema_digest(crd["spec"])
    assert EXPECTED[crd["metadata"]["name"]] == digest
    assert (ROOT / "charts" / "ferry" / "crds" / path.name).read_bytes() == path.read_bytes()


def test_the_operator_expects_exactly_the_crds_in_the_repository() -> None:
    names = {yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRD_FILES}
    assert set(EXPECTED) == names and len(names) == 5


def test_the_generator_finds_the_repository_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_crd_digests.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


# -- the generator -------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A copy of crds/, the chart's copies and the generated module, to edit freely."""
    paths = {
        "crds": tmp_path / "crds",
        "chart_crds": tmp_path / "chart",
        "module_path": tmp_path / "crd_schema.py",
    }
    shutil.copytree(ROOT / "crds", paths["crds"])
    shutil.copytree(ROOT / "charts" / "ferry" / "crds", paths["chart_crds"])
    shutil.copy(ROOT / "controller" / "api" / "crd_schema.py", paths["module_path"])
    return paths


def test_a_schema_change_without_regeneration_fails_the_check_then_regenerates(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert gen.main(["--check"], **tree) == 0
    env = tree["crds"] / "ferry.dev_environments.yaml"
    text = env.read_text()
    edited = text.replace("stage:", "stageName:", 1)  # a renamed field, nothing else
    assert edited != text
    env.write_text(edited)
    shutil.copy(env, tree["chart_crds"] / env.name)  # copied, but not regenerated
    assert gen.main(["--check"], **tree) == 1
    err = capsys.readouterr().err
    for stale in (env, tree["chart_crds"] / env.name, tree["module_path"]):
        assert f"{stale} is stale" in err
    assert "ferry.dev_backups.yaml" not in err
    assert gen.main([], **tree) == 0
    assert gen.main(["--check"], **tree) == 0
    crd = yaml.safe_load(env.read_text())
    new = schema_digest(crd["spec"])
    assert crd["metadata"]["annotations"][ANNOTATION] == new != EXPECTED[crd["metadata"]["name"]]
    assert f'"environments.ferry.dev": "{new}"' in tree["module_path"].read_text()
    assert (tree["chart_crds"] / env.name).read_bytes() == env.read_bytes()


def test_a_chart_copy_left_behind_is_stale(tree: dict[str, Path]) -> None:
    copy_ = tree["chart_crds"] / "ferry.dev_restores.yaml"
    copy_.write_text(copy_.read_text().replace(ANNOTATION, "ferry.dev/old-digest"))
    assert gen.main(["--check"], **tree) == 1


BARE = """\
# a comment that stays
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.ferry.dev
spec:
  group: ferry.dev  # so does this one
"""


def test_stamping_adds_the_annotation_and_changes_nothing_else() -> None:
    out = gen.stamped(BARE, "sha256:aa")
    assert out == BARE.replace(
        "metadata:\n", f'metadata:\n  annotations:\n    {ANNOTATION}: "sha256:aa"\n'
    )
    assert gen.stamped(out, "sha256:bb") == out.replace("sha256:aa", "sha256:bb")
    assert gen.stamped(out, "sha256:aa") == out


def test_stamping_keeps_other_annotations() -> None:
    text = BARE.replace("  name: things", "  annotations:\n    team: x\n  name: things")
    out = yaml.safe_load(gen.stamped(text, "sha256:cc"))
    assert out["metadata"]["annotations"] == {"team": "x", ANNOTATION: "sha256:cc"}


def test_stamping_refuses_a_layout_it_cannot_edit_safely() -> None:
    with pytest.raises(SystemExit, match="metadata"):
        gen.stamped(BARE.replace("metadata:\n  name: things.ferry.dev", "metadata: {name: t}"), "x")


# -- the digest and the comparison ---------------------------------------------------------


def test_the_digest_ignores_layout_and_order_but_not_content() -> None:
    spec = yaml.safe_load(CRD_FILES[0].read_text())["spec"]
    reordered = dict(reversed(list(copy.deepcopy(spec).items())))
    assert schema_digest(reordered) == schema_digest(spec)
    assert schema_digest(yaml.safe_load(yaml.safe_dump(spec, default_flow_style=True))) == (
        schema_digest(spec)
    )
    changed = copy.deepcopy(spec)
    changed["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].pop(
        next(
            iter(
                changed["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
                    "properties"
                ]
            )
        )
    )
    assert schema_digest(changed) != schema_digest(spec)
    assert schema_digest(spec).startswith("sha256:") and len(schema_digest(spec)) == 71


def _crd(annotations: Any) -> dict[str, Any]:
    return {"metadata": {"name": "environments.ferry.dev", "annotations": annotations}}


@pytest.mark.parametrize(
    ("crd", "state", "found"),
    [
        (None, CrdState.MISSING, ""),
        ({}, CrdState.UNANNOTATED, ""),
        ({"metadata": None}, CrdState.UNANNOTATED, ""),
        (_crd(None), CrdState.UNANNOTATED, ""),
        (_crd({"other": "x"}), CrdState.UNANNOTATED, ""),
        (_crd({ANNOTATION: ""}), CrdState.UNANNOTATED, ""),
        (_crd({ANNOTATION: ["sha256:e"]}), CrdState.UNANNOTATED, ""),
        (_crd({ANNOTATION: "sha256:old"}), CrdState.STALE, "sha256:old"),
        (_crd({ANNOTATION: "sha256:E"}), CrdState.STALE, "sha256:E"),  # case counts
        (_crd({ANNOTATION: "sha256:e "}), CrdState.STALE, "sha256:e "),
        (_crd({ANNOTATION: "sha256:e"}), CrdState.CURRENT, "sha256:e"),
    ],
)
def test_check_crd(crd: Any, state: CrdState, found: str) -> None:
    finding = check_crd("environments.ferry.dev", crd, "sha256:e")
    assert (finding.state, finding.found, finding.current) == (
        state,
        found,
        state is CrdState.CURRENT,
    )


@pytest.mark.parametrize(
    ("crd", "says"),
    [
        (None, "is not installed"),
        (_crd({}), f"has no {ANNOTATION} annotation (an older release's)"),
        (_crd({ANNOTATION: "sha256:old"}), "has schema sha256:old"),
    ],
)
def test_a_mismatch_message_names_the_crd_what_was_found_expected_and_the_fix(
    crd: Any, says: str
) -> None:
    message = check_crd("environments.ferry.dev", crd, "sha256:e").message()
    assert message.startswith(f"CRD environments.ferry.dev {says}; ")
    assert "expects schema sha256:e" in message
    assert "kubectl apply --server-side --force-conflicts -f crds/" in message
    assert "helm show crds" in message
    assert "\n" not in message


def test_an_unreadable_crd_says_why_and_is_not_current() -> None:
    finding = unreadable("migrations.ferry.dev", "sha256:e", "Kubernetes API: 403 Forbidden")
    assert not finding.current
    assert "could not be read (Kubernetes API: 403 Forbidden)" in finding.message()
    assert len(unreadable("m", "e", "x" * 5000).found) == 200


def test_a_long_found_digest_is_cut_in_the_message() -> None:
    finding = check_crd("m", _crd({ANNOTATION: "y" * 5000}), "sha256:e")
    assert finding.state is CrdState.STALE and len(finding.found) == 80
