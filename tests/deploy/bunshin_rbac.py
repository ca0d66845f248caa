"""The Kubernetes rights the hub's pod needs, read from its code (not written by hand): the
Bunshin service's (``bunshin_rights``) and the rest of the hub's (``hub_rights``, below).

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
import re
from functools import cache
from pathlib import Path

from kubernetes_asyncio import client

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


# -- the hub's own calls (spawner, inventory: everything outside Bunshin) --------------------
# kubernetes_asyncio's generated clients: each method's request, read from its source
CLIENT_API = Path(client.__file__).parent / "api"
_REQUEST = re.compile(r"def (\w+)_with_http_info\(.*?call_api\(\s*'([^']+)',\s*'([A-Z]+)'", re.S)
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@cache
def client_requests() -> dict[str, set[tuple[str, str]]]:
    """Typed-client method name -> the (HTTP method, path) requests it may make (more than
    one: the name is ambiguous between API classes), from the generated clients' source."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(CLIENT_API.glob("*_api.py")):
        for name, url, method in _REQUEST.findall(path.read_text()):
            found.setdefault(name, set()).add((method, url))
    return found


def request_right(method: str, url: str) -> tuple[bool, Right]:
    """(namespaced?, the RBAC right) of one request: ``GET /api/v1/namespaces/{namespace}/
    pods/{name}/log`` -> (True, ("", "pods/log", "get"))."""
    parts = url.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    watch = rest[:1] == ["watch"]  # the deprecated watch_* methods: /api/v1/watch/...
    rest = rest[1:] if watch else rest
    if not rest:
        raise ValueError(f"{method} {url} is about no resource")  # discovery
    namespaced = rest[:1] == ["namespaces"] and len(rest) >= 3
    if namespaced:
        rest = rest[2:]
    item = len(rest) >= 2 and rest[1].startswith("{")
    resource = rest[0] + (f"/{rest[2]}" if item and len(rest) >= 3 else "")
    if watch:
        verb = "watch"
    elif method in VERBS:
        verb = VERBS[method]
    elif method == "DELETE":
        verb = "delete" if item else "deletecollection"
    else:
        verb = "get" if item else "list"
    return namespaced, (group, resource, verb)


class _HubCalls(ast.NodeVisitor):
    """Typed-client calls (``self.api.read_namespaced_pod_log(...)``) and listers handed to an
    informer (``core.list_node``) of one module of the hub."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.found: list[tuple[str, Right]] = []  # (scope, right); scope servers/cluster
        self.unknown: list[str] = []
        self.call_of_func: dict[int, ast.Call] = {}  # id() of a call's function -> the call
        self.call_of_arg: dict[int, ast.Call] = {}  # id() of an argument -> the call

    def visit_Call(self, node: ast.Call) -> None:
        self.call_of_func[id(node.func)] = node
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            self.call_of_arg[id(arg)] = node
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if any(alias.name == "KubeRest" for alias in node.names):
            # path-based calls this reading cannot see (Bunshin's JobCluster only)
            self.unknown.append(f"{self.where}:{node.lineno} imports KubeRest")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        where = f"{self.where}:{node.lineno} {node.attr}"
        if node.attr == "call_api":
            self.unknown.append(f"{where}: a raw API call")
        requests = client_requests().get(node.attr)
        if requests is None:
            return
        if len(requests) != 1:
            self.unknown.append(f"{where}: ambiguous ({sorted(requests)})")
            return
        ((method, url),) = requests
        try:
            namespaced, (group, resource, verb) = request_right(method, url)
        except ValueError as exc:
            self.unknown.append(f"{where}: {exc}")
            return
        call = self.call_of_func.get(id(node))
        verbs: tuple[str, ...] = (verb,)
        if call is None:  # handed on: an informer's lister (list, then watch)
            if verb != "list":
                self.unknown.append(f"{where}: handed on, not called")
                return
            call, verbs = self.call_of_arg.get(id(node)), ("list", "watch")
        if namespaced:
            args = [*call.args, *(k.value for k in call.keywords)] if call else []
            if "self.namespace" not in [ast.unparse(a) for a in args]:
                self.unknown.append(f"{where}: in which namespace? (not self.namespace)")
                return
        for each in verbs:
            self.found.append(("servers" if namespaced else "cluster", (group, resource, each)))


def hub_calls(source: str, where: str) -> tuple[list[tuple[str, Right]], list[str]]:
    """(scope, right) of each Kubernetes call in one module's ``source``, and the uses it
    cannot read."""
    calls = _HubCalls(where)
    calls.visit(ast.parse(source, where))
    return calls.found, calls.unknown


def hub_rights() -> tuple[dict[str, set[Right]], list[str]]:
    """Scope (``servers``: the spawner's namespace, ``cluster``) -> the rights the hub's code
    outside Bunshin uses there through the typed clients (the spawner's calls, the
    inventory's informers), and the uses the derivation cannot read (should be empty).
    kubespawner's own calls are not here: the chart's Role is written for them."""
    rights: dict[str, set[Right]] = {"servers": set(), "cluster": set()}
    unknown: list[str] = []
    package = ROOT / "aiinfn_hub"
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if BUNSHIN in path.parents or parts[0] == "dev" or parts == ("kube", "rest.py"):
            continue  # Bunshin: bunshin_rights(); dev: the local emulator; rest: KubeRest itself
        found, cannot = hub_calls(path.read_text(), str(path.relative_to(ROOT)))
        unknown += cannot
        for scope, right in found:
            rights[scope].add(right)
    return rights, unknown


def hub_cluster_rights() -> tuple[set[Right], list[str]]:
    """What the hub's code (outside Bunshin) does cluster-wide (its informers' list and watch,
    the spawner's read of a PriorityClass), and the uses the derivation cannot read."""
    rights, unknown = hub_rights()
    return rights["cluster"], unknown
