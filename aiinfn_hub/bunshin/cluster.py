"""The Kubernetes side of Bunshin: reads and writes the objects of jobs, and nothing else.

It gets finished manifests (built by ``job`` and ``juicefs``, named by ``service``) and
answers with what the API server sends: a read of something missing is ``None``, a deletion of
something gone is ``False``, every other failure a :class:`~aiinfn_hub.kube.rest.KubeError`
naming the object's kind, namespace and name. What a failure means for the user is decided by
the caller (``service``).
"""

from __future__ import annotations

from typing import Any

from ..kube.rest import KubeError, KubeRest

JSON = dict[str, Any]
WORKLOAD_GROUP = "kueue.x-k8s.io"
WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")  # newest first; a cluster serves one or both
# kind -> (API prefix, resource) of the kinds a job is made of
_RESOURCES = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Pod": ("/api/v1", "pods"),
    "Secret": ("/api/v1", "secrets"),
}


def object_path(kind: str, namespace: str, name: str = "") -> str:
    """The API path of a namespaced object (or of its collection, without ``name``)."""
    prefix, resource = _RESOURCES[kind]
    base = f"{prefix}/namespaces/{namespace}/{resource}"
    return f"{base}/{name}" if name else base


class JobCluster:
    """Jobs, their pods, sandboxes, credentials Secrets and Kueue Workloads (and a read of the
    nodes)."""

    def __init__(self, kube: KubeRest) -> None:
        self.kube = kube

    async def read(self, kind: str, namespace: str, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        found: JSON | None = await self.kube.get_or_none(object_path(kind, namespace, name))
        return found

    async def list_objects(self, kind: str, namespace: str, selector: str = "") -> list[JSON]:
        """The objects of ``kind`` in ``namespace`` matching the label ``selector``."""
        query = {"labelSelector": selector} if selector else {}
        answer = await self.kube.get(object_path(kind, namespace), **query)
        items: list[JSON] = answer.get("items") or []
        return items

    async def create(self, manifest: JSON) -> JSON:
        """Create ``manifest`` in its namespace (a taken name is a KubeError with 409)."""
        meta = manifest["metadata"]
        created: JSON = await self.kube.post(
            object_path(manifest["kind"], meta["namespace"]), manifest
        )
        return created

    async def replace(self, manifest: JSON) -> JSON:
        """Replace the object (``manifest`` carries the ``resourceVersion`` it replaces)."""
        meta = manifest["metadata"]
        replaced: JSON = await self.kube.put(
            object_path(manifest["kind"], meta["namespace"], meta["name"]), manifest
        )
        return replaced

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        """Apply a JSON merge patch; the object as it is now."""
        patched: JSON = await self.kube.merge_patch(object_path(kind, namespace, name), patch)
        return patched

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete with what it owns (background propagation); False when already gone."""
        try:
            await self.kube.delete(object_path(kind, namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def read_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> str | None:
        """The container's log as the API server cuts it; None when the pod is gone."""
        query: dict[str, Any] = {"container": container}
        if limit_bytes is not None:
            query["limitBytes"] = limit_bytes
        if tail_lines is not None:
            query["tailLines"] = tail_lines
        try:
            text: str = await self.kube.call(
                "GET", f"{object_path('Pod', namespace, pod)}/log", query=query, text=True
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return text

    async def nodes(self) -> list[JSON]:
        """Every node of the cluster (to tell which pods run on virtual nodes)."""
        answer = await self.kube.get("/api/v1/nodes")
        items: list[JSON] = answer.get("items") or []
        return items

    async def workloads(self, namespace: str) -> list[JSON]:
        """Kueue Workloads of the namespace (v1beta2, else v1beta1; none without Kueue)."""
        for version in WORKLOAD_VERSIONS:
            try:
                answer = await self.kube.get(
                    f"/apis/{WORKLOAD_GROUP}/{version}/namespaces/{namespace}/workloads"
                )
            except KubeError as exc:
                if exc.not_found:
                    continue
                raise
            items: list[JSON] = answer.get("items") or []
            return items
        return []

    async def patch_workload(self, namespace: str, workload: JSON, patch: JSON) -> bool:
        """Merge-patch a Workload in the version it was read in; False when it is gone."""
        version = workload.get("apiVersion", f"{WORKLOAD_GROUP}/{WORKLOAD_VERSIONS[0]}")
        path = (
            f"/apis/{WORKLOAD_GROUP}/{version.split('/')[-1]}/namespaces/{namespace}/"
            f"workloads/{workload['metadata']['name']}"
        )
        try:
            await self.kube.merge_patch(path, patch)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True
