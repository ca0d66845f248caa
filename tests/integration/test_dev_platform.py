"""``aiinfn-dev dev`` as a user runs it: one command, a banner, a working hub, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dev_helpers import BANNER_END, Dev, children_of, in_network, started_dev
from iam_platform import provider_sign_in, wait_for

from aiinfn_hub.dev.emulator.controllers.pod_network import namespaces_unavailable
from aiinfn_hub.dev.emulator.controllers.pod_outbound import outbound_unavailable
from aiinfn_hub.dev.processes import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    with started_dev(tmp_path_factory.mktemp("dev") / "state", free_port()) as running:
        yield running


def sign_in(dev: Dev, user: str, password: str) -> tuple[requests.Session, requests.Response]:
    return provider_sign_in(dev.url, user, password)


def run_dev_once(tmp_path: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    """``aiinfn-dev dev`` expected to stop at once (it is given no time to serve)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "aiinfn_hub.dev.cli",
            "dev",
            "--state-dir",
            str(tmp_path / "s"),
            "--port",
            str(port),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_hub_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``jupyterhub -f jupyterhub_config.py`` with ``env``, expected to stop at once."""
    return subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_banner_names_the_url_accounts_kubectl_and_logs(dev: Dev) -> None:
    out = dev.output()
    assert f"aiinfn-hub local platform: {dev.url}" in out
    assert "alice  / alice-pw" in out and "admin  / admin-pw" in out
    assert "export KUBECONFIG=" in out and "hub.log" in out
    # pods call the local S3: at their gateway when they have network namespaces
    reached_at = dev.pod_gateway or "127.0.0.1"
    assert dev.banner_line("buckets").startswith(f"local S3 at http://{reached_at}:")


def test_the_banner_says_which_pod_network_and_why(dev: Dev) -> None:
    pods = dev.banner_line("pods")
    reason = namespaces_unavailable()
    if reason is None:  # this machine allows network namespaces: auto takes them
        no_way_out = outbound_unavailable()
        way_out = (
            "out through slirp4netns"
            if no_way_out is None
            else f"nothing beyond this machine ({no_way_out})"
        )
        assert re.fullmatch(
            r"a network namespace per pod, 100\.(\d+)\.0\.0/16 on bridge aiinfn-\1, "
            + re.escape(way_out)
            + r"; what pods call listens on 100\.\1\.0\.1",
            pods,
        ), pods
    else:
        assert pods.endswith(f"no network namespaces ({reason})"), pods


def test_every_demo_user_and_demo_project_has_a_bucket_with_a_first_file(dev: Dev) -> None:
    from aiinfn_hub.config import load_platform_config

    found = re.search(r"^buckets:  local S3 at (\S+)$", dev.output(), re.M)
    assert found, dev.output()
    config = load_platform_config(ROOT / "examples" / "platform.yaml")
    projects = {p.storage.bucket for p in config.projects.values() if p.storage.bucket}
    assert {"ml-infn-datasets", "fpga-lab-data"} <= projects
    users = {"alice", "bruno", "admin", "guest"}
    # read with rclone, as the sidecar does (moto takes any signed request)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env |= {
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_LOCAL_TYPE": "s3",
        "RCLONE_CONFIG_LOCAL_PROVIDER": "Other",
        "RCLONE_CONFIG_LOCAL_ENDPOINT": found.group(1),
        "RCLONE_CONFIG_LOCAL_ACCESS_KEY_ID": "local",
        "RCLONE_CONFIG_LOCAL_SECRET_ACCESS_KEY": "local",
    }
    for bucket in sorted(projects | users):
        readme = subprocess.run(
            ["rclone", "cat", f"local:{bucket}/README.txt"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert readme.returncode == 0, f"{bucket}: {readme.stderr}"
        first = "Your bucket." if bucket in users else "The bucket of project "
        assert readme.stdout.startswith(first), (bucket, readme.stdout)


def test_a_demo_user_signs_in_and_gets_a_jupyterlab(dev: Dev) -> None:
    session = dev.start_server("alice", "alice-pw")
    contents = session.get(f"{dev.url}/user/alice/api/contents", timeout=10).json()
    names = {item["name"] for item in contents["content"]}
    assert {"projects", "buckets"} <= names, names
    homes = dev.state / "emulator" / "volumes" / "nfs" / "nfs.local" / "exports" / "homes"
    assert (homes / "alice").stat().st_mode & 0o777 == 0o700
    # her bucket, mounted by the sidecar in her pod: STS and S3 answered it from there
    assert dev.bucket_readme(session, "alice") == "Your bucket.\n"


@pytest.mark.timeout(300)  # two servers to start
def test_two_users_servers_have_network_namespaces_of_their_own(dev: Dev) -> None:
    """Where pods get namespaces (root, ip), alice's and bruno's servers each have their own
    network, with an IP of the pods' /16, and still reach what they call at the gateway."""
    reason = namespaces_unavailable()
    if reason is not None:
        assert "no network namespaces" in dev.banner_line("pods")
        pytest.skip(f"pods share this machine's network here: {reason}")
    gateway = dev.pod_gateway
    assert gateway is not None, dev.banner_line("pods")
    for user in ("alice", "bruno"):
        dev.start_server(user, f"{user}-pw")
    networks = {"this machine": os.readlink("/proc/self/ns/net")}
    for user in ("alice", "bruno"):
        pod = dev.server_pod(user)
        ip = pod["status"]["podIP"]
        assert in_network(ip, gateway) and ip != gateway, (user, ip, gateway)
        pod_name = f"jupyter-{user}"
        in_pod = ("exec", "-n", "jupyterhub", pod_name, "-c", "notebook", "--")
        networks[user] = dev.kubectl(*in_pod, "readlink", "/proc/self/ns/net").strip()
        env = dict(
            line.split("=", 1) for line in dev.kubectl(*in_pod, "env").splitlines() if "=" in line
        )
        assert env["JUPYTERHUB_API_URL"].startswith(f"http://{gateway}:"), env
        assert env["BUNSHIN_URL"].startswith(f"http://{gateway}:"), env
        # the `bunshin` command in a terminal of the server reaches the service
        dev.kubectl(*in_pod, "bunshin", "ls")
    assert len(set(networks.values())) == 3, networks
    # alice's server answers on her pod's localhost too, where port-forward dials
    with port_forward(dev, "jupyter-alice", 8888) as local:
        api = requests.get(f"http://127.0.0.1:{local}/user/alice/api", timeout=10)
        assert api.status_code == 200 and "version" in api.json(), api.text


@contextlib.contextmanager
def port_forward(dev: Dev, pod: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to ``port`` of ``pod`` for the block; the local port."""
    forward = subprocess.Popen(
        ["kubectl", "port-forward", "-n", "jupyterhub", f"pod/{pod}", f":{port}"],
        env={**os.environ, "KUBECONFIG": str(dev.state / "emulator" / "kubeconfig")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8888"
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", first)
        assert found, first
        yield int(found.group(1))
    finally:
        forward.terminate()
        forward.wait(10)


def test_guest_in_no_project_is_refused(dev: Dev) -> None:
    _, page = sign_in(dev, "guest", "guest-pw")
    assert page.status_code == 403 and "not in a research project" in page.text


def test_ctrl_c_stops_everything_and_a_second_run_reuses_the_state(dev: Dev) -> None:
    assert children_of(dev.state)
    gateway = dev.pod_gateway
    assert dev.interrupt(times=2) == 0  # a second Ctrl-C does not cut the stopping short
    wait_for(lambda: not children_of(dev.state), 30, "every child process to end")
    assert str(dev.state) not in Path("/proc/mounts").read_text()  # no bucket mount left
    if gateway is not None:  # nor the pods' bridge and namespaces
        index = gateway.split(".")[1]
        assert not Path(f"/sys/class/net/aiinfn-{index}").exists()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"aiinfn-{index}-" not in left, left
    again = Dev(dev.state, dev.port)
    try:
        wait_for(
            lambda: BANNER_END in again.output() or again.process.poll() is not None,
            120,
            "the second banner",
        )
        assert again.process.poll() is None, again.output()
        # alice's home from the first run is still there
        homes = dev.state / "emulator" / "volumes" / "nfs" / "nfs.local" / "exports" / "homes"
        assert (homes / "alice").is_dir()
    finally:
        assert again.interrupt() == 0
    wait_for(lambda: not children_of(dev.state), 30, "every child process to end")


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_dev_once(tmp_path, port)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"aiinfn-dev dev: port {port} is busy: stop what uses it or pass --port"
    )


def test_the_hub_config_stops_with_the_path_of_a_bad_key(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["projects"]["cms"]["limits"]["maxGPUs"] = 1
    bad = tmp_path / "platform.yaml"
    bad.write_text(yaml.safe_dump(data))
    env = {
        "PATH": os.environ["PATH"],
        "AIINFN_PLATFORM_CONFIG": str(bad),
        "AIINFN_IAM_ISSUER": "http://127.0.0.1:1",
        "AIINFN_IAM_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
    }
    done = run_hub_config(tmp_path, env)
    assert done.returncode != 0
    assert 'projects.cms.limits.maxGPUs: unknown key; did you mean "maxGpus"?' in done.stderr
    del env["AIINFN_IAM_ISSUER"]
    bad.write_text((ROOT / "examples" / "platform.yaml").read_text())
    done = run_hub_config(tmp_path, env)
    assert done.returncode != 0 and "set AIINFN_IAM_ISSUER" in done.stderr


def test_the_hub_api_listens_on_the_one_address_given_never_on_every_interface(
    tmp_path: Path,
) -> None:
    from traitlets.config import Config

    from aiinfn_hub.hub_environment import ConfigurationError, configure_from_environment

    def configured(**extra: str) -> Config:
        c = Config()
        c.JupyterHub.services, c.JupyterHub.load_roles, c.JupyterHub.custom_scopes = [], [], {}
        env = {
            "AIINFN_PLATFORM_CONFIG": str(ROOT / "examples" / "platform.yaml"),
            "AIINFN_IAM_ISSUER": "http://127.0.0.1:1",
            "AIINFN_IAM_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
            "AIINFN_HUB_PORT": "8000",
        }
        configure_from_environment(c, {**env, **extra})
        return c

    assert configured().JupyterHub.hub_ip == "127.0.0.1"
    assert configured(AIINFN_LOCAL_PROCESSES="1").AIInfnSpawner.args[0] == (
        "--ServerApp.ip=$(POD_IP)"
    )
    in_namespaces = configured(AIINFN_LOCAL_PROCESSES="1", AIINFN_SERVER_IP="0.0.0.0")
    assert in_namespaces.AIInfnSpawner.args[0] == "--ServerApp.ip=0.0.0.0"
    assert configured(AIINFN_HUB_API_IP="100.77.0.1").JupyterHub.hub_ip == "100.77.0.1"
    for everywhere in ("0.0.0.0", "::", " "):
        with pytest.raises(ConfigurationError, match="would open the hub's API to every network"):
            configured(AIINFN_HUB_API_IP=everywhere)


def _bind_mount(source: Path, point: Path) -> None:
    """``mount --bind`` (a stand-in for a FUSE mount a killed sidecar left), or skip."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    done = subprocess.run(
        ["mount", "--bind", str(source), str(point)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {done.stderr.strip()}")


def test_reset_never_deletes_through_a_mount_left_in_the_state(tmp_path: Path) -> None:
    import socket

    from aiinfn_hub.dev.emulator.controllers.volumes import mounts_below
    from aiinfn_hub.dev.platform import DevError, DevPlatform

    # a bucket's files behind a mount that a run stopped with kill -9 left in a pod's folder
    bucket = tmp_path / "remote-bucket"
    bucket.mkdir()
    (bucket / "results.root").write_text("a year of analysis")
    state = tmp_path / "state"
    point = state / "emulator" / "pods" / "jupyterhub_jupyter-alice" / "volumes" / "bucket"
    point.mkdir(parents=True)
    (state / "hub.sqlite").write_text("old")
    _bind_mount(bucket, point)
    try:
        with socket.socket() as busy:  # the start stops at the port check, after the reset
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            platform = DevPlatform(state_dir=state, port=busy.getsockname()[1], reset=True)
            with pytest.raises(DevError, match="is busy"):
                platform.start()
        assert mounts_below(state) == []
        assert list(state.iterdir()) == []  # wiped (and made again, empty)
        assert (bucket / "results.root").read_text() == "a year of analysis"
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def test_reset_refuses_a_state_path_that_is_not_a_folder(tmp_path: Path) -> None:
    from aiinfn_hub.dev.platform import DevError, wipe_state_dir

    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    link = tmp_path / "state"
    link.symlink_to(elsewhere)
    with pytest.raises(DevError, match="is not a folder"):
        wipe_state_dir(link)
    assert (elsewhere / "keep").exists()
    wipe_state_dir(tmp_path / "absent")  # nothing to wipe is fine


def test_a_missing_node_tool_is_one_clear_line(tmp_path: Path) -> None:
    done = run_dev_once(tmp_path, free_port(), AIINFN_NODE_MODULES=str(tmp_path / "empty"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "aiinfn-dev dev: configurable-http-proxy is missing: run scripts/setup"
    )
