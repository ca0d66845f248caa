"""``aiinfn-dev dev``: the whole platform on this machine in one command.

The Kubernetes API emulator (the paper's four servers, containers run as local processes with
their volumes as folders), the local OpenID provider with demo users in demo projects, a local
S3 server for buckets (when installed), and configurable-http-proxy + JupyterHub with
``jupyterhub_config.py`` unchanged: only addresses, ports and paths are passed to it, through
its environment. State lives in one folder; running again reuses it; Ctrl-C stops everything.

Pods get network namespaces of their own where this machine allows it (``--pod-network auto``:
root and ``ip``), as on a cluster: each server's ``localhost`` is its own. Their only way to
this machine is then the gateway of the emulator's bridge (``100.N.0.1``, this machine's
address on a bridge attached to no interface), so everything their processes call listens
there: the hub's API (servers, the ``bunshin`` command), the Bunshin service, the local S3 with
its STS (bucket sidecars) and JuiceFS's Redis (offloaded jobs' mount sidecars). The hub API,
the Bunshin service and the S3 server listen on one address only, so this machine calls them
at the gateway too; Redis listens on both. Nothing listens on every interface (the LAN's). The
browser's parts (the proxy, the OpenID provider) stay on 127.0.0.1: pods never call them. A
server binds every address of its namespace (its pod IP, reached by the proxy over the bridge,
and its localhost, where ``kubectl port-forward`` dials). Where namespaces are not possible,
pods share this machine's network with 127.N.x.y addresses, each server binds its own, and
everything else stays on 127.0.0.1; the banner says which and why.

On Ctrl-C or SIGTERM the hub has ``AIINFN_DEV_HUB_GRACE`` seconds (default 20) to stop its
proxy and services before it is killed and what it started is ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import PlatformConfig, load_platform_config
from .emulator.cluster import load_cluster_file
from .emulator.controllers import pod_network as pod_networks
from .emulator.controllers.pod_network import (
    NetworkUnavailable,
    PodNetworkMode,
    open_pod_network,
)
from .emulator.controllers.volumes import mounts_below, remove_tree
from .emulator.runtime import Emulator
from .juicefs_store import LocalJuiceFS, missing_tools
from .kueue_standin import KueueStandIn
from .node_tools import node_bin
from .oidc import DemoUser, LocalOIDCProvider, OIDCClient, ProviderSettings
from .processes import (
    ManagedProcess,
    ProcessError,
    become_subreaper,
    descendants,
    end_processes,
    free_port,
    free_ports,
    port_is_free,
)
from .s3_server import LocalS3, moto_server_path
from .virtual_node import with_interlink_node

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "aiinfn-hub"
STORAGE_AUDIENCE = "object-store"
STATE_MARKER = "AIINFN_DEV_STATE_DIR"
DEMO_USERS = (
    DemoUser("alice", "alice-pw", ("/cms", "/cms/analysis"), name="Alice, physicist (CMS)"),
    DemoUser("bruno", "bruno-pw", ("/ml-infn",), name="Bruno, medical physicist (ML_INFN)"),
    DemoUser("admin", "admin-pw", ("/platform-admins", "/ml-infn"), name="Platform admin"),
    DemoUser("guest", "guest-pw", ("/visitors",), name="Guest in no project (refused)"),
)


class DevError(Exception):
    """One clear line for the user (a busy port, a missing tool)."""


@dataclass
class DevPlatform:
    """The local platform's parts; ``start()`` then ``stop()`` (or use as a context manager)."""

    state_dir: Path
    port: int = 8000
    provider_port: int = 0
    emulator_port: int = 0
    reset: bool = False
    pod_network: PodNetworkMode = "auto"
    parts: list[Any] = field(default_factory=list)
    banner_lines: list[str] = field(default_factory=list)
    s3: LocalS3 | None = None
    emulator: Emulator | None = None
    hub: ManagedProcess | None = None
    juicefs: LocalJuiceFS | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pods_reach_us_at(self) -> str:
        """The address of what pods' processes call: the pod network's gateway when they have
        namespaces of their own, else 127.0.0.1 (their network is this machine's)."""
        assert self.emulator is not None, "known once the emulator runs"
        return self.emulator.pod_gateway or "127.0.0.1"

    def _check(self) -> None:
        if not port_is_free(self.port):
            raise DevError(f"port {self.port} is busy: stop what uses it or pass --port")
        if shutil.which("node") is None:
            raise DevError("node is not installed: run scripts/setup")
        if not node_bin("configurable-http-proxy").exists():
            raise DevError("configurable-http-proxy is missing: run scripts/setup")

    def _secret(self, name: str, make: Any) -> str:
        path = self.state_dir / name
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
        return path.read_text().strip()

    def _platform_file(self, s3: LocalS3 | None, juicefs: LocalJuiceFS | None) -> Path:
        data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
        root = os.geteuid() == 0
        storage: dict[str, Any] = {
            "nfs": {"server": "nfs.local", "path": "/exports"},
            # as root, each user's home belongs to their own id (uidBase + number), as on a
            # cluster; otherwise the folders can only be ours
            "home": (
                {"uidBase": 100000, "gid": 100}
                if root
                else {"uidBase": None, "uid": os.geteuid(), "gid": os.getegid()}
            ),
            "environments": {"dir": "envs", "mountPath": "/envs"},
            "shared": {
                "dir": "shared",
                "mountPath": "/shared",
                "maintainersGroup": "platform-admins",
            },
            "scratch": {"sizeChoices": ["1Gi", "5Gi"]},
        }
        if s3 is not None:
            storage["buckets"] = {
                "endpoint": s3.endpoint,
                "provider": "Other",
                "region": "us-east-1",
                "tokenAudience": STORAGE_AUDIENCE,
            }
        data["storage"] = storage
        offload = data.setdefault("jobs", {}).setdefault("offload", {})
        if juicefs is not None:  # offloaded jobs mount the local JuiceFS in place of NFS
            offload["juicefs"] = {
                "metadataUrl": juicefs.metadata_url,
                "credentialsDir": str(juicefs.credentials_dir),
                "environments": "envs",
                "shared": "shared",
            }
        else:  # the example's would point at a server this machine cannot reach
            offload.pop("juicefs", None)
        path = self.state_dir / "platform.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def start(self) -> DevPlatform:
        if self.reset:
            wipe_state_dir(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._check()
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_parts(self) -> None:
        state = self.state_dir
        example = load_platform_config(ROOT / "examples" / "platform.yaml")
        cluster = with_interlink_node(
            load_cluster_file(ROOT / "examples" / "cluster.yaml"), example
        )
        # Bunshin's jobs have a namespace of their own (the service refuses the servers')
        namespaces = [*cluster.namespaces, example.jobs.namespace]
        emulator = self._start_emulator(
            Emulator(
                cluster.model_copy(update={"namespaces": list(dict.fromkeys(namespaces))}),
                port=self.emulator_port,
                state_dir=state / "emulator",
                run_processes=True,
                pod_network=self.pod_network,
            )
        )
        kubeconfig = emulator.write_kubeconfig()
        self.parts.append(KueueStandIn(emulator.access).start())
        ours = self.pods_reach_us_at

        if moto_server_path() is not None:
            self.s3 = LocalS3(state / "s3", host=ours).start()
            for bucket, readme in demo_buckets(example).items():  # each with a first file
                _put(f"{self.s3.endpoint}/{bucket}", b"")
                _put(f"{self.s3.endpoint}/{bucket}/README.txt", readme.encode())
            self.banner_lines.append(f"buckets:  local S3 at {self.s3.endpoint}")
        else:
            self.banner_lines.append("buckets:  disabled (no local S3 server: run scripts/setup)")
        self.juicefs = self._start_juicefs()

        client_secret = self._secret("oidc-client-secret", lambda: secrets.token_urlsafe(32))
        provider = LocalOIDCProvider(
            ProviderSettings(
                users=list(DEMO_USERS),
                clients=[
                    OIDCClient(
                        CLIENT_ID,
                        client_secret,
                        (f"{self.url}/hub/oauth_callback",),
                        (f"{self.url}/hub/login",),
                    )
                ],
                port=self.provider_port or free_port(),
                exchange_audiences={STORAGE_AUDIENCE: "storage.read:/ storage.modify:/"},
            ),
            state / "oidc",
        ).start()
        self.parts.append(provider)

        secret_file = state / "oidc-client-secret"
        platform = self._platform_file(self.s3, self.juicefs)
        # drawn together, and never the proxy's port: that one is bound only later, by the proxy
        bunshin_port, hub_api_port = free_ports(2, ours, exclude=[self.port])
        (proxy_api_port,) = free_ports(1, exclude=[self.port, bunshin_port, hub_api_port])
        env = dict(os.environ)
        env.update(
            {
                "AIINFN_PLATFORM_CONFIG": str(platform),
                "AIINFN_IAM_ISSUER": provider.issuer,
                "AIINFN_IAM_CLIENT_ID": CLIENT_ID,
                "AIINFN_IAM_CLIENT_SECRET_FILE": str(secret_file),
                "AIINFN_PUBLIC_URL": self.url,
                "AIINFN_STORAGE_AUDIENCE": STORAGE_AUDIENCE,
                "AIINFN_ADMIN_GROUPS": "platform-admins",
                "AIINFN_OFFLOAD_GROUPS": "ml-infn",
                # servers call both: their `bunshin` command the service, and the hub's API
                "AIINFN_BUNSHIN_URL": f"http://{ours}:{bunshin_port}",
                "AIINFN_BUNSHIN_MANAGED": "1",
                "AIINFN_STATE_DIR": str(state),
                "AIINFN_HUB_PORT": str(self.port),
                "AIINFN_HUB_API_IP": ours,
                "AIINFN_HUB_API_PORT": str(hub_api_port),
                "AIINFN_PROXY_API_PORT": str(proxy_api_port),
                "AIINFN_LOCAL_PROCESSES": "1",
                # in a namespace of its own, every address of the pod is the pod's
                **({"AIINFN_SERVER_IP": "0.0.0.0"} if emulator.pod_gateway else {}),
                "AIINFN_NOTEBOOK_PRIORITY": "notebook",
                "KUBECONFIG": str(kubeconfig),
                "JUPYTERHUB_CRYPT_KEY": self._secret("crypt-key", lambda: secrets.token_hex(32)),
                "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
                "PATH": os.pathsep.join(
                    [str(node_bin("x").parent), str(Path(sys.executable).parent), env["PATH"]]
                ),
            }
        )
        env.pop("AWS_CA_BUNDLE", None)
        self.hub = ManagedProcess(
            "jupyterhub",
            [sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "jupyterhub_config.py")],
            state / "hub.log",
            env=env,
            cwd=state,
        ).start()
        self.hub.wait_until(self._hub_answers, 90, "serving the hub")

    def _start_emulator(self, emulator: Emulator) -> Emulator:
        """Start the cluster; the banner says which pod network it chose and, for loopback
        under ``auto``, why (the line the pod network logs then, shown instead of logged).

        ``--pod-network netns`` is tried first on its own: the emulator finds out only after
        its other controllers started, and its failed start then prints their tasks' ends."""
        if self.pod_network == "netns":
            try:
                asyncio.run(open_pod_network("netns", processes=True).close())
            except NetworkUnavailable as exc:
                raise DevError(str(exc)) from None
        fallback = _Records(logging.WARNING)
        logger = logging.getLogger(pod_networks.__name__)
        logger.addHandler(fallback)
        try:
            emulator.start()
        except RuntimeError as exc:
            if isinstance(exc.__cause__, NetworkUnavailable):  # --pod-network netns
                raise DevError(str(exc.__cause__)) from None
            raise
        finally:
            logger.removeHandler(fallback)
        self.emulator = emulator
        network = emulator.controllers.kubelet.network
        if network.gateway is not None:
            line = f"{network.description}; what pods call listens on {network.gateway}"
        elif fallback.messages:
            line = fallback.messages[-1].removeprefix("pod network: ")
        else:
            line = f"{network.description} (--pod-network {self.pod_network})"
        self.banner_lines.append(f"pods:     {line}")
        return emulator

    def _start_juicefs(self) -> LocalJuiceFS | None:
        """The JuiceFS of offloaded jobs, when this machine can mount it (root, FUSE)."""
        missing = missing_tools()
        if os.geteuid() != 0 or not Path("/dev/fuse").exists():
            missing.append("root and FUSE")
        if self.s3 is None:
            missing.append("the local S3 server")
        if missing or self.s3 is None:
            self.banner_lines.append(
                f"offload:  jobs offload without storage (a JuiceFS needs {', '.join(missing)})"
            )
            return None
        assert self.emulator is not None
        juicefs = LocalJuiceFS(
            self.state_dir / "juicefs", self.s3.endpoint, gateway=self.emulator.pod_gateway
        ).start()
        self.parts.append(juicefs)
        self.banner_lines.append(
            f"offload:  offloaded jobs mount JuiceFS ({juicefs.metadata_url}) for home/projects"
        )
        return juicefs

    def _hub_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def banner(self) -> str:
        assert self.emulator is not None
        lines = [
            "",
            f"aiinfn-hub local platform: {self.url}",
            "",
            "demo accounts (user / password: projects):",
            *(
                f"  {u.username:<6} / {u.password:<9}: {', '.join(g.strip('/') for g in u.groups)}"
                f"  ({u.name})"
                for u in DEMO_USERS
            ),
            "",
            f"kubectl:  export KUBECONFIG={self.state_dir / 'emulator' / 'kubeconfig'}",
            "          kubectl get nodes,pods,jobs -A",
            "jobs:     Bunshin at /services/bunshin/ (a stand-in admits jobs in place of Kueue)",
            *self.banner_lines,
            f"logs:     {self.state_dir / 'hub.log'} (hub, proxy, Bunshin), "
            f"{self.state_dir / 'oidc' / 'oidc-provider.log'}",
            "state:    " + str(self.state_dir) + " (kept; --reset wipes it)",
            "Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop the hub, then every part, then the cluster (which ends the pods and their
        mounts). A second Ctrl-C or SIGTERM meanwhile is ignored and a part that fails to stop
        does not keep the others running: cutting this short would leave processes and FUSE
        mounts behind."""
        with _signals_ignored():
            steps: list[Any] = []
            if self.hub is not None:
                steps.append(functools.partial(self.hub.stop, grace=hub_grace()))
            steps += [part.stop for part in reversed(self.parts)]
            if self.s3 is not None:
                steps.append(self.s3.stop)
            if self.emulator is not None:
                steps.append(self.emulator.stop)
            for step in steps:
                try:
                    step()
                except Exception as exc:  # go on with the rest; say what was left
                    print(f"aiinfn-dev dev: could not stop a part: {exc}", file=sys.stderr)


def demo_buckets(config: PlatformConfig) -> dict[str, str]:
    """The buckets the local S3 holds, with the text of their first file: each demo user's,
    named as the user (the local platform's ``userBucket`` is the example's ``{username}``),
    and each project's bucket (``projects.*.storage.bucket``)."""
    buckets = {user.username: "Your bucket.\n" for user in DEMO_USERS}
    for _, project in sorted(config.projects.items()):
        if project.storage.bucket:
            buckets.setdefault(
                project.storage.bucket,
                f"The bucket of project {project.display_name}, shared by its members.\n",
            )
    return buckets


def hub_grace() -> float:
    """Seconds the hub is given to stop (``AIINFN_DEV_HUB_GRACE``, default 20)."""
    text = os.environ.get("AIINFN_DEV_HUB_GRACE", "")
    try:
        grace = float(text) if text else 20.0
    except ValueError:
        grace = 20.0
    return grace if grace > 0 else 20.0


def wipe_state_dir(state_dir: Path) -> None:
    """``--reset``: remove the state folder, but never through a mount left inside it.

    A run stopped hard (kill -9, a crash) can leave the FUSE mounts of bucket or JuiceFS
    sidecars under the folder; deleting through them would delete the user's remote files.
    They are detached first (lazily), as the emulator's kubelet does for a pod's folder, and
    if one stays mounted nothing is deleted and the user is told which one.
    """
    if not state_dir.exists() and not state_dir.is_symlink():
        return
    if state_dir.is_symlink() or not state_dir.is_dir():
        raise DevError(f"cannot reset {state_dir}: it is not a folder")
    if not remove_tree(state_dir):
        left = ", ".join(mounts_below(state_dir)) or "a mount"
        raise DevError(
            f"cannot reset {state_dir}: {left} is still mounted inside it; unmount it "
            "(umount -l) and run again"
        )


def _put(url: str, body: bytes) -> None:
    # a type of our own: urllib's default (a form) makes moto store an empty object
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


class _Records(logging.Handler):
    """Keeps the messages of the records it is given."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM in the block (only the main thread can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def run_dev(state_dir: Path, port: int, reset: bool, pod_network: PodNetworkMode = "auto") -> int:
    """The ``aiinfn-dev dev`` command: start, print the banner, wait for Ctrl-C, stop.

    SIGINT and SIGTERM both stop everything, whatever this process inherited: a shell without
    job control starts a background command (``scripts/platform &`` in a script) with SIGINT
    ignored, and Python then never turns it into KeyboardInterrupt. Installing the handlers
    also gives every child the default action back (an ignored signal stays ignored across
    exec, a handled one does not). This process adopts the processes its children leave
    behind, and ends whatever is still running below it before exiting.
    """
    become_subreaper()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    platform = DevPlatform(
        state_dir=state_dir.resolve(), port=port, reset=reset, pod_network=pod_network
    )
    # inherited by every child: names the platform a process belongs to (the tests look for
    # what a stopped platform left behind by it)
    os.environ[STATE_MARKER] = str(platform.state_dir)
    try:
        return _serve(platform)
    finally:
        with _signals_ignored():
            left = end_processes(descendants(os.getpid()))
        if left:
            print(f"aiinfn-dev dev: ended {len(left)} process(es) left running", file=sys.stderr)


def _serve(platform: DevPlatform) -> int:
    try:
        platform.start()
    except (DevError, ProcessError) as exc:
        first = str(exc).splitlines()[0]
        print(f"aiinfn-dev dev: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(platform.banner(), flush=True)
    try:
        while platform.hub is not None and platform.hub.running:
            time.sleep(0.5)
        print("aiinfn-dev dev: the hub stopped; see the log above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\naiinfn-dev dev: stopping...", flush=True)
        return 0
    finally:
        platform.stop()
