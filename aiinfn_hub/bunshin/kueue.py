"""The platform's Kueue objects, generated from the platform configuration (pure).

- a ResourceFlavor per accelerator model (its node labels), one ``default`` flavor for CPU-only
  work, and ``interlink`` for virtual nodes (their labels and taint: only offload-compatible
  jobs, which tolerate it, are given that flavor); an ``interlink-<resource>`` flavor (the same
  nodes) after the models of each accelerator resource the virtual nodes offer
  (``jobs.offload.accelerators``), so an offloaded job goes remote when its model's quota is
  used up (Kueue's flavour fallback: flavours are tried in order);
- a pool ClusterQueue (``jobs.poolQueue``, default ``pool``: ClusterQueues are cluster-wide,
  so two deployments on one cluster name theirs apart) holding the platform's quota for jobs
  (``jobs.poolCpu``, ``poolMemory``, ``poolAccelerators``) and a ClusterQueue per project with
  no quota of its own that borrows from the pool in one cohort (the AI_INFN layout);
- a LocalQueue per project in the jobs' namespace, named as jobs reference it;
- the WorkloadPriorityClass and the (negative, never-preempting) PriorityClass of job pods.

``check_kueue`` holds the objects to the rules Kueue's own validation enforces, so a bad
configuration fails here and not at ``kubectl apply``.

Notebooks first (for operators). Kueue decides when a job may start, kube-scheduler who keeps
a GPU: notebook pods are no Kueue workloads (no ``queue-name`` label: keep Kueue's
``manageJobsWithoutQueueName: false`` and its ``pod`` integration off for the servers'
namespace), so no quota holds a notebook back, and ``poolAccelerators`` counts jobs only. Job
pods run at ``jobs.priorityClass`` (value -100, ``preemptionPolicy: Never``): a notebook
(priority 0, or ``AIInfnSpawner.notebook_priority_class`` above it; no ``globalDefault``
class at or below -100) that needs a GPU a job holds makes kube-scheduler preempt that pod, and
a job never preempts anything. The Job's ``podFailurePolicy`` ignores the ``DisruptionTarget``
condition, so the Job controller replaces the pod without counting a failure; the Workload
stays admitted (its quota held) while the replacement is Pending for a free GPU. The
ClusterQueues' ``preemption`` (``withinClusterQueue: LowerPriority``,
``reclaimWithinCohort: Any``) only orders jobs among themselves by WorkloadPriorityClass; it
never touches notebooks. With Kueue's ``waitForPodsReady`` on, a ``recoveryTimeout`` shorter
than a notebook session evicts the waiting job (re-queued, not failed), and a
``requeuingStrategy.backoffLimitCount`` would deactivate it: leave that unset.

Offloaded jobs and preemption. An offloaded job's pods may run on its model's nodes or on a
virtual node (``jobs.offload.localFirst``), and kube-scheduler places a preempted pod's
replacement on a virtual node when the local GPU is taken. Kueue, though, writes the admitted
flavour's ``nodeLabels`` into the pods' ``nodeSelector``: a job admitted to a model's flavour
falls back at once only to virtual nodes that carry that model's labels too (an interLink node
in front of a site with that model); otherwise its replacement waits for a local GPU, and the
job goes remote at its next admission, when the model's quota is used up.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import PlatformConfig
from ..config.jobs import Jobs
from ..kubemodel.quantity import parse_quantity
from ..platform import placement
from ..platform.vocabulary import MANAGED_BY, MANAGER_HUB

JSON = dict[str, Any]
API = "kueue.x-k8s.io/v1beta2"
BASE = ("cpu", "memory")
DEFAULT_FLAVOR, VIRTUAL_FLAVOR = "default", "interlink"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _meta(name: str, namespace: str | None = None) -> JSON:
    meta: JSON = {"name": name, "labels": {MANAGED_BY: MANAGER_HUB}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _flavor_name(kind: str, model: str) -> str:
    return f"{kind}-{model}"


def kueue_objects(config: PlatformConfig) -> list[JSON]:
    """Every Kueue object (and the job pods' PriorityClass) the platform needs, in apply order."""
    groups = _pool_resource_groups(config)
    return [
        *_priority_classes(config.jobs),
        *_flavors(config),
        _cluster_queue(config.jobs.pool_queue, config.jobs, groups),
        *(obj for name in sorted(config.projects) for obj in _project_queues(name, config, groups)),
    ]


def _priority_classes(jobs: Jobs) -> list[JSON]:
    """Job pods below notebooks (and never preempting); the queue order of workloads."""
    objects: list[JSON] = [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": _meta(jobs.priority_class),
            "value": -100,
            "preemptionPolicy": "Never",
            "globalDefault": False,
            "description": "Bunshin jobs: evicted by notebooks, never evict anything.",
        }
    ]
    if jobs.workload_priority_class:
        objects.append(
            {
                "apiVersion": API,
                "kind": "WorkloadPriorityClass",
                "metadata": _meta(jobs.workload_priority_class),
                "value": 100,
                "description": "Default queue order of Bunshin jobs.",
            }
        )
    return objects


def _flavors(config: PlatformConfig) -> list[JSON]:
    """CPU-only work, virtual nodes (placed as offloaded jobs are), one per accelerator model."""
    offload = config.jobs.offload
    return [
        {
            "apiVersion": API,
            "kind": "ResourceFlavor",
            "metadata": _meta(DEFAULT_FLAVOR),
            "spec": {},
        },
        *(
            {
                "apiVersion": API,
                "kind": "ResourceFlavor",
                "metadata": _meta(name),
                "spec": {
                    "nodeLabels": placement.offload_node_selector(offload),
                    "nodeTaints": [placement.virtual_node_taint(offload)],
                },
            }
            for name in (VIRTUAL_FLAVOR, *_virtual_accelerator_flavors(config).values())
        ),
        *(
            {
                "apiVersion": API,
                "kind": "ResourceFlavor",
                "metadata": _meta(_flavor_name(model.kind, model.name)),
                "spec": {"nodeLabels": placement.accelerator_node_selector(model)},
            }
            for model in config.accelerators
        ),
    ]


def virtual_accelerator_flavor(resource: str) -> str:
    """``interlink-nvidia-com-gpu``: the virtual nodes' flavour of an accelerator resource (a
    flavour appears in one resource group of a ClusterQueue only, so one per resource)."""
    return f"{VIRTUAL_FLAVOR}-{re.sub(r'[^a-z0-9]+', '-', resource.lower()).strip('-')}"


def _virtual_accelerator_flavors(config: PlatformConfig) -> dict[str, str]:
    """Resource → flavour, for the catalogue's resources the virtual nodes offer."""
    offered = config.jobs.offload.accelerators if config.jobs.offload.enabled else {}
    resources = sorted({m.resource for m in config.accelerators} & set(offered))
    return {resource: virtual_accelerator_flavor(resource) for resource in resources}


def _pool_resource_groups(config: PlatformConfig) -> list[JSON]:
    """The pool's quota: CPU and memory on local and virtual nodes, then each resource's models."""
    jobs = config.jobs
    base = [
        {"name": "cpu", "nominalQuota": jobs.pool_cpu},
        {"name": "memory", "nominalQuota": jobs.pool_memory},
    ]
    groups: list[JSON] = [
        {
            "coveredResources": list(BASE),
            "flavors": [
                {"name": DEFAULT_FLAVOR, "resources": [dict(r) for r in base]},
                {"name": VIRTUAL_FLAVOR, "resources": [dict(r) for r in base]},
            ],
        }
    ]
    by_resource: dict[str, list[JSON]] = {}
    for model in config.accelerators:
        by_resource.setdefault(model.resource, []).append(
            {
                "name": _flavor_name(model.kind, model.name),
                "resources": [
                    {
                        "name": model.resource,
                        "nominalQuota": str(jobs.pool_accelerators.get(model.name, 0)),
                    }
                ],
            }
        )
    virtual = _virtual_accelerator_flavors(config)
    for resource, flavors in sorted(by_resource.items()):
        if resource in virtual:  # last: tried once the local models' quota is used up
            quota = str(jobs.offload.accelerators[resource])
            flavors = [
                *flavors,
                {
                    "name": virtual[resource],
                    "resources": [{"name": resource, "nominalQuota": quota}],
                },
            ]
        groups.append({"coveredResources": [resource], "flavors": flavors})
    return groups


def _cluster_queue(
    name: str, jobs: Jobs, groups: list[JSON], preemption: JSON | None = None
) -> JSON:
    spec: JSON = {
        "cohortName": jobs.cohort,
        "namespaceSelector": {},
        "queueingStrategy": "BestEffortFIFO",
    }
    if preemption is not None:
        spec["preemption"] = preemption
    spec["resourceGroups"] = groups
    return {"apiVersion": API, "kind": "ClusterQueue", "metadata": _meta(name), "spec": spec}


def _project_queues(name: str, config: PlatformConfig, pool_groups: list[JSON]) -> list[JSON]:
    """A project's ClusterQueue (no quota of its own: it borrows the pool's) and LocalQueue."""
    jobs = config.jobs
    empty = [
        {
            "coveredResources": group["coveredResources"],
            "flavors": [
                {
                    "name": flavor["name"],
                    "resources": [
                        {"name": r["name"], "nominalQuota": "0"} for r in flavor["resources"]
                    ],
                }
                for flavor in group["flavors"]
            ],
        }
        for group in pool_groups
    ]
    preemption = {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any"}
    return [
        _cluster_queue(f"project-{name}", jobs, empty, preemption),
        {
            "apiVersion": API,
            "kind": "LocalQueue",
            "metadata": _meta(jobs.queue_name.replace("{project}", name), jobs.namespace),
            "spec": {"clusterQueue": f"project-{name}"},
        },
    ]


def check_kueue(objects: list[JSON]) -> list[str]:
    """Problems Kueue's validation would report, as ``Kind/name: what`` lines."""
    problems: list[str] = []
    flavors = {o["metadata"]["name"] for o in objects if o["kind"] == "ResourceFlavor"}
    cluster_queues = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterQueue"}
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        key = (obj["kind"], obj["metadata"]["name"])
        if key in seen:
            problems.append(f"{where}: defined twice")
        seen.add(key)
        if not _NAME.fullmatch(obj["metadata"]["name"]) or len(obj["metadata"]["name"]) > 63:
            problems.append(f"{where}: the name is not a DNS label")
        if obj["kind"] == "ClusterQueue":
            groups = obj["spec"]["resourceGroups"]
            covered_all: list[str] = [r for g in groups for r in g["coveredResources"]]
            if len(covered_all) != len(set(covered_all)):
                problems.append(f"{where}: a resource is covered by two resource groups")
            in_groups = [f["name"] for g in groups for f in g["flavors"]]
            if len(in_groups) != len(set(in_groups)):
                problems.append(f"{where}: a flavor is in two resource groups")
            if len(groups) > 16:
                problems.append(
                    f"{where}: {len(groups)} resource groups, Kueue takes 16 (too many "
                    "accelerator resources)"
                )
            for i, group in enumerate(groups):
                if len(group["flavors"]) > 64 or len(group["coveredResources"]) > 64:
                    problems.append(f"{where}: resourceGroups[{i}] has too many entries")
                for flavor in group["flavors"]:
                    names = [r["name"] for r in flavor["resources"]]
                    if names != group["coveredResources"]:
                        problems.append(
                            f"{where}: flavor {flavor['name']} must list exactly "
                            f"{group['coveredResources']} in that order (has {names})"
                        )
                    if flavor["name"] not in flavors:
                        problems.append(f"{where}: unknown ResourceFlavor {flavor['name']}")
                    for resource in flavor["resources"]:
                        try:
                            if parse_quantity(str(resource["nominalQuota"])) < 0:
                                raise ValueError
                        except (ValueError, ZeroDivisionError):
                            problems.append(
                                f"{where}: nominalQuota {resource['nominalQuota']!r} of "
                                f"{resource['name']} is not a quantity"
                            )
        if obj["kind"] == "LocalQueue" and obj["spec"]["clusterQueue"] not in cluster_queues:
            problems.append(f"{where}: unknown ClusterQueue {obj['spec']['clusterQueue']}")
    return problems
