"""The Kubernetes rights the Bunshin service needs, read from its code (not written by hand).

Every call ``<...>.cluster.<method>(...)`` in ``aiinfn_hub/bunshin/`` is mapped to the
(API group, resource, verb) it issues through :class:`~aiinfn_hub.bunshin.cluster.JobCluster`,
with the kind taken from the call's literal first argument or, for ``create``/``replace`` of a
finished manifest, from the expression that names it (a table below: a new call site it does
not know fails the derivation). The informers' listers (``core.list_namespaced_pod``) give
list + watch. Calls about the user's server pod are in the servers' namespace, the rest in the
jobs' namespace; ``nodes()`` is cluster-wide.
"""

from __future__ import annotations

import ast
from pathlib import Path

from aiinfn_hub.bunshin import cluster

ROOT = Path(__file__).resolve().parents[2]
BUNSHIN = ROOT / "aiinfn_hub" / "bunshin"
Right = tuple[str, str, str]  # (apiGroup, resource, verb)

# JobCluster method -> verb (and the fixed resource, when the method has no kind argument)
METHODS: dict[str, tuple[str, Right | None]] = {
    "read": ("get", None),
    "list_objects": ("list", None),
    "create": ("create", None),
    "replace": ("update", None),
    "merge_patch": ("patch", None),
    "delete": ("delete", None),
    "read_log": ("get", ("", "pods/log", "get")),
    "nodes": ("list", ("", "nodes", "list")),
    "workloads": ("list", (cluster.WORKLOAD_GROUP, "workloads", "list")),
    "patch_workload": ("patch", (cluster.WORKLOAD_GROUP, "workloads", "patch")),
}
# (file, source of the manifest argument) -> its kind, for create/replace
MANIFESTS = {
    ("service.py", "manifest"): "Job",  # job_manifest(...)
    ("service.py", "sandbox_configmap(plan, job)"): "ConfigMap",
    ("juicefs_secret.py", "wanted"): "Secret",
    ("juicefs_secret.py", "replacement"): "Secret",
}
# (file, function) whose calls are about the user's server pod, in the servers' namespace
SERVERS_NAMESPACE = {("service.py", "overview"), ("service.py", "_source_pod")}
# typed-client listers an Informer lists and watches with
LISTERS = {"list_namespaced_pod": ("", "pods")}


def _group_resource(kind: str) -> tuple[str, str]:
    prefix, resource = cluster._RESOURCES[kind]
    parts = prefix.strip("/").split("/")  # api/v1 or apis/<group>/<version>
    return ("" if parts[0] == "api" else parts[1]), resource


class _Calls(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.function = ""
        self.found: list[tuple[str, Right]] = []  # (scope, right); scope jobs/servers/cluster
        self.unknown: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        if node.attr in LISTERS:  # e.g. functools.partial(core.list_namespaced_pod, ...)
            group, resource = LISTERS[node.attr]
            for verb in ("list", "watch"):
                self.found.append(("jobs", (group, resource, verb)))

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "cluster"
        ):
            return
        where = f"{self.file}:{node.lineno} cluster.{func.attr}"
        if func.attr not in METHODS:
            self.unknown.append(f"{where}: unknown JobCluster method")
            return
        verb, fixed = METHODS[func.attr]
        scope = "servers" if (self.file, self.function) in SERVERS_NAMESPACE else "jobs"
        if fixed is not None:
            self.found.append(("cluster" if fixed[1] == "nodes" else scope, fixed))
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            kind = first.value
        elif (self.file, ast.unparse(first)) in MANIFESTS:
            kind = MANIFESTS[(self.file, ast.unparse(first))]
        else:
            self.unknown.append(f"{where}({ast.unparse(first)}): which kind?")
            return
        group, resource = _group_resource(kind)
        self.found.append((scope, (group, resource, verb)))


def bunshin_rights() -> tuple[dict[str, set[Right]], list[str]]:
    """Scope (``jobs``, ``servers``, ``cluster``) -> the rights the code uses there, and the
    call sites the derivation could not read (should be empty)."""
    rights: dict[str, set[Right]] = {"jobs": set(), "servers": set(), "cluster": set()}
    unknown: list[str] = []
    for path in sorted(BUNSHIN.glob("*.py")):
        if path.name == "cluster.py":
            continue
        calls = _Calls(path.name)
        calls.visit(ast.parse(path.read_text(), str(path)))
        unknown += calls.unknown
        for scope, right in calls.found:
            rights[scope].add(right)
    job_py = (BUNSHIN / "job.py").read_text()
    if '"blockOwnerDeletion": True' in job_py:
        # an owner reference with blockOwnerDeletion (the sandbox ConfigMap's, on its Job)
        # needs update on the owner's finalizers under OwnerReferencesPermissionEnforcement
        rights["jobs"].add(("batch", "jobs/finalizers", "update"))
    return rights, unknown


def rules_rights(rules: list[dict[str, list[str]]]) -> set[Right]:
    """The (group, resource, verb) triples an RBAC rule list grants."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


# typed-client listers of all namespaces / cluster-scoped resources -> (group, resource)
CLUSTER_LISTERS = {"list_node": ("", "nodes"), "list_pod_for_all_namespaces": ("", "pods")}


def hub_cluster_rights() -> tuple[set[Right], list[str]]:
    """What the hub's code (outside Bunshin) lists and watches cluster-wide (its informers), and
    the cluster-wide listers the derivation does not know (should be empty)."""
    rights: set[Right] = set()
    unknown: list[str] = []
    for path in sorted((ROOT / "aiinfn_hub").rglob("*.py")):
        if BUNSHIN in path.parents or "dev" in path.relative_to(ROOT / "aiinfn_hub").parts:
            continue  # Bunshin: bunshin_rights(); dev: the local emulator, not the hub
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in CLUSTER_LISTERS:
                group, resource = CLUSTER_LISTERS[node.attr]
                rights |= {(group, resource, "list"), (group, resource, "watch")}
            elif node.attr.endswith("_for_all_namespaces") or node.attr.startswith("list_node"):
                unknown.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
    return rights, unknown
