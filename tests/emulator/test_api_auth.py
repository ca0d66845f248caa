"""Who may use the emulator's HTTP API: only requests with its bearer token, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_fixtures import KUBECTL, NS, ApiServer, pod_body, running_api

from aiinfn_hub.dev.emulator.access import bearer_token_matches, is_loopback_host, new_token
from aiinfn_hub.dev.emulator.cluster import ClusterSpec
from aiinfn_hub.dev.emulator.resources import PODS
from aiinfn_hub.dev.emulator.runtime import Emulator, NonLoopbackHostError

# kube-apiserver's answer, byte for byte in content, to a request without valid credentials
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api(validate=False) as server:
        yield server


# -- pure rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),  # the scheme is case-insensitive (RFC 7235)
        ("  Bearer   s3cret  ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer S3CRET", False),
        ("Bearer s3crét", False),  # non-ASCII must not raise
    ],
)
def test_only_the_exact_bearer_token_passes(header: str | None, expected: bool) -> None:
    assert bearer_token_matches(header, "s3cret") is expected


def test_an_empty_token_lets_nobody_in() -> None:
    assert not bearer_token_matches("Bearer ", "")
    assert not bearer_token_matches("Bearer x", "")


def test_tokens_are_long_and_never_repeat() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 40 for t in tokens)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.10", False),
        ("::ffff:10.0.0.1", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_the_emulator_refuses_a_reachable_address_unless_told(tmp_path: Path) -> None:
    with pytest.raises(NonLoopbackHostError, match="insecure_listen"):
        Emulator(ClusterSpec(), host="0.0.0.0", state_dir=tmp_path)
    # allowed when asked for explicitly (not started here: tests never listen on every address)
    assert Emulator(ClusterSpec(), host="0.0.0.0", state_dir=tmp_path, insecure_listen=True)


def test_each_start_has_its_own_token_in_its_kubeconfig(tmp_path: Path) -> None:
    import yaml

    seen = []
    for run in ("first", "second"):
        with Emulator(ClusterSpec(), state_dir=tmp_path / run, validate=False) as emu:
            doc = yaml.safe_load(emu.write_kubeconfig().read_text())
            assert doc["users"][0]["user"] == {"token": emu.token}
            seen.append(emu.token)
    assert seen[0] != seen[1]
    with pytest.raises(RuntimeError, match="before it starts"):
        _ = Emulator(ClusterSpec(), state_dir=tmp_path / "never").token


# -- the HTTP API ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{NS}/pods"),
        ("GET", "/api"),
        ("GET", "/apis"),
        ("GET", "/version"),
        ("GET", "/healthz"),
        ("GET", "/openapi/v3"),
        ("GET", "/no/such/path"),
        ("POST", "/_emulator/faults"),
        ("DELETE", f"{NS}/pods/x"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic YWRtaW46YWRtaW4="])
async def test_every_path_answers_401_without_the_token(
    api: ApiServer, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"action": "fail", "verb": "create", "resource": "pods", "code": 500}
    resp = await api.request(
        method, path, body if method == "POST" else None, headers=headers, auth=False
    )
    assert (resp.code, resp.body) == (401, UNAUTHORIZED)
    assert resp.headers["Content-Type"] == "application/json"


async def test_a_refused_write_changes_nothing(api: ApiServer) -> None:
    before = len(api.store.list(PODS, "default"))
    resp = await api.post(f"{NS}/pods", pod_body("intruder"), auth=False)
    assert resp.code == 401
    refused = await api.post(
        "/_emulator/faults",
        {"action": "fail", "verb": "list", "resource": "pods", "code": 500},
        auth=False,
    )
    assert refused.code == 401
    assert len(api.store.list(PODS, "default")) == before
    # no fault was armed by the refused request: an authorised list still works
    assert (await api.get(f"{NS}/pods")).code == 200


async def test_a_refused_watch_opens_no_stream(api: ApiServer) -> None:
    resp = await api.get(f"{NS}/pods?watch=true&timeoutSeconds=5", auth=False)
    assert (resp.code, resp.body) == (401, UNAUTHORIZED)
    assert not api.store.open_watchers()


async def test_a_large_body_is_refused_before_it_is_sent(api: ApiServer) -> None:
    # a client without the token announces 50 MB and sends none of it: the answer comes at
    # once, so the server neither waits for nor buffers a body it will refuse
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port, ssl=api.ssl_context)
    writer.write(
        f"POST {NS}/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 50000000\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 401 ")


async def test_the_token_opens_every_path(api: ApiServer) -> None:
    for path in ("/healthz", "/version", "/api", f"{NS}/pods"):
        assert (await api.get(path)).code == 200, path


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_with_a_wrong_token_is_told_to_log_in(api: ApiServer, tmp_path: Path) -> None:
    assert KUBECTL is not None
    flags = api.kubectl_flags(tmp_path)
    flags[flags.index("--token") + 1] = "a-token-from-an-old-run"
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        *flags,
        "get",
        "pods",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(tmp_path), "KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    assert "You must be logged in to the server" in err.decode()  # as with a real cluster
    code, _, err_with_token = await api.kubectl(tmp_path, "get", "pods", "-o", "name")
    assert code == 0, err_with_token
