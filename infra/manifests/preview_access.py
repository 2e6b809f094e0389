"""The credentials ``pulumi preview`` runs with in CI: what they may do, and the server-side
rule that keeps them to dry runs (docs/ci.md#preview-credentials).

pulumi-kubernetes 4.x previews every object with a server-side apply **dry run** (a PATCH with
``dryRun=All``), and Kubernetes authorizes a dry run exactly like the real request: an account
with only ``get``/``list``/``watch`` gets a less accurate diff. So the preview account is given
the verbs a dry-run apply needs (``get``, ``patch``, and ``create`` for an object that does not
exist yet), in the stack's Namespace only, never ``delete``, never any Secret but the stack's own;
and a ValidatingAdmissionPolicy denies every request of that account that is **not** a dry
run. ``dryRun`` is otherwise a client-side promise: without the policy, whoever holds the
credential could write.

:func:`preview_access` builds the objects for one stack (one Namespace);
``python -m infra ci preview-access --stack S`` prints them for ``kubectl apply -f -``.
"""

from __future__ import annotations

from infra.manifests.common import Manifest
from infra.manifests.secret_sources import ENV_SECRET_NAME

#: Where the preview account lives (its own Namespace: it exists before any stack's does).
ACCOUNT_NAMESPACE = "mobius-ci"
ACCOUNT_NAME = "pulumi-preview"
#: The username the API server gives the account's tokens.
ACCOUNT_USER = f"system:serviceaccount:{ACCOUNT_NAMESPACE}:{ACCOUNT_NAME}"
#: A group to bind identities the cluster maps from elsewhere (an EKS access entry, a GKE
#: Google group, a client certificate's O=) to the same rights and the same dry-run rule.
ACCOUNT_GROUP = "mobius:pulumi-preview"
#: The ValidatingAdmissionPolicy (and its binding) that refuses every write that is not a dry run.
DRY_RUN_POLICY = "mobius-pulumi-preview-dry-run-only"
DRY_RUN_MESSAGE = "the pulumi-preview account may only dry-run: it previews, it never writes"

#: Every namespaced kind the program can declare, by API group (a unit test keeps it complete).
#: Secrets are not here: only the stack's own Secret, by name (:data:`OWN_SECRETS`).
RESOURCES: dict[str, tuple[str, ...]] = {
    "": ("configmaps", "services", "serviceaccounts"),
    "apps": ("deployments",),
    "autoscaling": ("horizontalpodautoscalers",),
    "policy": ("poddisruptionbudgets",),
    "networking.k8s.io": ("networkpolicies", "ingresses"),
    "gateway.networking.k8s.io": ("httproutes",),
    "batch": ("cronjobs",),
    "monitoring.coreos.com": ("servicemonitors", "prometheusrules"),
    "external-secrets.io": ("externalsecrets", "secretstores"),
    "keda.sh": ("scaledobjects",),
}
#: The one Secret the program itself declares (its values are in the stack's encrypted state,
#: which the preview job can decrypt anyway). The operator's copy of the vault is never named.
OWN_SECRETS = (ENV_SECRET_NAME,)
#: A dry-run server-side apply is a PATCH; one that would create the object also needs ``create``.
#: ``get`` is what ``pulumi preview --refresh`` (and the cluster identity check) reads with.
VERBS = ("get", "patch", "create")


def _meta(name: str, namespace: str | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "labels": {"app.kubernetes.io/part-of": "mobius"}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _subjects() -> list[dict[str, str]]:
    return [
        {"kind": "ServiceAccount", "name": ACCOUNT_NAME, "namespace": ACCOUNT_NAMESPACE},
        {"kind": "Group", "name": ACCOUNT_GROUP, "apiGroup": "rbac.authorization.k8s.io"},
    ]


def account() -> list[Manifest]:
    """The preview account's Namespace and ServiceAccount (shared by every stack of a cluster)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ACCOUNT_NAMESPACE)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ACCOUNT_NAME, ACCOUNT_NAMESPACE),
         "automountServiceAccountToken": False},
    ]  # fmt: skip


def dry_run_policy() -> list[Manifest]:
    """The admission policy that denies the account every request that is not a dry run."""
    who = f"request.userInfo.username == '{ACCOUNT_USER}' || '{ACCOUNT_GROUP}' in request.userInfo.groups"
    any_resource = {"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"],
                    "operations": ["CREATE", "UPDATE", "DELETE", "CONNECT"]}  # fmt: skip
    api = "admissionregistration.k8s.io/v1"
    return [
        {
            "apiVersion": api,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": _meta(DRY_RUN_POLICY),
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [any_resource]},
                "matchConditions": [{"name": "pulumi-preview-account", "expression": who}],
                "validations": [{"expression": "request.dryRun == true", "message": DRY_RUN_MESSAGE}],
            },
        },
        {
            "apiVersion": api,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": _meta(DRY_RUN_POLICY),
            "spec": {"policyName": DRY_RUN_POLICY, "validationActions": ["Deny"]},
        },
    ]


def stack_rules(verbs: tuple[str, ...] = VERBS) -> list[dict[str, object]]:
    """The Role rules in a stack's Namespace."""
    rules: list[dict[str, object]] = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        for group, resources in RESOURCES.items()
    ]
    rules.append({"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(OWN_SECRETS),
                  "verbs": list(verbs)})  # fmt: skip
    return rules


def namespace_rules(
    namespace: str, own_namespace: bool, verbs: tuple[str, ...] = VERBS
) -> list[dict[str, object]]:
    """The ClusterRole rules: read ``kube-system`` (the cluster identity check) and the stack's
    Namespace, and dry-run the stack's Namespace when the stack declares it."""
    rules: list[dict[str, object]] = [
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system", namespace],
         "verbs": ["get"]},
    ]  # fmt: skip
    if own_namespace:
        rules.append({"apiGroups": [""], "resources": ["namespaces"], "resourceNames": [namespace],
                      "verbs": list(verbs)})  # fmt: skip
    return rules


def preview_access(
    namespace: str, own_namespace: bool = True, verbs: tuple[str, ...] = VERBS
) -> list[Manifest]:
    """Every object a cluster admin applies so ``pulumi preview`` of the stack in ``namespace``
    runs as the preview account (``own_namespace``: the stack declares the Namespace itself,
    i.e. not ``existingNamespace``)."""
    role = f"{ACCOUNT_NAME}"
    cluster_role = f"mobius:{ACCOUNT_NAME}:{namespace}"
    rbac = "rbac.authorization.k8s.io/v1"
    ref = {"apiGroup": "rbac.authorization.k8s.io"}
    return [
        *account(),
        *dry_run_policy(),
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": _meta(cluster_role),
         "rules": namespace_rules(namespace, own_namespace, verbs)},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": _meta(cluster_role),
         "roleRef": {**ref, "kind": "ClusterRole", "name": cluster_role}, "subjects": _subjects()},
        {"apiVersion": rbac, "kind": "Role", "metadata": _meta(role, namespace), "rules": stack_rules(verbs)},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": _meta(role, namespace),
         "roleRef": {**ref, "kind": "Role", "name": role}, "subjects": _subjects()},
    ]  # fmt: skip
