"""Entering a named network namespace (``/run/netns/NAME``, what ``ip netns add`` makes).

Two ways in, both with ``setns(CLONE_NEWNET)``, which moves only the calling thread:

- ``entering``: a ``preexec_fn`` for a child process (a container, an exec, an exec probe),
  run after fork and before exec, so the program starts inside the namespace; the identity
  switch (``setgroups``/``setgid``/``setuid``) must come after it, since joining a namespace
  needs CAP_SYS_ADMIN, hence ``then``;
- ``open_connection_in``: a socket made on a short-lived thread that joined the namespace (a
  socket stays in the namespace it was made in), then connected from the event loop; what
  containerd does for port-forward (dial ``localhost`` inside the pod's namespace).

Python 3.11 has no ``os.setns`` (3.12 has): libc's is called through ctypes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import cache
from pathlib import Path

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


@cache
def _setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    setns = libc.setns
    setns.argtypes = [ctypes.c_int, ctypes.c_int]
    setns.restype = ctypes.c_int
    return setns


def _join(fd: int, name: str) -> None:
    if _setns()(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns into network namespace {name}: {os.strerror(errno)}")


def _open(name: str) -> int:
    return os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def entering(
    name: str | None, then: Callable[[], None] | None = None
) -> Iterator[Callable[[], None] | None]:
    """A ``preexec_fn`` joining namespace ``name`` then calling ``then``; just ``then`` when
    ``name`` is None. The namespace is opened here (OSError when it is gone), in the parent,
    so the child only makes a system call; use the function while the block lasts."""
    if name is None:
        yield then
        return
    _setns()  # load libc before forking
    fd = _open(name)

    def enter() -> None:
        _join(fd, name)
        if then is not None:
            then()

    try:
        yield enter
    finally:
        os.close(fd)


def _socket_in(name: str, family: socket.AddressFamily) -> socket.socket:
    """A TCP socket of namespace ``name``, made on a thread of its own that ends after."""
    made: Future[socket.socket] = Future()

    def make() -> None:
        try:
            fd = _open(name)
            try:
                _join(fd, name)
            finally:
                os.close(fd)
            made.set_result(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as exc:
            made.set_exception(exc)

    thread = threading.Thread(target=make, name=f"netns {name}", daemon=True)
    thread.start()
    thread.join()
    return made.result()


async def open_connection_in(
    name: str, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``host:port`` as seen from inside namespace ``name``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = await asyncio.to_thread(_socket_in, name, family)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
