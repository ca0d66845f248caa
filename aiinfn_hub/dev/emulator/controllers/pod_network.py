"""Pod networks: the pod IP of every pod and, for process-mode pods, the network they see.

- ``LoopbackNetwork``: every pod gets a loopback address ``127.N.x.y`` and its processes
  share this machine's network: a pod's server must bind its own pod IP (``$(POD_IP)``), and
  two pods binding ``0.0.0.0:8888`` or ``127.0.0.1:8888`` take that port from each other.
- ``NamespaceNetwork`` (Linux, root, iproute2's ``ip``): like a cluster's bridge CNI plugin.
  The emulator claims ``100.N.0.0/16`` (RFC 6598 shared space, a range this machine does not
  route) and makes a bridge ``aiinfn-N`` holding the gateway ``100.N.0.1``, attached to no
  physical interface, with forwarding off and no NAT: pods reach each other and this machine
  at the gateway address over it. Each process-mode pod gets a namespace ``aiinfn-N-XXXX``
  (XXXX: the last two bytes of its IP in hex, unique while it lives) with ``lo``, ``eth0``
  holding its IP/16 (the other end of the veth pair, named like the namespace, on the
  bridge) and, to reach beyond this machine as a cluster's pods do, a slirp4netns of its own
  (``pod_outbound``: ``tap0`` with the default route); where slirp4netns cannot run, the
  default route is via the gateway and nothing beyond this machine answers (said in the
  description). Its containers, ``kubectl
  exec`` and exec probes run in it (``ExecContext.netns``), so ``localhost`` is the pod's own
  and every pod may bind any port; httpGet/tcpSocket probes dial the pod IP over the bridge;
  port-forward dials ``localhost`` inside the namespace, as containerd does. Simulated pods
  get an address of the same network and no namespace.

Only what carries the claimed N is ever created or deleted: the bridge ``aiinfn-N`` and the
veths and namespaces ``aiinfn-N-XXXX`` (a link also only if it is of the kind made here).
Holding the lock of N means no live emulator uses these names, so whatever carries them is
the leftover of a dead one: removed when the network is opened, and everything is removed
again when it is closed. A pod whose namespace cannot be made fails like a CNI failure
(``PodNetworkError``: the kubelet reports FailedCreatePodSandBox and retries).

``open_pod_network`` picks one (``auto``: namespaces where possible, else loopback, with one
log line saying why).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from .addresses import LOCK_DIR, SHARED, PodAddressPool
from .netns import NETNS_DIR
from .pod_outbound import Outbound, OutboundError, outbound_unavailable

log = logging.getLogger(__name__)
PodNetworkMode = Literal["auto", "netns", "loopback"]
POD_NETWORK_MODES: tuple[PodNetworkMode, ...] = ("auto", "netns", "loopback")
_PREFIX = "aiinfn-"


class PodNetworkError(Exception):
    """A pod's network could not be set up (the kubelet's FailedCreatePodSandBox)."""


class NetworkUnavailable(Exception):
    """Network namespaces cannot be used here (the reason is the message)."""


@dataclass(frozen=True)
class PodSandbox:
    """A pod's network: its IP and the namespace its processes join (None: this machine's)."""

    ip: str
    netns: str | None = None


class PodNetwork(Protocol):
    """Where pod IPs come from and what network a pod's processes see."""

    kind: str

    @property
    def description(self) -> str:
        """One line saying what the pods get (the banner's and the log's)."""

    @property
    def gateway(self) -> str | None:
        """Where pods reach this machine when they do not share its network (None: they do)."""

    async def set_up(self, uid: str, *, isolated: bool) -> PodSandbox:
        """The pod's network (``isolated``: its processes run here and get a namespace when
        this network makes them); PodNetworkError when it cannot be made."""

    async def release(self, uid: str) -> None:
        """Remove the pod's network and give its IP back (nothing when it has none)."""

    def sandbox(self, uid: str) -> PodSandbox | None:
        """The pod's network while it has one."""

    async def close(self) -> None:
        """Remove every pod network left and give the claimed range back."""

    def __len__(self) -> int:
        """How many pods hold an IP."""


class LoopbackNetwork:
    """Pod IPs ``127.N.x.y`` on this machine's own network (no namespaces)."""

    kind = "loopback"
    gateway: str | None = None  # pods share this machine's network: its 127.0.0.1 is theirs

    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        self.pool = PodAddressPool(lock_dir)
        self.description = f"loopback addresses {self.pool.prefix} on this machine's network"
        self._sandboxes: dict[str, PodSandbox] = {}

    async def set_up(self, uid: str, *, isolated: bool) -> PodSandbox:
        sandbox = self._sandboxes[uid] = PodSandbox(self.pool.allocate(uid))
        return sandbox

    async def release(self, uid: str) -> None:
        self._sandboxes.pop(uid, None)
        self.pool.release(uid)

    def sandbox(self, uid: str) -> PodSandbox | None:
        return self._sandboxes.get(uid)

    async def close(self) -> None:
        self._sandboxes.clear()
        self.pool.close()

    def __len__(self) -> int:
        return len(self.pool)


def _ip_json(*args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        ["ip", "-j", *args], capture_output=True, text=True, check=False, timeout=30
    )
    if done.returncode != 0:
        raise NetworkUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")
    text = done.stdout.strip()
    return list(json.loads(text)) if text else []


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise NetworkUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


async def _ip_async(*args: str, batch: list[str] | None = None) -> None:
    """Run ``ip ARGS`` (with ``-batch -`` fed ``batch``); PodNetworkError with its words."""
    argv = ["ip", *args] + (["-batch", "-"] if batch is not None else [])
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE if batch is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise PodNetworkError(f"{argv[0]}: {exc.strerror or exc}") from exc
    _, error = await process.communicate("\n".join(batch).encode() if batch else None)
    if process.returncode != 0:
        raise PodNetworkError(f"{' '.join(argv)}: {error.decode(errors='replace').strip()}")


def _unrouted(network: int) -> bool:
    """Whether this machine neither routes nor holds an address in ``100.N.0.0/16`` (routes
    through ``aiinfn-N`` bridges are emulators', dead or alive, not the host's; a default
    route does not count)."""
    ours = ipaddress.ip_network(f"100.{network}.0.0/16")
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst, dev = str(route.get("dst", "")), str(route.get("dev", ""))
        if dst in ("", "default") or re.fullmatch(rf"{_PREFIX}\d+", dev):
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(dst, strict=False).overlaps(ours) and not dst.endswith("/0"):
                return False
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info") or []:  # type: ignore[attr-defined]
            with contextlib.suppress(ValueError, KeyError):
                held = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
                if held.network.overlaps(ours):
                    return False
    return True


def _link_kind(link: dict[str, object]) -> str | None:
    info = link.get("linkinfo")
    return str(info.get("info_kind")) if isinstance(info, dict) else None


class NamespaceNetwork:
    """Pods with network namespaces of their own on the emulator's bridge (module docstring).

    ``network`` claims ``100.<network>.0.0/16`` exactly (tests); otherwise the first free one
    this machine does not route. NetworkUnavailable when the bridge cannot be made."""

    kind = "netns"

    def __init__(self, lock_dir: Path = LOCK_DIR, *, network: int | None = None) -> None:
        try:
            self.pool = PodAddressPool(lock_dir, space=SHARED, network=network, usable=_unrouted)
        except RuntimeError as exc:  # all held or routed here
            raise NetworkUnavailable(str(exc)) from exc
        self.index = self.pool.network
        self.bridge = f"{_PREFIX}{self.index}"
        self.gateway = f"100.{self.index}.0.1"
        self.no_outbound = outbound_unavailable()
        self._sandboxes: dict[str, PodSandbox] = {}
        self._outbounds: dict[str, Outbound] = {}
        self._closed = False
        self._faults: list[str] = []
        try:
            removed = self.remove_ours()
            if removed:
                log.info(
                    "removed the leftovers of a stopped emulator's pod network %s: %s",
                    self.pool.prefix,
                    ", ".join(removed),
                )
            self._make_bridge()
        except (NetworkUnavailable, OSError, subprocess.SubprocessError) as exc:
            with contextlib.suppress(NetworkUnavailable, OSError, subprocess.SubprocessError):
                self.remove_ours()
            self.pool.close()
            raise NetworkUnavailable(str(exc)) from exc

    @property
    def description(self) -> str:
        way_out = (
            "out through slirp4netns"
            if self.no_outbound is None
            else f"nothing beyond this machine ({self.no_outbound})"
        )
        return f"a network namespace per pod, {self.pool.prefix} on bridge {self.bridge}, {way_out}"

    def _make_bridge(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/16", "dev", self.bridge)
        # IPv4 forwarding is decided by the interface a packet comes in on: pods reach each
        # other (bridged) and this machine, never through it, whatever ip_forward says
        try:
            Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/forwarding").write_text("0\n")
        except OSError:
            if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0":
                raise  # this machine forwards and the bridge cannot be kept out of it
        _ip("link", "set", self.bridge, "up")

    # -- what carries our index --------------------------------------------------------------
    def _pod_name(self, ip: str) -> str:
        third, fourth = (int(part) for part in ip.split(".")[2:])
        return f"{_PREFIX}{self.index}-{third:02x}{fourth:02x}"

    def _is_pod_name(self, name: str) -> bool:
        return re.fullmatch(rf"{_PREFIX}{self.index}-[0-9a-f]{{4}}", name) is not None

    def remove_ours(self) -> list[str]:
        """Delete the namespaces, veths and bridge named with this network's index (and only
        those: a link must also be of the kind made here); the names removed."""
        removed = []
        kinds = {
            str(link.get("ifname", "")): _link_kind(link) for link in _ip_json("-d", "link", "show")
        }
        for name, kind in kinds.items():
            if self._is_pod_name(name) and kind == "veth":
                _ip("link", "delete", name)
                removed.append(name)
        for entry in _ip_json("netns", "list"):
            name = str(entry.get("name", ""))
            if self._is_pod_name(name):
                _ip("netns", "delete", name)
                removed.append(f"netns {name}")
        if kinds.get(self.bridge) == "bridge":
            _ip("link", "delete", self.bridge)
            removed.append(self.bridge)
        return removed

    # -- fault hook ------------------------------------------------------------------------
    def fail_next_sandbox(self, message: str) -> None:
        """Test hook: the next namespace to set up fails with ``message`` (as a CNI plugin's)."""
        self._faults.append(message)

    # -- pods ------------------------------------------------------------------------------
    async def set_up(self, uid: str, *, isolated: bool) -> PodSandbox:
        known = self._sandboxes.get(uid)
        if known is not None:
            return known
        ip = self.pool.allocate(uid)
        if not isolated:
            sandbox = self._sandboxes[uid] = PodSandbox(ip)
            return sandbox
        name = self._pod_name(ip)
        try:
            if self._faults:
                raise PodNetworkError(self._faults.pop(0))
            await _ip_async("netns", "add", name)
            await _ip_async(
                batch=[
                    f"link add {name} type veth peer name eth0 netns {name}",
                    f"link set {name} master {self.bridge} up",
                ]
            )
            inside = [f"addr add {ip}/16 dev eth0", "link set lo up", "link set eth0 up"]
            await _ip_async("-n", name, batch=inside)
            await self._way_out(name)
        except BaseException:  # a failure, or the kubelet stopping: nothing of it is left
            if await self._remove_pod(name):
                self.pool.release(uid)
            raise
        sandbox = self._sandboxes[uid] = PodSandbox(ip, name)
        return sandbox

    async def _way_out(self, name: str) -> None:
        """The pod's slirp4netns; where it cannot run, a default route via the gateway, and
        every later pod goes without (said once, and in the description)."""
        if self.no_outbound is None:
            try:
                outbound = await Outbound.start(NETNS_DIR / name)
            except OutboundError as exc:
                self.no_outbound = str(exc)
                log.warning("pod network: pods reach nothing beyond this machine: %s", exc)
            else:
                if self._closed:  # closed while it started: not kept
                    await outbound.stop()
                    raise PodNetworkError("the pod network was closed")
                self._outbounds[name] = outbound
                return
        await _ip_async("-n", name, "route", "add", "default", "via", self.gateway)

    async def _remove_pod(self, name: str) -> bool:
        """End a pod's slirp4netns, delete its veth and namespace; False (logged) when one
        is left."""
        outbound = self._outbounds.pop(name, None)
        if outbound is not None:
            await outbound.stop()
        left = []
        if Path(f"/sys/class/net/{name}").exists():
            try:
                await _ip_async("link", "delete", name)
            except PodNetworkError as exc:
                left.append(str(exc))
        if (NETNS_DIR / name).exists():
            try:
                await _ip_async("netns", "delete", name)
            except PodNetworkError as exc:
                left.append(str(exc))
        if left:
            log.warning("pod network %s not removed: %s", name, "; ".join(left))
        return not left

    async def release(self, uid: str) -> None:
        sandbox = self._sandboxes.pop(uid, None)
        netns = sandbox.netns if sandbox is not None else None
        if netns is not None and not await self._remove_pod(netns):
            return  # its IP stays taken: the name is the IP's, it must not be reused
        self.pool.release(uid)

    def sandbox(self, uid: str) -> PodSandbox | None:
        return self._sandboxes.get(uid)

    async def close(self) -> None:
        self._closed = True
        self._sandboxes.clear()
        outbounds, self._outbounds = list(self._outbounds.values()), {}
        await asyncio.gather(*(outbound.stop() for outbound in outbounds))
        try:
            await asyncio.to_thread(self.remove_ours)
        except (NetworkUnavailable, OSError, subprocess.SubprocessError) as exc:
            log.warning("pod network %s not fully removed: %s", self.pool.prefix, exc)
        self.pool.close()

    def __len__(self) -> int:
        return len(self.pool)


def namespaces_unavailable() -> str | None:
    """Why pods cannot get network namespaces here; None when they may."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


def open_pod_network(
    mode: PodNetworkMode, *, processes: bool, lock_dir: Path = LOCK_DIR
) -> PodNetwork:
    """The pod network of a kubelet: ``netns`` (NetworkUnavailable when impossible),
    ``loopback``, or ``auto``: namespaces when pods may run as processes and this machine
    allows them, loopback otherwise. Logs one line saying which and, for loopback, why."""
    if mode not in POD_NETWORK_MODES:
        raise ValueError(f"unknown pod network {mode!r}: one of {', '.join(POD_NETWORK_MODES)}")
    reason: str | None = None
    if mode == "loopback":
        reason = "pod network loopback was chosen"
    elif mode == "auto" and not processes:
        reason = "no pod runs as a local process"
    else:
        reason = namespaces_unavailable()
        if reason is None:
            try:
                network = NamespaceNetwork(lock_dir)
            except NetworkUnavailable as exc:
                reason = f"the pod bridge could not be made: {exc}"
            else:
                log.info("pod network: %s", network.description)
                return network
        if mode == "netns":
            raise NetworkUnavailable(f"pod network netns is not possible here: {reason}")
    loopback = LoopbackNetwork(lock_dir)
    log.log(
        logging.WARNING if mode == "auto" and processes else logging.INFO,
        "pod network: %s, no network namespaces (%s)",
        loopback.description,
        reason,
    )
    return loopback
