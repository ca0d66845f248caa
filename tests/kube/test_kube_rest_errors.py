"""``KubeError`` names the object a failed call was about (kind, namespace, name), from the
path of a ``KubeRest`` call or given to ``kube_call`` around a typed client's call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client, config

from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeError, KubeRest, kube_call, object_of_path

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p1"},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/api/v1/namespaces/ns/pods/p1/log", None, ("Pod", "ns", "p1")),
        ("/apis/batch/v1/namespaces/bunshin/jobs/j1", None, ("Job", "bunshin", "j1")),
        ("/apis/batch/v1/namespaces/bunshin/jobs?labelSelector=a", None, ("Job", "bunshin", "")),
        ("/api/v1/namespaces/ns/secrets", {"metadata": {"name": "s"}}, ("Secret", "ns", "s")),
        ("/api/v1/nodes/n1", None, ("Node", "", "n1")),
        ("/api/v1/namespaces/ns", None, ("Namespace", "", "ns")),
        ("/apis/kueue.x-k8s.io/v1beta2/namespaces/b/workloads/w", None, ("Workload", "b", "w")),
        ("/apis/example.org/v1/widgets/w", None, ("widgets", "", "w")),
        ("/version", None, ("", "", "")),
    ],
)
def test_the_object_of_a_path(
    path: str, body: dict[str, object] | None, expected: tuple[str, str, str]
) -> None:
    assert object_of_path(path, body) == expected


def test_the_message_names_the_object_then_the_api_servers_answer() -> None:
    error = KubeError(409, "AlreadyExists", "taken", kind="Job", namespace="b", name="j")
    assert str(error) == "Job b/j: 409 AlreadyExists: taken" and error.conflict
    assert str(KubeError(500, "InternalError", "x", kind="Job", namespace="b")) == (
        "Job list in b: 500 InternalError: x"
    )
    assert str(KubeError(0, "Unreachable", "refused")) == "0 Unreachable: refused"


@pytest.fixture
async def api(emulator: Emulator) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        str(emulator.write_kubeconfig()), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield api_client


async def test_rest_errors_name_the_object_and_a_missing_read_is_none(
    api: client.ApiClient, emulator: Emulator
) -> None:
    rest = KubeRest(api)
    await rest.post("/api/v1/namespaces/default/pods", POD)
    with pytest.raises(KubeError) as taken:
        await rest.post("/api/v1/namespaces/default/pods", POD)
    assert (taken.value.kind, taken.value.namespace, taken.value.name) == ("Pod", "default", "p1")
    assert str(taken.value).startswith("Pod default/p1: 409 AlreadyExists: ")
    assert await rest.get_or_none("/api/v1/namespaces/default/pods/nothere") is None
    emulator.call(lambda: emulator.faults.fail_next("list", "pods", code=503))
    with pytest.raises(KubeError) as failed:
        await rest.get("/api/v1/namespaces/default/pods")
    assert failed.value.status == 503 and str(failed.value).startswith("Pod list in default: ")


async def test_typed_client_calls_raise_kube_errors_naming_the_object(
    api: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(KubeError) as missing:
        await kube_call(core.read_namespaced_secret("gone", "default"), "Secret", "default", "gone")
    assert missing.value.not_found and str(missing.value).startswith("Secret default/gone: 404")
    created = await kube_call(
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"a": "b"})
        ),
        "ConfigMap",
        "default",
        "cm",
    )
    assert created.metadata.name == "cm"
