"""``ferry run``: the operator."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("run", help="run the Kubernetes operator")
    r.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    r.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        type=str,  # '' is meaningful here
        metavar="URL",
        help="liveness endpoint ('' to disable)",
    )
    r.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port (0: off)")
    r.add_argument(
        "--metrics-address", default="0.0.0.0", help="address the metrics server binds to"
    )
    r.add_argument("--plain-logs", action="store_true", help="text logs instead of JSON")
    r.add_argument("--verbose", action="store_true")
    r.add_argument(
        "--skip-crd-check",
        action="store_true",
        help="reconcile even if the installed CRDs are not this release's (logged as a "
        "warning; fields the CRDs lack are silently dropped)",
    )
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from controller.handlers.runtime import run

    run(
        namespaces=list(args.namespace),
        liveness=args.liveness or None,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        json_logs=not args.plain_logs,
        verbose=args.verbose,
        check_crds=not args.skip_crd_check,
    )
    return 0
