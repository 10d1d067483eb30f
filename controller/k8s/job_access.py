"""What a Job's pod may do in the API: patch its own object's ``status`` and nothing else.

A Job's container reports how far it got into the object's ``status.progress`` as the
in-process path does (``ferry … --progress-to KIND/NAMESPACE/NAME``). For that, and only
that, each Job gets a ServiceAccount, a Role allowing ``patch`` on one object's
``status`` subresource (``resourceNames: [name]``) and a RoleBinding, all named as the
Job and owned by the object, so the garbage collector removes them with it. The pod
mounts a short-lived projected token of that account (``expirationSeconds``, renewed by
the kubelet while the pod runs, void once the pod is gone) at :data:`TOKEN_DIR`, beside
the cluster's CA; ``automountServiceAccountToken`` stays off, so no other credential
reaches it. The operator may create the Role because it holds that permission itself
(RBAC refuses to grant more than the granter has).

A Job whose spec names its own account (``spec.execution.serviceAccountName``, for a
cloud identity) keeps it: the Role is bound to that account instead, and no account is
created.
"""

from __future__ import annotations

from typing import Any

from controller.k8s.client import PLURALS

TOKEN_DIR = "/var/run/ferry/progress"
PROGRESS_ENV = "FERRY_PROGRESS_TO"
VOLUME = "progress-token"
TOKEN_SECONDS = 600  # the API server's minimum; the kubelet renews it at 80%
RBAC = "rbac.authorization.k8s.io"


def progress_target(kind: str, namespace: str, name: str) -> str:
    """``Backup/NAMESPACE/NAME``: what ``--progress-to`` and :data:`PROGRESS_ENV` say."""
    return f"{kind}/{namespace}/{name}"


def progress_pod(target: str, account: str, container: dict[str, Any], pod: dict[str, Any]) -> None:
    """Give the pod spec ``pod`` (running ``container``) the token of ``account`` and
    the container the object to report to (``target``, :func:`progress_target`)."""
    token = {"path": "token", "expirationSeconds": TOKEN_SECONDS}
    # The CA is optional: without it progress does not get through, the work still runs.
    ca = {
        "name": "kube-root-ca.crt",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "optional": True,
    }
    sources = [{"serviceAccountToken": token}, {"configMap": ca}]
    pod["serviceAccountName"] = account
    pod["volumes"] = [*pod.get("volumes", []), {"name": VOLUME, "projected": {"sources": sources}}]
    mount = {"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
    container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
    container["env"] = [*container.get("env", []), {"name": PROGRESS_ENV, "value": target}]


def access_objects(namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The ServiceAccount (unless the Job names another), Role and RoleBinding the Job's
    pod needs, or none for a Job without the progress token (:func:`progress_pod`)."""
    meta = job.get("metadata") or {}
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") in PLURALS]
    if not owners or not any(v.get("name") == VOLUME for v in pod.get("volumes") or []):
        return []
    owner = owners[0]
    name, account = str(meta["name"]), str(pod.get("serviceAccountName"))
    owned: dict[str, Any] = {
        "name": name,
        "labels": dict(meta.get("labels") or {}),
        "ownerReferences": [dict(owner)],
    }
    rule: dict[str, Any] = {
        "apiGroups": [owner["apiVersion"].split("/")[0]],
        "resources": [f"{PLURALS[owner['kind']]}/status"],
        "resourceNames": [owner["name"]],
        "verbs": ["patch"],
    }
    binding: dict[str, Any] = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": owned,
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    role = {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": owned, "rules": [rule]}
    objects = [role, binding]
    if account == name:  # the Job's own account, not one its spec names
        objects.insert(
            0,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": owned,
                "automountServiceAccountToken": False,
            },
        )
    return objects
