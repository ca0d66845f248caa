"""Pod IPs, one per live pod, from a /16 this emulator claimed for itself.

Two address spaces:

- ``LOOPBACK`` (pods sharing this machine's network): all of 127.0.0.0/8 reaches this machine
  on Linux, so giving every pod its own 127.N.x.y lets many servers listen on the same port
  (8888 for every notebook) as they would on a cluster, as long as each binds its own IP;
- ``SHARED`` (pods with a network namespace of their own, see ``pod_network``): the RFC 6598
  shared address space 100.64.0.0/10, which 127/8 cannot replace (a bridge does not carry
  loopback addresses); 100.N.0.1 is the gateway on the emulator's bridge, pods start at .0.2.

Addresses are handed out round-robin so a freed one is not reused at once.

Several emulators may run on one machine (test suites side by side, a developer's platform
and the tests): each claims a /16 of its own, ``127.N.0.0`` (N from 2 to 254) or
``100.N.0.0`` (N from 64 to 127), by holding an exclusive lock on a file named after it until
it stops, so no two live emulators ever hand out the same address (127.0.0.0/16, with the
host's 127.0.0.1, is never used, nor 127.1.0.0/16, where the nodes' InternalIPs are).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_LAST = 256 * 256 - 2
LOCK_DIR = Path(tempfile.gettempdir()) / "aiinfn-emulator-networks"


@dataclass(frozen=True)
class AddressSpace:
    """The /16 networks ``A.N.0.0`` an emulator may claim, and the first host index used."""

    first_octet: int
    networks: range
    first_host: int

    def describe(self) -> str:
        return f"{self.first_octet}.{self.networks[0]}-{self.networks[-1]}.0.0/16"


# 127.N.0.1 is a pod's: the host keeps 127.0.0.1, outside every claimed network
LOOPBACK = AddressSpace(127, range(2, 255), 1)
# 100.N.0.1 is the bridge's (the pods' gateway)
SHARED = AddressSpace(100, range(64, 128), 2)


def _claim_network(
    lock_dir: Path,
    space: AddressSpace,
    wanted: int | None,
    usable: Callable[[int], bool],
) -> tuple[int, IO[bytes]]:
    """The first network of ``space`` no other live emulator holds (exactly ``wanted`` when
    given) and the open lock file holding it (released when closed, or when this process
    ends however it ends)."""
    lock_dir.mkdir(mode=0o1777, parents=True, exist_ok=True)
    networks = space.networks
    if wanted is not None:
        if wanted not in networks:
            raise ValueError(f"network {wanted} is not in {space.describe()}")
        candidates = [wanted]
    else:
        start = os.getpid() % len(networks)  # spread the search: fewer tries when many run
        candidates = [networks[(start + i) % len(networks)] for i in range(len(networks))]
    for network in candidates:
        handle = (lock_dir / f"{space.first_octet}.{network}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            skip = wanted is None and not usable(network)
        except BaseException:
            handle.close()
            raise
        if skip:
            handle.close()
            continue
        return network, handle
    if wanted is not None:
        raise RuntimeError(
            f"pod network {space.first_octet}.{wanted}.0.0/16 is held by a running emulator "
            f"(lock in {lock_dir})"
        )
    raise RuntimeError(
        f"every pod network {space.describe()} is held by a running emulator or in use on "
        f"this machine (locks in {lock_dir})"
    )


class PodAddressPool:
    """Allocates ``A.N.x.y`` (never ``.0`` or ``.255`` as last byte) in the /16 it claimed;
    ``close`` gives the network back.

    ``network`` asks for one network exactly (RuntimeError when another emulator holds it);
    ``usable`` may veto a free network while searching (e.g. one this machine routes)."""

    def __init__(
        self,
        lock_dir: Path = LOCK_DIR,
        *,
        space: AddressSpace = LOOPBACK,
        network: int | None = None,
        usable: Callable[[int], bool] = lambda network: True,
    ) -> None:
        self.space = space
        self.network, self._lock = _claim_network(lock_dir, space, network, usable)
        self._by_owner: dict[str, str] = {}
        self._in_use: set[str] = set()
        self._cursor = space.first_host

    @property
    def prefix(self) -> str:
        """The claimed network, ``A.N.0.0/16``."""
        return f"{self.space.first_octet}.{self.network}.0.0/16"

    def _address(self, index: int) -> str:
        return f"{self.space.first_octet}.{self.network}.{index >> 8}.{index & 0xFF}"

    def allocate(self, owner: str) -> str:
        """The address of ``owner`` (a pod uid), allocating one on first use."""
        known = self._by_owner.get(owner)
        if known is not None:
            return known
        first = self.space.first_host
        for _ in range(_LAST):
            index = self._cursor
            self._cursor = first if index >= _LAST else index + 1
            if index & 0xFF in (0, 255):
                continue
            address = self._address(index)
            if address not in self._in_use:
                self._in_use.add(address)
                self._by_owner[owner] = address
                return address
        raise RuntimeError(f"no free pod IP left in {self.prefix}")

    def release(self, owner: str) -> None:
        address = self._by_owner.pop(owner, None)
        if address is not None:
            self._in_use.discard(address)

    def close(self) -> None:
        """Give the network back (another emulator may claim it)."""
        self._lock.close()

    def __len__(self) -> int:
        return len(self._in_use)
