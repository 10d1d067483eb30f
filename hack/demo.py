"""`make demo`: promote configuration dev → pre-release → production on SQLite files.

Builds three NocoBase-shaped applications with the same fixtures the tests use, makes
a builder's change in development, then runs the real `ferry` commands a user would.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import nocobase_shape as shape  # noqa: E402

OUT = ROOT / "demo-out"
FERRY = [sys.executable, "-m", "controller"]


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def ferry(*args: str, ok: tuple[int, ...] = (0,)) -> int:
    print("$ ferry " + " ".join(shlex.quote(a) for a in args), flush=True)
    code = subprocess.call([*FERRY, *args], cwd=ROOT)
    if code not in ok:
        raise SystemExit(f"demo: `ferry {args[0]}` exited {code}")
    return code


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    url = {name: f"sqlite:///{OUT / name}.db" for name in ("dev", "pre", "prod")}
    variables = {
        "HOOK_TOKEN": ("secret", "demo-token"),
        "TICKET_WEBHOOK": ("plain", "https://hooks.example/tickets"),
    }

    say("1/7 Three NocoBase-shaped environments (SQLite files in demo-out/)")
    shape.build(url["dev"], app="dev", variables=variables)
    shape.build(url["pre"], app="pre", variables={"HOOK_TOKEN": variables["HOOK_TOKEN"]})
    shape.build(url["prod"], app="prod", variables=variables)
    print(
        "dev, pre-release and production start with the same configuration and their own "
        "business data (users, orders)."
    )

    say("2/7 A builder works in development: a 'tickets' collection, two pages, a role,")
    print("    a workflow step that calls {{$env.TICKET_WEBHOOK}}, a renamed site title")
    shape.builder_changes(url["dev"])

    say("3/7 Plan dev → pre-release (nothing is changed by a plan)")
    ferry("plan", "--source", url["dev"], "--target", url["pre"], ok=(2,))
    print("Refused: pre-release lacks the TICKET_WEBHOOK variable. Declare it and plan again.")
    vars_file = OUT / "pre-variables.yaml"
    vars_file.write_text(
        "- {name: HOOK_TOKEN, type: secret}\n- {name: TICKET_WEBHOOK, type: plain}\n"
    )
    ferry("plan", "--source", url["dev"], "--target", url["pre"], "--variables", str(vars_file))

    store = str(OUT / "backups")
    promote = [
        "migrate",
        "--source",
        url["dev"],
        "--target",
        url["pre"],
        "--variables",
        str(vars_file),
        "--id",
        "release-1-pre",
        "--backup-store",
        store,
        "--environment",
        "pre",
    ]
    say("4/7 Promote dev → pre-release (a pre-migration backup is taken first)")
    ferry(*promote)
    ferry(*promote)
    print("The second run is a no-op: the ledger in the target records release-1-pre.")

    say("5/7 Export pre-release's configuration for review, then promote it to production")
    ferry("export", "--source", url["pre"], "--dir", str(OUT / "snapshot"))
    print(f"One YAML file per table in {OUT / 'snapshot' / 'tables'} (diff it in Git).")
    ferry(
        "migrate",
        "--source",
        str(OUT / "snapshot"),
        "--target",
        url["prod"],
        "--id",
        "release-1-prod",
        "--backup-store",
        store,
        "--environment",
        "prod",
    )
    ferry("backup", "list", "--store", store)

    say("6/7 Production takes new orders; then the release is rolled back")
    shape.add_orders(url["prod"], 3)
    ferry("rollback", "--store", store, "--migration", "release-1-prod", "--database", url["prod"])
    counts = shape.row_counts(url["prod"])
    print(
        f"production: {counts['roles']} roles again, the tickets table is gone, and all "
        f"{counts['orders']} orders (3 taken after the release) are still there."
    )

    say("7/7 Re-apply the release: production matches pre-release again")
    ferry(
        "migrate",
        "--source",
        str(OUT / "snapshot"),
        "--target",
        url["prod"],
        "--id",
        "release-1-prod-again",
        "--backup-store",
        store,
        "--environment",
        "prod",
    )
    ferry("plan", "--source", url["pre"], "--target", url["prod"])


if __name__ == "__main__":
    main()
