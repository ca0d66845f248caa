"""What the hub's own pages say about a user: home, logout, login and the "not in a project" page.

Pure functions over ``user_options``, start times and the platform configuration, so each page's
wording is tested without a hub; the handlers and ``configure_hub`` only feed them. The pages
themselves are the templates in ``aiinfn_hub/hub_templates/``, which extend JupyterHub's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import PlatformConfig, config_provider
from ..platform.vocabulary import NO_ACCELERATOR

REFUSAL_COOKIE = "aiinfn-not-in-a-project"  # signed; who was refused, for the refusal page
REFUSAL_PATH = "/not-in-a-project"  # under the hub's base URL
TIMES = "\N{MULTIPLICATION SIGN}"  # before a count, as in the spawner's profile line


@dataclass(frozen=True)
class ServerSummary:
    """One line about what a running server holds, and since when."""

    name: str  # "" for the default server
    holds: str  # the spawner's profile line, e.g. "cms · A100 MIG 1g.10gb (1) on server-3"
    accelerator: bool  # it holds a GPU, MIG slice or FPGA (kept allocated while it runs)
    started: str  # ISO 8601 in UTC ("" when unknown), for <time datetime=...>
    started_text: str  # e.g. "2026-12-07 16:04 UTC"


def holds_accelerator(user_options: Mapping[str, Any] | None) -> bool:
    """Whether a server started with these options has an accelerator allocated."""
    accelerator = (user_options or {}).get("accelerator")
    return bool(accelerator) and accelerator != NO_ACCELERATOR


def describe_options(
    user_options: Mapping[str, Any] | None, accelerator_names: Mapping[str, str]
) -> str:
    """The spawner's readable ``profile`` line, or one built from the raw options for servers
    started before the spawner wrote it (names from the catalogue when it still has them)."""
    options = user_options or {}
    profile = options.get("profile")
    if isinstance(profile, str) and profile.strip():
        return profile.strip()
    parts = []
    if holds_accelerator(options):
        name = str(options["accelerator"])
        accelerator = accelerator_names.get(name, name)
        count = options.get("count")
        parts.append(f"{accelerator} {TIMES}{count}" if count else accelerator)
        if options.get("server"):
            parts[-1] += f" on {options['server']}"
    else:
        parts.append("no accelerator (CPU only)")
    if options.get("image"):
        parts.append(f"image {options['image']}")
    return " · ".join(parts)


def started_texts(started: datetime | None) -> tuple[str, str]:
    """``(ISO 8601, readable)`` of a start time; JupyterHub keeps naive UTC datetimes."""
    if started is None:
        return "", ""
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    started = started.astimezone(UTC).replace(microsecond=0)
    return started.isoformat().replace("+00:00", "Z"), started.strftime("%Y-%m-%d %H:%M UTC")


def server_summary(
    name: str,
    user_options: Mapping[str, Any] | None,
    started: datetime | None,
    accelerator_names: Mapping[str, str],
) -> ServerSummary:
    """What the home and logout pages say about one running server."""
    iso, text = started_texts(started)
    return ServerSummary(
        name=name,
        holds=describe_options(user_options, accelerator_names),
        accelerator=holds_accelerator(user_options),
        started=iso,
        started_text=text,
    )


def accelerator_names(config: PlatformConfig) -> dict[str, str]:
    """Catalogue name -> what users see (the model's description)."""
    return {a.name: a.description or a.name for a in config.accelerators}


def running_servers(user: Any, names: Mapping[str, str]) -> list[ServerSummary]:
    """Summaries of a hub user's servers that are running (not starting or stopping)."""
    summaries = []
    for server_name, spawner in sorted(user.spawners.items()):
        if not spawner.active or spawner.pending:
            continue
        started = getattr(spawner.orm_spawner, "started", None)
        summaries.append(server_summary(server_name, spawner.user_options, started, names))
    return summaries


def home_servers(platform_config_file: str) -> Callable[[Any], list[ServerSummary]]:
    """The ``template_vars`` callable the home page reads as ``aiinfn_servers``.

    JupyterHub calls it on every page with the current user (``None`` when signed out); it
    must be cheap and never fail, so a configuration that cannot be read only loses the
    catalogue's display names.
    """

    def servers(user: Any) -> list[ServerSummary]:
        if user is None:
            return []
        try:
            names = accelerator_names(config_provider(platform_config_file).current())
        except Exception:  # the provider logs why; raw names still say what the server holds
            names = {}
        return running_servers(user, names)

    return servers


@dataclass(frozen=True)
class ProjectEntry:
    """A project as the refusal page lists it."""

    group: str  # the IAM group that gives the project
    display_name: str
    description: str


def project_entries(config: PlatformConfig) -> list[ProjectEntry]:
    """The platform's projects, by display name, for people who are in none."""
    entries = [
        ProjectEntry(group=name, display_name=p.display_name, description=p.description)
        for name, p in config.projects.items()
    ]
    return sorted(entries, key=lambda e: e.display_name.lower())


def contact_href(contact: str) -> str:
    """A link for the configured contact: ``mailto:`` for an address, the URL for a URL, ""
    for plain text (shown as it is)."""
    contact = contact.strip()
    if contact.startswith(("https://", "http://")) and " " not in contact:
        return contact
    if "@" in contact and " " not in contact and ":" not in contact:
        return f"mailto:{contact}"
    return ""


def refusal_cookie_value(username: str, groups: Iterable[str]) -> str:
    """What the refusal page shows of the refused login: the account and its IAM groups."""
    return json.dumps({"user": username, "groups": sorted(groups)[:50]})


def parse_refusal_cookie(value: bytes | str | None) -> tuple[str, list[str]] | None:
    """``(username, groups)`` of a refusal cookie, or ``None`` if it is missing or malformed."""
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        return None
    groups = data.get("groups")
    if not isinstance(groups, list):
        groups = []
    return data["user"], [str(g) for g in groups]
