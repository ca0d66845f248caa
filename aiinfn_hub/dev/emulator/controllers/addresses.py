"""Pod IPs from the loopback network, one per live pod.

All of 127.0.0.0/8 reaches this machine on Linux, so giving every pod its own 127.0.x.y lets
many servers listen on the same port (8888 for every notebook) as they would on a cluster.
Addresses are handed out round-robin so a freed one is not reused at once.
"""

from __future__ import annotations

_FIRST = 2  # 127.0.0.1 stays the host's own address
_LAST = 256 * 256 - 2


def _address(index: int) -> str:
    return f"127.0.{index >> 8}.{index & 0xFF}"


class PodAddressPool:
    """Allocates ``127.0.x.y`` (never ``.0`` or ``.255`` as last byte, never 127.0.0.1)."""

    def __init__(self) -> None:
        self._by_owner: dict[str, str] = {}
        self._in_use: set[str] = set()
        self._cursor = _FIRST

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
            address = _address(index)
            if address not in self._in_use:
                self._in_use.add(address)
                self._by_owner[owner] = address
                return address
        raise RuntimeError("no free pod IP left in 127.0.0.0/16")

    def release(self, owner: str) -> None:
        address = self._by_owner.pop(owner, None)
        if address is not None:
            self._in_use.discard(address)

    def __len__(self) -> int:
        return len(self._in_use)
