"""Whether a promotion may write into an application that keeps serving.

NocoBase caches its configuration in memory: written under a running NocoBase, the new
collections and pages are not served until it restarts, and what it writes meanwhile
from its stale cache may undo them. So under the ``nocobase`` profile a target must
either declare its application (Ferry then quiesces it, ``flows/application.py``) or
say ``allowRunningApplication: true`` (someone else restarts it). The answer is a plan
note either way, so the plan a reviewer approves says what will happen to the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.engine.profiles import Profile


@dataclass(frozen=True)
class RunningApplication:
    note: str | None  # what the plan says about the target's application
    refused: bool  # the promotion may not run as declared


def running_application(
    profile: Profile, target: str, *, declared: str | None, allowed: bool
) -> RunningApplication:
    """``declared``: the target's workload (``Deployment/web``) when it declares one."""
    if declared is not None:
        return RunningApplication(
            f"{declared} of {target} is scaled to zero while this is applied, then resumed "
            "and checked for health",
            refused=False,
        )
    if profile is not Profile.NOCOBASE:
        return RunningApplication(None, refused=False)
    if allowed:
        return RunningApplication(
            f"{target} declares no application and allows promotions while it runs: "
            "restart NocoBase afterwards, it serves its cached configuration until then",
            refused=False,
        )
    return RunningApplication(
        f"refused: {target} declares no application (spec.application) and NocoBase "
        "caches its configuration in memory, so it would keep serving the old one; "
        "declare the workload to have Ferry quiesce it, or set "
        "spec.allowRunningApplication: true to promote while it runs",
        refused=True,
    )
