"""What the hub's own pages say: running servers, projects, contact, the refusal cookie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from aiinfn_hub.auth.hub_pages import (
    TIMES,
    accelerator_names,
    contact_href,
    describe_options,
    holds_accelerator,
    home_servers,
    parse_refusal_cookie,
    project_entries,
    refusal_cookie_value,
    running_servers,
    server_summary,
    started_texts,
)
from aiinfn_hub.config import load_platform_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = load_platform_config(EXAMPLES / "platform.yaml")
NAMES = accelerator_names(CONFIG)
PROFILE = f"cms · NVIDIA A100 MIG slice 1g.10gb {TIMES}1 on server-3 · cuda-ml"


def test_the_spawners_profile_line_is_shown_as_it_is() -> None:
    options = {"accelerator": "a100-1g-10gb", "count": 1, "image": "cuda-ml", "profile": PROFILE}
    assert describe_options(options, NAMES) == PROFILE


def test_servers_started_before_the_profile_line_show_their_raw_choice() -> None:
    options = {"accelerator": "a100-1g-10gb", "count": 2, "image": "cuda-ml", "server": "server-3"}
    assert describe_options(options, NAMES) == (
        f"NVIDIA A100 MIG slice 1g.10gb (a seventh of an A100 80 GB) {TIMES}2 on server-3 · "
        "image cuda-ml"
    )
    # a model the catalogue no longer has keeps its name
    assert describe_options({"accelerator": "gone", "count": 1}, NAMES) == f"gone {TIMES}1"
    assert describe_options({"accelerator": "none", "image": "base"}, NAMES) == (
        "no accelerator (CPU only) · image base"
    )
    assert describe_options({"profile": "  "}, {}) == "no accelerator (CPU only)"


def test_which_servers_hold_an_accelerator() -> None:
    assert holds_accelerator({"accelerator": "t4"})
    for options in ({"accelerator": "none"}, {"accelerator": ""}, {}, None):
        assert not holds_accelerator(options)


def test_start_times_are_utc_for_the_page_and_its_script() -> None:
    naive = datetime(2026, 12, 7, 16, 4, 5, 123456)  # how JupyterHub stores them
    assert started_texts(naive) == ("2026-12-07T16:04:05Z", "2026-12-07 16:04 UTC")
    rome = datetime(2026, 12, 7, 17, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert started_texts(rome)[0] == "2026-12-07T16:04:05Z"
    assert started_texts(None) == ("", "")


def _spawner(options: dict[str, object], *, active: bool = True, pending: str | None = None):
    orm = SimpleNamespace(started=datetime(2026, 12, 7, 16, 4, tzinfo=UTC))
    return SimpleNamespace(active=active, pending=pending, user_options=options, orm_spawner=orm)


def test_only_running_servers_are_summarized() -> None:
    user = SimpleNamespace(
        spawners={
            "": _spawner({"accelerator": "t4", "count": 1, "profile": PROFILE}),
            "cpu": _spawner({"accelerator": "none", "image": "base"}),
            "starting": _spawner({"accelerator": "t4"}, pending="spawn"),
            "stopped": _spawner({"accelerator": "t4"}, active=False),
        }
    )
    summaries = running_servers(user, NAMES)
    assert [(s.name, s.accelerator) for s in summaries] == [("", True), ("cpu", False)]
    assert summaries[0] == server_summary(
        "", {"profile": PROFILE, "accelerator": "t4"}, datetime(2026, 12, 7, 16, 4), NAMES
    )


def test_the_home_page_callable_is_empty_when_signed_out_and_survives_a_bad_file(
    tmp_path: Path,
) -> None:
    assert home_servers(str(EXAMPLES / "platform.yaml"))(None) == []
    user = SimpleNamespace(spawners={"": _spawner({"accelerator": "t4", "count": 1})})
    (summary,) = home_servers(str(tmp_path / "missing.yaml"))(user)
    assert summary.holds == f"t4 {TIMES}1"  # raw names, but still said


def test_the_refusal_page_lists_projects_by_display_name() -> None:
    entries = project_entries(CONFIG)
    assert [e.display_name for e in entries] == [
        "CMS",
        "FPGA lab",
        "LHCb Flash Simulation",
        "ML_INFN",
        "Quantum ML",
    ]
    assert entries[0].group == "cms" and "CMS analyses" in entries[0].description


def test_the_contact_becomes_a_link_when_it_is_an_address() -> None:
    assert contact_href("ai-support@example.org") == "mailto:ai-support@example.org"
    assert contact_href(" https://example.org/help ") == "https://example.org/help"
    assert contact_href("your group leader") == ""
    assert contact_href("javascript:alert(1)@x") == ""
    assert contact_href("") == ""


def test_the_refusal_cookie_round_trips_and_rejects_garbage() -> None:
    value = refusal_cookie_value("guest", {"visitors", "other"})
    assert parse_refusal_cookie(value) == ("guest", ["other", "visitors"])
    assert parse_refusal_cookie(value.encode()) == ("guest", ["other", "visitors"])
    for bad in (None, b"", "not json", "[1]", '{"groups": []}'):
        assert parse_refusal_cookie(bad) is None
    assert parse_refusal_cookie('{"user": "x", "groups": "nope"}') == ("x", [])
