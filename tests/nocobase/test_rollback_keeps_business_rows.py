"""Rolling back a new field on a collection that holds business rows loses none of them.

The release as a builder makes it on real NocoBase 2.2.15: a field added to an existing
collection in development, promoted, then production users add and edit records —
through NocoBase's own API — and the release is rolled back. Rows the migration never
wrote must all survive; what was written since into the field it added is listed first
and discarded only when forced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.migrate import MigrationRequest, migrate
from controller.commands.rollback import rollback
from controller.errors import CheckFailed
from tests.harness.nocobase import NocoBaseApp
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = pytest.mark.nocobase

PHONE = {
    "name": "phone",
    "type": "string",
    "interface": "input",
    "uiSchema": {"type": "string", "title": "Phone", "x-component": "Input"},
}


def _customers(app: NocoBaseApp) -> dict[int, tuple[Any, ...]]:
    return {c["id"]: (c["name"], c["email"]) for c in app.list_all("customers")}


def _promote(dev: NocoBaseApp, prod: NocoBaseApp, migration_id: str, store: Any) -> None:
    dev.stop()
    prod.stop()  # NocoBase caches collections in memory: promote while it is down
    result = migrate(MigrationRequest(dev.url, prod.url, migration_id=migration_id, store=store))
    assert result.status == "succeeded", result.message
    b.start_all(prod, dev)


def test_rollback_of_a_new_field_keeps_every_business_row(
    make_app: AppFactory, tmp_path: Path
) -> None:
    dev, prod = make_app("fdev"), make_app("fprod")
    b.start_all(dev, prod)
    store = FilesystemStore(tmp_path / "store")
    b.create_parent_collection(dev, "")
    _promote(dev, prod, "customers", store)
    ann = prod.post("customers:create", {"name": "Ann", "email": "ann@prod.test"})
    bob = prod.post("customers:create", {"name": "Bob", "email": "bob@prod.test"})

    # the most common change there is: a field on an existing collection
    dev.post("collections/customers/fields:create", PHONE)
    _promote(dev, prod, "phone", store)
    assert "phone" in {f["name"] for f in prod.list_all("collections/customers/fields")}
    cy = prod.post(
        "customers:create", {"name": "Cy", "email": "cy@prod.test", "phone": "+1 555 0100"}
    )
    dee = prod.post("customers:create", {"name": "Dee", "email": "dee@prod.test"})
    prod.post(f"customers:update?filterByTk={ann['id']}", {"name": "Ann B."})
    prod.post(f"customers:update?filterByTk={bob['id']}", {"phone": "+1 555 0199"})
    business = _customers(prod)
    assert set(business) == {ann["id"], bob["id"], cy["id"], dee["id"]}
    prod.stop()

    with pytest.raises(CheckFailed) as refused:
        rollback(store, "phone", prod.url)
    assert sorted(p for p in refused.value.problems if p.startswith("customers:")) == sorted(
        f"customers: row ({row['id']}) column phone was written after the migration"
        for row in (bob, cy)
    ), refused.value.problems
    done = rollback(store, "phone", prod.url, force=True)
    assert "customers" in done.tables

    prod.start()
    prod.sign_in()
    b.assert_boots_cleanly(prod)
    assert "phone" not in {f["name"] for f in prod.list_all("collections/customers/fields")}
    assert _customers(prod) == business  # every row, with every edit to its old fields
