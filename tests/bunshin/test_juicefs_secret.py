"""The service's JuiceFS credentials Secret, written through the real client into the emulator:
created once, rewritten when the password rotates, never taken over, safe under races."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, config

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.juicefs import JuiceFSPlan
from aiinfn_hub.bunshin.juicefs_secret import JuiceFSCredentials
from aiinfn_hub.config import PlatformConfig, validate_platform_config
from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeRest

ROOT = Path(__file__).resolve().parents[2]
PLAN = JuiceFSPlan("cms", "bunshin-juicefs-cms")
NAMESPACE = "bunshin"  # the jobs' own (examples/platform.yaml)
PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets/bunshin-juicefs-cms"


def platform(credentials: Path) -> PlatformConfig:
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"]["offload"]["juicefs"] = {
        "metadataUrl": "redis://meta.example.org:6379/1",
        "credentialsDir": str(credentials),
    }
    return validate_platform_config(data)


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[KubeRest]:
    cluster = load_cluster_file(ROOT / "examples" / "cluster.yaml")
    cluster = cluster.model_copy(update={"namespaces": [*cluster.namespaces, NAMESPACE]})
    with Emulator(cluster, state_dir=tmp_path / "emulator") as emulator:
        configuration = client.Configuration()
        await config.load_kube_config(
            str(emulator.write_kubeconfig(namespace=NAMESPACE)),
            client_configuration=configuration,
        )
        async with client.ApiClient(configuration) as api:
            kube = KubeRest(api)
            kube.emulator = emulator  # type: ignore[attr-defined]
            yield kube


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


async def test_written_once_then_rewritten_when_the_password_rotates(
    rest: KubeRest, tmp_path: Path
) -> None:
    (tmp_path / "cms.meta-password").write_text("first")
    jobs = JuiceFSCredentials(rest, platform(tmp_path))
    await jobs.ensure_juicefs_secret(PLAN)
    secret = await rest.get(PATH)
    assert decoded(secret) == {
        "metaurl": "redis://meta.example.org:6379/1",
        "meta-password": "first",
    }
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bunshin"
    await jobs.ensure_juicefs_secret(PLAN)  # unchanged: nothing written
    assert (await rest.get(PATH))["metadata"]["resourceVersion"] == secret["metadata"][
        "resourceVersion"
    ]
    (tmp_path / "cms.meta-password").write_text("second")
    await jobs.ensure_juicefs_secret(PLAN)
    assert decoded(await rest.get(PATH))["meta-password"] == "second"
    # someone edits it by hand: a new replica (no memory of it) puts it right
    edited = await rest.get(PATH)
    edited["data"]["meta-password"] = base64.b64encode(b"tampered").decode()
    await rest.call("PUT", PATH, body=edited)
    await JuiceFSCredentials(rest, platform(tmp_path)).ensure_juicefs_secret(PLAN)
    assert decoded(await rest.get(PATH))["meta-password"] == "second"


async def test_a_secret_of_that_name_owned_by_someone_else_is_left_alone(
    rest: KubeRest, tmp_path: Path
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bunshin-juicefs-cms", "namespace": NAMESPACE},
        "stringData": {"metaurl": "redis://theirs:6379/0"},
    }
    await rest.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", foreign)
    with pytest.raises(BunshinError) as exc:
        await JuiceFSCredentials(rest, platform(tmp_path)).ensure_juicefs_secret(PLAN)
    assert exc.value.status == 500 and "belongs to someone else" in exc.value.message
    assert "theirs" not in exc.value.message
    assert decoded(await rest.get(PATH)) == {"metaurl": "redis://theirs:6379/0"}


async def test_two_replicas_writing_at_once_both_succeed(rest: KubeRest, tmp_path: Path) -> None:
    (tmp_path / "meta-password").write_text("shared")
    first, second = (
        JuiceFSCredentials(rest, platform(tmp_path)),
        JuiceFSCredentials(rest, platform(tmp_path)),
    )
    await asyncio.gather(*(j.ensure_juicefs_secret(PLAN) for j in (first, second, first)))
    assert decoded(await rest.get(PATH))["meta-password"] == "shared"


async def test_a_failing_cluster_is_a_clear_503(rest: KubeRest, tmp_path: Path) -> None:
    emulator: Emulator = rest.emulator  # type: ignore[attr-defined]
    emulator.call(lambda: emulator.faults.fail_next("create", "secrets", code=500))
    with pytest.raises(BunshinError) as exc:
        await JuiceFSCredentials(rest, platform(tmp_path)).ensure_juicefs_secret(PLAN)
    assert exc.value.status == 503 and "credentials" in exc.value.message
    await JuiceFSCredentials(rest, platform(tmp_path)).ensure_juicefs_secret(
        PLAN
    )  # the next try works
    assert "meta-password" not in decoded(await rest.get(PATH))
