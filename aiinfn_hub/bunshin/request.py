"""The body of ``POST jobs``: types and shapes checked before any policy (pure).

Bad JSON, wrong types and unknown fields are 400s; values outside what the platform allows
are 422s (see ``policy``). Every message names the field.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from .errors import BunshinError

FIELDS = {
    "server",
    "command",
    "commandText",
    "name",
    "project",
    "cpu",
    "memory",
    "accelerator",
    "completions",
    "parallelism",
    "sandbox",
    "maxRuntimeSeconds",
    "offload",
    "storage",
    "env",
    "retries",
}
MAX_COMMAND_ITEMS = 256
MAX_COMMAND_BYTES = 32 * 1024
MAX_ENV = 64
MAX_RETRIES = 100  # a bound of the field itself; the platform's is ``jobs.maxRetries``
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class Accelerator:
    """A model and a number of units; ``name`` None: the model of the server cloned."""

    name: str | None
    count: int = 1


@dataclass(frozen=True)
class JobRequest:
    """A checked request; ``None`` means "as the server has it" or the platform default."""

    command: list[str]
    command_text: str | None = None  # the command as the user typed it (quotes and all)
    server: str = ""
    name: str | None = None
    project: str | None = None
    cpu: float | None = None
    memory: str | None = None
    accelerator: Accelerator | None = None
    accelerator_given: bool = False  # false: keep the server's accelerator
    completions: int = 1
    parallelism: int | None = None
    sandbox: dict[str, str] = field(default_factory=dict)
    max_runtime_seconds: int | None = None
    offload: bool = False
    storage: bool = True
    env: dict[str, str] = field(default_factory=dict)
    retries: int | None = None  # None: the platform's default (``jobs.backoffLimit``)


def _bad(field_name: str, message: str) -> BunshinError:
    return BunshinError(400, "bad-request", f"{field_name}: {message}")


def _int(body: dict[str, Any], key: str, minimum: int = 1) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, f"expected a whole number (got {type(value).__name__})")
    if value < minimum:
        raise BunshinError(422, "invalid", f"{key}: must be at least {minimum} (got {value})")
    return value


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(key, f"expected a string (got {type(value).__name__})")
    return value


def parse_request(body: Any) -> JobRequest:
    """Check the JSON body's shape; raise BunshinError (400/422) with the field's name."""
    if not isinstance(body, dict):
        raise BunshinError(400, "bad-request", "the body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BunshinError(
            400,
            "bad-request",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}",
        )
    command = body.get("command")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise _bad("command", 'expected a list of strings, e.g. ["python", "train.py"]')
    if not command or not command[0]:
        raise BunshinError(422, "invalid", "command: give the program to run")
    if (
        len(command) > MAX_COMMAND_ITEMS
        or sum(len(c.encode()) for c in command) > MAX_COMMAND_BYTES
    ):
        raise BunshinError(
            422,
            "invalid",
            f"command: too long (at most {MAX_COMMAND_ITEMS} items and {MAX_COMMAND_BYTES} "
            "bytes); ship a script in sandbox instead",
        )
    command_text = _command_text(body, command)
    name = _str(body, "name")
    if name is not None and not _NAME.fullmatch(name):
        raise BunshinError(
            422, "invalid", "name: lowercase letters, digits and '-', at most 32 characters"
        )
    cpu = body.get("cpu")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int | float)):
        raise _bad("cpu", f"expected a number of cores (got {type(cpu).__name__})")
    if cpu is not None and cpu <= 0:
        raise BunshinError(422, "invalid", f"cpu: must be positive (got {cpu})")
    accelerator, given = _accelerator(body)
    sandbox = body.get("sandbox") or {}
    if not isinstance(sandbox, dict) or not all(isinstance(v, str) for v in sandbox.values()):
        raise _bad("sandbox", "expected an object of file name to text")
    for filename in sandbox:
        if not _FILE.fullmatch(filename):
            raise BunshinError(
                422, "invalid", f"sandbox: bad file name {filename[:80]!r} (letters, digits, ._-)"
            )
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise _bad("env", "expected an object of name to string value")
    if len(env) > MAX_ENV:
        raise BunshinError(422, "invalid", f"env: at most {MAX_ENV} variables")
    for key in env:
        if not _ENV.fullmatch(key) or key.upper().startswith(("JUPYTERHUB_", "JPY_")):
            raise BunshinError(
                422, "invalid", f"env: {key[:80]!r} is not a name you may set (A-Z, 0-9, _)"
            )
    for key in ("offload", "storage"):
        if key in body and not isinstance(body[key], bool):
            raise _bad(key, "expected true or false")
    server = _str(body, "server") or ""
    completions = _int(body, "completions") or 1
    retries = _int(body, "retries", minimum=0)
    if retries is not None and retries > MAX_RETRIES:
        raise BunshinError(422, "invalid", f"retries: at most {MAX_RETRIES} (got {retries})")
    return JobRequest(
        command=list(command),
        command_text=command_text,
        server=server,
        name=name,
        project=_str(body, "project"),
        cpu=float(cpu) if cpu is not None else None,
        memory=_str(body, "memory"),
        accelerator=accelerator,
        accelerator_given=given,
        completions=completions,
        parallelism=_int(body, "parallelism"),
        sandbox=dict(sandbox),
        max_runtime_seconds=_int(body, "maxRuntimeSeconds"),
        offload=bool(body.get("offload", False)),
        storage=bool(body.get("storage", True)),
        env=dict(env),
        retries=retries,
    )


def _command_text(body: dict[str, Any], command: list[str]) -> str | None:
    """``commandText``: the command as typed, shown instead of ``command`` joined; it must
    split (as a POSIX shell does, ``shlex``) into exactly ``command``, so what the page shows
    is what runs."""
    text = _str(body, "commandText")
    if text is None:
        return None
    if len(text.encode()) > MAX_COMMAND_BYTES or "\n" in text or "\r" in text:
        raise BunshinError(
            422, "invalid", f"commandText: one line of at most {MAX_COMMAND_BYTES} bytes"
        )
    try:
        split = shlex.split(text)
    except ValueError:
        split = None
    if split != command:
        raise BunshinError(
            422, "invalid", "commandText: must split into exactly the items of command"
        )
    return text


def _accelerator(body: dict[str, Any]) -> tuple[Accelerator | None, bool]:
    if "accelerator" not in body:
        return None, False
    value = body["accelerator"]
    if value is None:
        return None, True
    if not isinstance(value, dict) or set(value) - {"name", "count"} or not value:
        raise _bad(
            "accelerator",
            'expected {"name": "t4", "count": 1}, {"count": 2} (your server\'s model) or null',
        )
    name, count = value.get("name"), value.get("count", 1)
    if not isinstance(name, str | None) or isinstance(count, bool) or not isinstance(count, int):
        raise _bad("accelerator", "name must be a string and count a whole number")
    if count < 1:
        raise BunshinError(422, "invalid", "accelerator.count: must be at least 1")
    return Accelerator(name, count), True
