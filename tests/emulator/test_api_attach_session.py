"""``AttachSession`` against a real local process: its output as it comes, its stdin when the
container has one (``stdin: true``), ``stdinOnce`` closing it for good, and the end of the
session with the process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiinfn_hub.dev.emulator.api.streams.attach_session import AttachSession
from aiinfn_hub.dev.emulator.api.streams.channels import STDOUT
from aiinfn_hub.dev.emulator.api.streams.targets import StreamOptions
from aiinfn_hub.dev.emulator.controllers.processes import (
    ExecContext,
    LocalProcess,
    RunningContainer,
)

ATTACH = StreamOptions([], stdin=True, stdout=True, stderr=True, tty=False)


async def _container(tmp_path: Path, command: list[str], *, open_stdin: bool) -> RunningContainer:
    log = tmp_path / "main.log"
    env = {"PATH": "/usr/bin:/bin"}
    process = await LocalProcess.start(
        command, cwd=tmp_path, env=env, log_path=log, open_stdin=open_stdin
    )
    return RunningContainer(process, ExecContext(env, tmp_path, lambda text: text), log)


async def test_attach_writes_stdin_and_reads_output_until_the_process_ends(
    tmp_path: Path,
) -> None:
    container = await _container(tmp_path, ["cat"], open_stdin=True)
    session = AttachSession(container, {"name": "main", "stdin": True, "stdinOnce": True}, ATTACH)
    received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()

    async def send(channel: int, data: bytes) -> None:
        await received.put((channel, data))

    running = asyncio.ensure_future(session.run(send))
    session.stdin_data(b"typed into the container\n")
    channel, data = await asyncio.wait_for(received.get(), 30)
    assert (channel, data) == (STDOUT, b"typed into the container\n")
    session.stdin_closed()  # stdinOnce: cat sees EOF and the container ends
    assert await asyncio.wait_for(running, 30) == {"metadata": {}, "status": "Success"}
    assert await container.process.wait() == 0


async def test_attach_without_container_stdin_drops_the_input(tmp_path: Path) -> None:
    container = await _container(
        tmp_path, ["sh", "-c", "read line; echo got $line"], open_stdin=False
    )
    session = AttachSession(container, {"name": "main"}, ATTACH)
    sent: list[bytes] = []

    async def send(channel: int, data: bytes) -> None:
        sent.append(data)

    running = asyncio.ensure_future(session.run(send))
    session.stdin_data(b"never delivered\n")
    await asyncio.wait_for(running, 5)  # read hits /dev/null's EOF: the process ends
    assert b"never delivered" not in b"".join(sent)
    assert b"never delivered" not in (tmp_path / "main.log").read_bytes()
