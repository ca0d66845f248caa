"""Pod IPs from the loopback network, one per live pod.

All of 127.0.0.0/8 reaches this machine on Linux, so giving every pod its own 127.N.x.y lets
many servers listen on the same port (8888 for every notebook) as they would on a cluster.
Addresses are handed out round-robin so a freed one is not reused at once.

Several emulators may run on one machine (test suites side by side, a developer's platform
and the tests): each claims a /16 of its own, ``127.N.0.0`` with N from 1 to 254, by holding
an exclusive lock on a file named after N until it stops, so no two live emulators ever hand
out the same address (127.0.0.0/16, with the host's 127.0.0.1, is never used, nor 127.1.0.0/16,
where the nodes' InternalIPs are).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

_FIRST = 1  # 127.N.0.1 is a pod's: the host keeps 127.0.0.1, outside every claimed network
_LAST = 256 * 256 - 2
_NETWORKS = range(2, 255)
LOCK_DIR = Path(tempfile.gettempdir()) / "aiinfn-emulator-networks"


def _claim_network(lock_dir: Path) -> tuple[int, IO[bytes]]:
    """The first 127.N.0.0/16 no other live emulator holds, and the open lock file holding it
    (released when closed, or when this process ends however it ends)."""
    lock_dir.mkdir(mode=0o1777, parents=True, exist_ok=True)
    start = os.getpid() % len(_NETWORKS)  # spread the search: fewer tries when many run
    for i in range(len(_NETWORKS)):
        network = _NETWORKS[(start + i) % len(_NETWORKS)]
        handle = (lock_dir / f"127.{network}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return network, handle
    raise RuntimeError(
        f"every pod network 127.2-254.0.0/16 is held by a running emulator (locks in {lock_dir})"
    )


class PodAddressPool:
    """Allocates ``127.N.x.y`` (never ``.0`` or ``.255`` as last byte) in the /16 it claimed;
    ``close`` gives the network back."""

    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        self.network, self._lock = _claim_network(lock_dir)
        self._by_owner: dict[str, str] = {}
        self._in_use: set[str] = set()
        self._cursor = _FIRST

    def _address(self, index: int) -> str:
        return f"127.{self.network}.{index >> 8}.{index & 0xFF}"

    def allocate(self, owner: str) -> str:
        """The address of ``owner`` (a pod uid), allocating one on first use."""
        known = self._by_owner.get(owner)
        if known is not None:
            return known
        for _ in range(_LAST):
            index = self._cursor
            self._cursor = _FIRST if index >= _LAST else index + 1
            if index & 0xFF in (0, 255):
                continue
            address = self._address(index)
            if address not in self._in_use:
                self._in_use.add(address)
                self._by_owner[owner] = address
                return address
        raise RuntimeError(f"no free pod IP left in 127.{self.network}.0.0/16")

    def release(self, owner: str) -> None:
        address = self._by_owner.pop(owner, None)
        if address is not None:
            self._in_use.discard(address)

    def close(self) -> None:
        """Give the network back (another emulator may claim it)."""
        self._lock.close()

    def __len__(self) -> int:
        return len(self._in_use)
