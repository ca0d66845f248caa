"""The POST jobs body: shapes and types (400) and values out of range (422)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.request import Accelerator, parse_request


def test_a_full_request_is_read() -> None:
    request = parse_request(
        {
            "server": "gpu",
            "command": ["python", "train.py"],
            "name": "train-1",
            "cpu": 2,
            "memory": "8G",
            "accelerator": {"name": "t4", "count": 2},
            "completions": 4,
            "parallelism": 2,
            "sandbox": {"train.py": "print(1)"},
            "maxRuntimeSeconds": 600,
            "offload": True,
            "env": {"SEED": "1"},
        }
    )
    assert request.server == "gpu" and request.cpu == 2.0
    assert request.accelerator == Accelerator("t4", 2) and request.accelerator_given
    assert (request.completions, request.parallelism) == (4, 2)
    assert request.offload and request.storage


def test_defaults_keep_the_servers_settings() -> None:
    request = parse_request({"command": ["true"]})
    assert request.accelerator is None and not request.accelerator_given
    assert request.cpu is None and request.memory is None and request.completions == 1
    assert parse_request({"command": ["true"], "accelerator": None}).accelerator_given


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], 400, "JSON object"),
        ({}, 400, "command: expected a list"),
        ({"command": ["x"], "image": "evil"}, 400, "unknown field(s) image"),
        ({"command": [1]}, 400, "command: expected a list of strings"),
        ({"command": [""]}, 422, "give the program"),
        ({"command": ["x"] * 300}, 422, "too long"),
        ({"command": ["x"], "cpu": "2"}, 400, "cpu: expected a number"),
        ({"command": ["x"], "cpu": True}, 400, "cpu: expected a number"),
        ({"command": ["x"], "cpu": 0}, 422, "cpu: must be positive"),
        ({"command": ["x"], "completions": 1.5}, 400, "completions: expected a whole number"),
        ({"command": ["x"], "completions": 0}, 422, "completions: must be at least 1"),
        ({"command": ["x"], "name": "Bad Name"}, 422, "name: lowercase"),
        ({"command": ["x"], "sandbox": {"../x": "y"}}, 422, "sandbox: bad file name"),
        ({"command": ["x"], "sandbox": ["x"]}, 400, "sandbox: expected an object"),
        ({"command": ["x"], "env": {"JPY_API_TOKEN": "t"}}, 422, "not a name you may set"),
        ({"command": ["x"], "env": {"A": 1}}, 400, "env: expected an object"),
        ({"command": ["x"], "offload": "yes"}, 400, "offload: expected true or false"),
        ({"command": ["x"], "accelerator": "t4"}, 400, "accelerator: expected"),
        ({"command": ["x"], "accelerator": {"name": "t4", "count": 0}}, 422, "at least 1"),
    ],
)
def test_bad_bodies_name_the_field(body: Any, status: int, message: str) -> None:
    with pytest.raises(BunshinError) as exc:
        parse_request(body)
    assert exc.value.status == status and message in exc.value.message


@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=5)))
def test_arbitrary_bodies_never_crash(body: dict[str, Any]) -> None:
    try:
        parse_request(body)
    except BunshinError as exc:
        assert exc.status in (400, 422) and exc.message


def test_page_forms_become_api_bodies() -> None:
    from aiinfn_hub.bunshin.pages import form_to_body

    body = form_to_body({"command": "python 'my script.py' -v", "accelerator": "t4", "count": "2"})
    assert body == {
        "command": ["python", "my script.py", "-v"],
        "commandText": "python 'my script.py' -v",  # shown as typed
        "offload": False,
        "accelerator": {"name": "t4", "count": 2},
    }
    assert form_to_body({"command": "x", "accelerator": "none"})["accelerator"] is None
    offloaded = form_to_body({"command": "x", "offload": "1"})
    assert offloaded["offload"] is True and offloaded["storage"] is False
    # with JuiceFS for offloaded jobs the folders go along, unless the user says otherwise
    assert "storage" not in form_to_body({"command": "x", "offload": "1"}, offload_storage=True)
    bare = form_to_body({"command": "x", "offload": "1", "nostorage": "1"}, offload_storage=True)
    assert bare["storage"] is False
    with pytest.raises(BunshinError, match="check the quotes"):
        form_to_body({"command": "python 'unclosed"})
