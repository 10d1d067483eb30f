"""``ferry migrate --rehearse``: where the rehearsal runs, and what the user is told.

The scratch server comes from ``--scratch URL`` (a server URL, or ``sqlite:////dir`` for
SQLite), from ``--scratch-from FILE`` (an Environment manifest's
``spec.rehearsal.scratch``), or, for a target given as ``env:[NAMESPACE/]NAME``, from that
Environment in the current kube context.
"""

from __future__ import annotations

import argparse
from typing import Any

from controller.api.environment import parse_environment
from controller.cli.inputs import ENV_PREFIX, _cluster, parse_environment_ref
from controller.cli.yamlfile import load_yaml
from controller.commands.rehearsal import RehearsalResult, scratch_url
from controller.errors import InvalidInput


def add_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument(
        "--rehearse",
        action="store_true",
        help="first apply the same plan to a scratch copy of the target (a fresh backup "
        "restored on the scratch server); only a passed rehearsal lets the real apply run",
    )
    m.add_argument(
        "--scratch",
        metavar="URL",
        help="the rehearsal's scratch server (Ferry creates and drops ferry_rehearsal_* "
        "databases there), or sqlite:////DIR for SQLite",
    )
    m.add_argument(
        "--scratch-from",
        metavar="FILE",
        help="an Environment manifest whose spec.rehearsal.scratch names the scratch server",
    )


def _from_file(path: str) -> str:
    body = load_yaml(path, "Environment")
    try:
        spec = parse_environment(body)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err.message}") from err
    meta = body.get("metadata") if isinstance(body, dict) else None
    namespace = str((meta or {}).get("namespace") or "default")
    cluster = None
    if spec.rehearsal_scratch is not None and spec.rehearsal_scratch.url_from is not None:
        cluster = _cluster(path)
    url = scratch_url(spec, namespace, cluster)
    if url is None:
        raise InvalidInput(f"{path}: the Environment declares no spec.rehearsal.scratch")
    return url


def _from_target(target: str) -> str | None:
    if not target.startswith(ENV_PREFIX):
        return None
    namespace, name = parse_environment_ref(target)
    from controller.commands.environments import lookup

    cluster = _cluster(target)
    env = lookup(cluster, namespace, name)
    return scratch_url(env.spec, namespace, cluster)


def scratch_of(args: argparse.Namespace) -> str | None:
    """The scratch server of ``--rehearse``, or None without it; refuses a scratch option
    without ``--rehearse``, two scratch options, and ``--rehearse`` without a scratch."""
    given = [
        o for o, v in (("--scratch", args.scratch), ("--scratch-from", args.scratch_from)) if v
    ]
    if not args.rehearse:
        if given:
            raise InvalidInput(f"{given[0]} is only for --rehearse")
        return None
    if len(given) > 1:
        raise InvalidInput("give --scratch or --scratch-from, not both")
    url = args.scratch or (_from_file(args.scratch_from) if args.scratch_from else None)
    url = url or _from_target(args.target)
    if not url:
        raise InvalidInput(
            "--rehearse needs a scratch server: --scratch URL, --scratch-from FILE, or a "
            "target env:NAME whose Environment declares spec.rehearsal.scratch"
        )
    return url


def rehearsal_text(result: RehearsalResult) -> str:
    backup = result.backup_id if result.backup_kept else f"{result.backup_id} (not kept)"
    return (
        f"rehearsal: {result.outcome.lower()} in {result.seconds:.1f}s on {result.scratch} "
        f"(dropped) from backup {backup}: {result.message}"
    )


def rehearsal_json(result: RehearsalResult) -> dict[str, Any]:
    return result.to_status() | {"backupId": result.backup_id, "kept": result.backup_kept}
