"""Pods with a network of their own (``pod_network="netns"``): contract tests against a whole
emulator (API, kubelet, kubectl), plus the removal of what a dead emulator left.

Each process-mode pod gets a network namespace with its IP on the emulator's private bridge:
two pods bind the same port on 0.0.0.0 and on 127.0.0.1; each answers at its own pod IP; in
``kubectl exec`` and exec probes ``localhost`` is the pod's; ``kubectl port-forward`` reaches a
server bound to the pod's 127.0.0.1 only; the host's 127.0.0.1 is out of a pod's reach; and
nothing is left once the emulator stops. Needs root and iproute2's ``ip`` (skipped otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_client import RawClient, wait_until
from stream_fixtures import NS, PY, StreamCluster, needs_kubectl, process_pod

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.controllers.addresses import SHARED, PodAddressPool
from aiinfn_hub.dev.emulator.controllers.pod_network import NamespaceNetwork
from aiinfn_hub.dev.emulator.controllers.pod_outbound import (
    SLIRP_HOST_LOOPBACK,
    Outbound,
    OutboundError,
    outbound_unavailable,
)
from aiinfn_hub.dev.emulator.runtime import Emulator

JSON = dict[str, Any]


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode:
        return "ip netns does not work here"
    return None


_REASON = _why_no_namespaces()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

# answers its pod's name over HTTP on ADDRESS:8888
SERVER = """
import http.server, os, sys
class Reply(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 8888), Reply).serve_forever()
"""
# prints what http://localhost:PORT/ answers (exit 1 when nothing answers)
FETCH = (
    "import sys, urllib.request; "
    "print(urllib.request.urlopen(f'http://localhost:{sys.argv[1]}/', timeout=3).read().decode())"
)
# exit 0 when something accepts on 127.0.0.1:PORT, 1 when refused
DIAL = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3).close()\n"
    "except OSError as exc:\n"
    "    print(exc); sys.exit(1)\n"
)
# exit 0 when something accepts on HOST:PORT, 1 (with the error) otherwise
DIAL_TO = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n"
    "except OSError as exc:\n"
    "    print(exc); sys.exit(1)\n"
)
# prints the HTTP status of GET URL
FETCH_URL = (
    "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=20).status)"
)
POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def server_pod(name: str, bind: str) -> JSON:
    """A pod serving its name on ``bind``:8888; ready by an httpGet probe (over the bridge)
    when bound everywhere, by an exec probe (inside the pod) when bound to its localhost."""
    probe = (
        {"httpGet": {"port": 8888, "path": "/"}}
        if bind == "0.0.0.0"
        else {"exec": {"command": [PY, "-c", FETCH, "8888"]}}
    )
    return process_pod(
        name,
        [
            {
                "name": "server",
                "image": "python",
                "command": [PY, "-c", SERVER, bind],
                "env": [POD_NAME_ENV],
                "readinessProbe": probe,
            }
        ],
    )


def start_netns_cluster(base: Path) -> StreamCluster:
    cluster = ClusterSpec(nodes=[NodeSpec(name="node-1", capacity={"cpu": "8", "memory": "16Gi"})])
    emulator = Emulator(
        cluster, state_dir=base / "emulator", run_annotated_processes=True, pod_network="netns"
    )
    emulator.start()
    home = base / "home"
    home.mkdir()
    return StreamCluster(emulator, RawClient(emulator.access), emulator.write_kubeconfig(), home)


def network_index(cluster: StreamCluster) -> int:
    network = cluster.emulator.call(lambda: cluster.emulator.controllers.kubelet.network)
    assert isinstance(network, NamespaceNetwork)
    return network.index


def netns_names() -> list[str]:
    text = subprocess.run(
        ["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [entry["name"] for entry in json.loads(text or "[]")]


def link_names() -> list[str]:
    text = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [link["ifname"] for link in json.loads(text)]


def named_for(index: int, names: list[str]) -> list[str]:
    """The names an emulator holding ``index`` makes: ``aiinfn-N`` and ``aiinfn-N-XXXX``."""
    return [n for n in names if re.fullmatch(rf"aiinfn-{index}(-[0-9a-f]{{4}})?", n)]


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamCluster]:
    """Four pods on one port: two bound to 0.0.0.0:8888, two to 127.0.0.1:8888, all ready."""
    cluster = start_netns_cluster(tmp_path_factory.mktemp("netns"))
    try:
        for name, bind in (
            ("open-a", "0.0.0.0"),
            ("open-b", "0.0.0.0"),
            ("local-a", "127.0.0.1"),
            ("local-b", "127.0.0.1"),
        ):
            cluster.create(server_pod(name, bind))
        for name in ("open-a", "open-b", "local-a", "local-b"):
            cluster.running(name)
        yield cluster
    finally:
        cluster.emulator.stop()


def test_pods_bound_to_one_port_each_answer_at_their_own_ip(pods: StreamCluster) -> None:
    index = network_index(pods)
    ips = {name: pods.pod(name)["status"]["podIP"] for name in ("open-a", "open-b")}
    assert all(ip.startswith(f"100.{index}.") for ip in ips.values())
    assert ips["open-a"] != ips["open-b"]
    for name, ip in ips.items():
        assert http_get(f"http://{ip}:8888/") == name


def test_a_server_on_the_pods_localhost_is_out_of_the_hosts_reach(pods: StreamCluster) -> None:
    ip = pods.pod("local-a")["status"]["podIP"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 8888), timeout=5).close()


@needs_kubectl
@pytest.mark.parametrize("name", ["open-a", "open-b", "local-a", "local-b"])
def test_localhost_in_kubectl_exec_is_the_pods_own(pods: StreamCluster, name: str) -> None:
    done = pods.kubectl("exec", name, "--", PY, "-c", FETCH, "8888")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == name


@needs_kubectl
def test_a_terminal_exec_runs_in_the_pod_too(pods: StreamCluster) -> None:
    code, output = pods.kubectl_in_terminal(
        "exec", "-it", "local-a", "--", PY, "-c", FETCH, "8888", keys=b"", until=b"local-a"
    )
    assert code == 0, output
    assert b"local-a" in output


def test_simulated_pods_get_an_address_of_the_network_and_no_namespace(
    pods: StreamCluster,
) -> None:
    index = network_index(pods)
    before = named_for(index, netns_names())
    pods.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "simulated"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep"]}]},
        }
    )
    pod = pods.running("simulated")
    assert pod["status"]["podIP"].startswith(f"100.{index}.")
    assert named_for(index, netns_names()) == before


@needs_kubectl
def test_a_pod_cannot_reach_the_hosts_loopback(pods: StreamCluster) -> None:
    with socket.socket() as host_service:
        host_service.bind(("127.0.0.1", 0))
        host_service.listen()
        port = host_service.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the host reaches it
        done = pods.kubectl("exec", "open-a", "--", PY, "-c", DIAL, str(port))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert b"Connection refused" in done.stdout


needs_outbound = pytest.mark.skipif(
    outbound_unavailable() is not None, reason=f"pods cannot get out: {outbound_unavailable()}"
)


def _external_address() -> str | None:
    """An IPv4 address of this machine on neither loopback nor an emulator's bridge."""
    text = subprocess.run(
        ["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for link in json.loads(text):
        if link["ifname"] == "lo" or str(link["ifname"]).startswith("aiinfn-"):
            continue
        for info in link.get("addr_info", []):
            if not info["local"].startswith("127."):
                return str(info["local"])
    return None


def _slirps(index: int) -> list[int]:
    """The slirp4netns processes serving namespaces of network ``index``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"slirp4netns") and any(
                    re.fullmatch(rb"/run/netns/aiinfn-%d-[0-9a-f]{4}" % index, arg) for arg in argv
                ):
                    found.append(int(entry.name))
    return found


@needs_kubectl
@needs_outbound
def test_a_pod_gets_out_through_its_own_slirp_not_through_this_machine(
    pods: StreamCluster,
) -> None:
    """A connection to this machine's external address arrives from this machine itself
    (slirp4netns made it), not from the pod's IP (which would mean the bridge routed it)."""
    address = _external_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    index = network_index(pods)
    assert len(_slirps(index)) == len(named_for(index, netns_names())) >= 4  # one per netns
    with socket.socket() as service:
        service.bind((address, 0))
        service.listen()
        service.settimeout(30)
        port = service.getsockname()[1]
        done = pods.kubectl("exec", "open-a", "--", PY, "-c", DIAL_TO, address, str(port))
        assert done.returncode == 0, (done.stdout, done.stderr)
        accepted, (peer, _) = service.accept()
        accepted.close()
    assert peer != pods.pod("open-a")["status"]["podIP"]
    assert peer == address


@needs_kubectl
@needs_outbound
def test_a_pod_cannot_reach_the_hosts_loopback_through_slirp_either(
    pods: StreamCluster,
) -> None:
    with socket.socket() as host_service:
        host_service.bind(("127.0.0.1", 0))
        host_service.listen()
        port = host_service.getsockname()[1]
        done = pods.kubectl(
            "exec", "open-b", "--", PY, "-c", DIAL_TO, SLIRP_HOST_LOOPBACK, str(port)
        )
    assert done.returncode == 1, (done.stdout, done.stderr)


@needs_outbound
def test_a_slirp4netns_that_cannot_start_says_why() -> None:
    with pytest.raises(OutboundError) as failure:
        asyncio.run(Outbound.start(Path("/run/netns/aiinfn-no-such-namespace")))
    message = str(failure.value)
    assert message.startswith("slirp4netns failed for aiinfn-no-such-namespace: ")
    # slirp4netns's own words (the path is missing), not its usage text
    assert message.endswith("No such file or directory") and "Usage" not in message, message


def _host_reaches_pypi() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=20) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@needs_kubectl
@needs_outbound
def test_a_pod_resolves_names_and_fetches_from_the_internet_as_on_a_cluster(
    pods: StreamCluster,
) -> None:
    """What ``pip install`` in a notebook needs: DNS (this machine's resolver) and HTTPS."""
    if not _host_reaches_pypi():
        pytest.skip("this machine itself cannot reach pypi.org")
    done = pods.kubectl(
        "exec", "local-a", "--", PY, "-c", FETCH_URL, "https://pypi.org/simple/pip/", timeout=60
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.decode().strip() == "200"


@needs_kubectl
def test_kubectl_port_forward_reaches_a_server_on_the_pods_localhost(
    pods: StreamCluster,
) -> None:
    forward = pods.kubectl_popen("port-forward", "pod/local-b", ":8888")
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline().decode()
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8888", line)
        assert match, line
        assert http_get(f"http://127.0.0.1:{match.group(1)}/") == "local-b"
    finally:
        forward.terminate()
        forward.communicate(timeout=15)


def test_a_failed_pod_network_is_reported_and_retried(pods: StreamCluster) -> None:
    emulator = pods.emulator

    def fail_next() -> None:
        network = emulator.controllers.kubelet.network
        assert isinstance(network, NamespaceNetwork)
        network.fail_next_sandbox("testing: no veth today")

    emulator.call(fail_next)
    pods.create(server_pod("retried", "0.0.0.0"))

    def failure() -> JSON | None:
        code, body, _ = pods.raw.get(
            f"{NS}/events?fieldSelector=involvedObject.name=retried,reason=FailedCreatePodSandBox"
        )
        assert code == 200, body
        items = body["items"]
        return items[0] if items else None

    event = wait_until(failure, 15, "a FailedCreatePodSandBox event")
    assert event["type"] == "Warning"
    assert event["message"].startswith("Failed to create pod sandbox: rpc error:")
    assert event["message"].endswith("failed (add): testing: no veth today")
    pod = pods.running("retried")  # the kubelet tried again
    assert http_get(f"http://{pod['status']['podIP']}:8888/") == "retried"


def test_stopping_the_emulator_removes_its_namespaces_veths_and_bridge(tmp_path: Path) -> None:
    cluster = start_netns_cluster(tmp_path)
    try:
        index = network_index(cluster)
        cluster.create(server_pod("only", "0.0.0.0"))
        cluster.running("only")
        assert len(named_for(index, netns_names())) == 1
        assert len(named_for(index, link_names())) == 2  # the bridge and the pod's veth
        forwarding = Path(f"/proc/sys/net/ipv4/conf/aiinfn-{index}/forwarding")
        assert forwarding.read_text().strip() == "0"  # this machine routes nothing of theirs
    finally:
        cluster.emulator.stop()
    assert named_for(index, netns_names()) == []
    assert named_for(index, link_names()) == []
    assert _slirps(index) == []


FAILING_SLIRP = "#!/bin/sh\necho 'open(/dev/net/tun): Operation not permitted'\nexit 1\n"


@pytest.mark.parametrize(
    ("slirp", "reason"),
    [
        (None, "slirp4netns is not installed"),
        (FAILING_SLIRP, "open(/dev/net/tun): Operation not permitted"),
    ],
    ids=["absent", "failing"],
)
def test_without_a_working_slirp4netns_pods_reach_this_machine_only_and_it_is_said(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    slirp: str | None,
    reason: str,
) -> None:
    """Not installed, or installed but unable to run (no CAP_NET_ADMIN in a container, say):
    pods still start, the gateway their default route; the description says why (a failure
    also in one warning, however many pods)."""
    if slirp is not None and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        pytest.skip("/dev/net/tun cannot be opened here")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ip").symlink_to(str(shutil.which("ip")))
    if slirp is not None:
        (tools / "slirp4netns").write_text(slirp)
        (tools / "slirp4netns").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    cluster = start_netns_cluster(tmp_path)
    try:
        for name in ("first", "second"):
            cluster.create(server_pod(name, "0.0.0.0"))
            pod = cluster.running(name)
            assert http_get(f"http://{pod['status']['podIP']}:8888/") == name
        network = cluster.emulator.call(lambda: cluster.emulator.controllers.kubelet.network)
        assert network.description.endswith(f"{reason})"), network.description
        assert ", nothing beyond this machine (" in network.description
        warnings = [r for r in caplog.records if "reach nothing beyond" in r.getMessage()]
        assert len(warnings) == (0 if slirp is None else 1)
        namespaces = named_for(network_index(cluster), netns_names())
        assert len(namespaces) == 2
        for netns in namespaces:
            routes = subprocess.run(
                [str(tools / "ip"), "-n", netns, "route", "show", "default"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert routes.split()[:3] == ["default", "via", network.gateway], routes
    finally:
        cluster.emulator.stop()


def _pids_in(netns: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(pid) for pid in listed.stdout.split()]


def _runs_server(pid: int) -> bool:
    try:
        return b"http.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def test_a_dead_emulators_leftovers_go_and_nothing_else_is_touched() -> None:
    # the index a new emulator would claim (held for a moment, as a dead emulator held it)
    held = PodAddressPool(space=SHARED)
    index = held.network
    ours_netns, ours_veth = f"aiinfn-{index}-0002", f"aiinfn-{index}-0002"
    others_netns = [f"aiinfn-{index}0-0002", f"aiinfn-{index}-other", "aiinfn-test-keep"]
    other_link = f"aiinfn-{index}-00ff"  # named like a pod veth, not a veth: not ours
    try:
        _ip("link", "add", f"aiinfn-{index}", "type", "bridge")
        _ip("netns", "add", ours_netns)
        _ip("link", "add", ours_veth, "type", "veth", "peer", "name", "eth0", "netns", ours_netns)
        _ip("link", "set", ours_veth, "master", f"aiinfn-{index}")
        for name in others_netns:
            _ip("netns", "add", name)
        _ip("link", "add", other_link, "type", "bridge")
        held.close()  # the dead emulator's lock is gone with it

        network = NamespaceNetwork(network=index)  # the next start with the same index
        try:
            assert ours_netns not in netns_names()
            assert set(named_for(index, link_names())) == {f"aiinfn-{index}", other_link}
        finally:
            asyncio.run(network.close())
        assert set(others_netns) <= set(netns_names())
        assert named_for(index, link_names()) == [other_link]
    finally:
        held.close()
        for name in [ours_netns, *others_netns]:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        for name in (ours_veth, other_link, f"aiinfn-{index}"):
            subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)


@needs_kubectl
def test_a_killed_emulators_pod_network_is_removed_by_the_next_with_its_index(
    tmp_path: Path,
) -> None:
    """SIGKILL leaves the bridge, the veth and the namespace (with the pod's process still in
    it); the next network opened with that index removes them all."""
    log_path = tmp_path / "emulator.log"
    kubeconfig = tmp_path / "kubeconfig"
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text("nodes:\n  - name: node-1\n    capacity: {cpu: '8', memory: 16Gi}\n")
    with log_path.open("wb") as log:
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiinfn_hub.dev.cli",
                "emulator",
                "--port=0",
                "--run-processes",
                "--pod-network=netns",
                f"--cluster={cluster_file}",
                f"--state-dir={tmp_path / 'state'}",
                f"--kubeconfig={kubeconfig}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    leftovers: list[str] = []
    orphans: list[int] = []
    index = -1
    try:
        started = wait_until(
            lambda: (
                re.search(rb"on bridge aiinfn-(\d+)", log_path.read_bytes())
                if b"kubectl get nodes" in log_path.read_bytes()
                else None
            ),
            30,
            "the emulator serving",
        )
        index = int(started.group(1))
        kubectl = [str(shutil.which("kubectl")), f"--kubeconfig={kubeconfig}"]
        subprocess.run(
            [
                *kubectl,
                "run",
                "left",
                "--image=python",
                "--command",
                "--",
                PY,
                "-c",
                SERVER,
                "0.0.0.0",
            ],
            check=True,
            capture_output=True,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        leftovers = wait_until(lambda: named_for(index, netns_names()), 30, "the pod's netns")
        # the pod's server, not an `ip` the network's setup may be running in the namespace
        orphans = wait_until(
            lambda: [pid for pid in _pids_in(leftovers[0]) if _runs_server(pid)],
            30,
            "the pod's process",
        )
        assert outbound_unavailable() is not None or _slirps(index)
        emulator.kill()
        emulator.wait(timeout=10)
        # its slirp4netns ends with it (its exit pipe closed), never left for a dead pod
        wait_until(lambda: not _slirps(index), 30, "the pod's slirp4netns to end")
        assert len(named_for(index, link_names())) == 2
        # the pod's process outlived its emulator
        assert set(orphans) <= set(_pids_in(leftovers[0]))

        network = NamespaceNetwork(network=index)
        try:
            assert named_for(index, netns_names()) == []
            assert named_for(index, link_names()) == [f"aiinfn-{index}"]  # the new bridge
        finally:
            asyncio.run(network.close())
        assert named_for(index, link_names()) == []
    finally:
        if emulator.poll() is None:
            emulator.kill()
            emulator.wait(timeout=10)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for name in leftovers:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        if index >= 0:
            for name in named_for(index, link_names()):
                subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
