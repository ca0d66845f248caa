"""The ``bunshin`` CLI against a small real HTTP server standing in for the service's API:
retries of reads through outages, no retry of writes, several cancels, clear usage errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiinfn_hub.bunshin import cli


class FakeApi:
    """Answers from a script: per (method, path), a list of (status, body) used in turn."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.seen: list[tuple[str, str, str]] = []
        self.bodies: list[Any] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                key = (self.command, self.path)
                api.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                length = int(self.headers.get("Content-Length") or 0)
                api.bodies.append(json.loads(self.rfile.read(length)) if length else None)
                queue = api.answers.get(key) or [(404, {"error": "not-found", "message": "no"})]
                status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.seen if (m, p) == (method, f"/api/v1/{path}"))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    monkeypatch.setenv("BUNSHIN_URL", fake.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.setattr(cli, "_RETRY_DELAY", 0.01)
    yield fake
    fake.server.shutdown()


def test_status_rides_out_a_restarting_service(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("GET", "/api/v1/jobs/j1")] = [
        (503, {"error": "unavailable", "message": "the cluster did not answer"}),
        (502, {}),
        (200, {"id": "j1", "status": "queued"}),
    ]
    assert cli.main(["status", "j1"]) == 0
    assert capsys.readouterr().out == "running\n"
    assert api.calls("GET", "jobs/j1") == 3
    assert {auth for *_, auth in api.seen} == {"token server-token"}


def test_a_lasting_outage_and_a_missing_job_are_errors(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("GET", "/api/v1/jobs/j1")] = [(503, {"message": "down"})]
    assert cli.main(["status", "j1"]) == 1
    assert "down (HTTP 503)" in capsys.readouterr().err
    assert api.calls("GET", "jobs/j1") == cli._READ_ATTEMPTS
    assert cli.main(["status", "gone"]) == 1  # a 404 is an answer: asked once
    assert api.calls("GET", "jobs/gone") == 1


def test_a_submission_is_never_sent_twice(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("POST", "/api/v1/jobs")] = [(503, {"message": "try again"})]
    assert cli.main(["submit", "--parsable", "--", "python", "x.py"]) == 1
    assert api.calls("POST", "jobs") == 1
    assert "try again" in capsys.readouterr().err


def test_gpu_zero_or_none_asks_for_no_accelerator_and_no_flag_keeps_the_servers(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("POST", "/api/v1/jobs")] = [(201, {"id": "j", "status": "queued"})]
    for flags, accelerator in (
        (["--gpu", "none:0"], None),
        (["--gpu", "t4:0"], None),
        (["--gpu", "none"], None),
        (["--gpu", "a100:2"], {"name": "a100", "count": 2}),
        (["--gpu", "t4"], {"name": "t4", "count": 1}),
    ):
        assert cli.main(["submit", "--parsable", *flags, "--", "x"]) == 0
        assert api.bodies[-1]["accelerator"] == accelerator, flags
    assert cli.main(["submit", "--parsable", "--", "x"]) == 0
    assert "accelerator" not in api.bodies[-1]  # the server's own
    assert capsys.readouterr().out == "j\n" * 6


def test_cancel_takes_several_ids_and_reports_each(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    for job in ("a", "b"):
        api.answers[("DELETE", f"/api/v1/jobs/{job}")] = [(200, {"id": job, "status": "cancelled"})]
    assert cli.main(["cancel", "a", "missing", "b"]) == 1  # one of them failed
    out, err = capsys.readouterr()
    assert out.splitlines() == ["a cancelled", "b cancelled"]
    assert "missing" in err
    assert api.calls("DELETE", "jobs/missing") == 1  # writes are never sent twice
    assert cli.main(["cancel", "a", "b"]) == 0


def test_outside_a_server_it_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BUNSHIN_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    assert cli.main(["ls"]) == cli.EXIT_USAGE
    assert "BUNSHIN_URL is not set" in capsys.readouterr().err


def test_retries_are_asked_only_with_the_flag_and_ls_shows_commands_as_typed(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("POST", "/api/v1/jobs")] = [(201, {"id": "j", "status": "queued"})]
    assert cli.main(["submit", "--parsable", "--", "x"]) == 0
    assert "retries" not in api.bodies[-1]  # the platform's default: no retry
    assert cli.main(["submit", "--parsable", "--retries", "2", "--", "x"]) == 0
    assert api.bodies[-1]["retries"] == 2
    listed = {
        "status": "failed",
        "accelerator": None,
        "reason": "the command failed with exit code 3",
    }
    api.answers[("GET", "/api/v1/jobs")] = [
        (
            200,
            [
                {"id": "a", "command": ["python", "-c", "print('a b')"], **listed},
                {"id": "b", "command": ["echo", "a  b"], "commandText": 'echo "a  b"', **listed},
            ],
        )
    ]
    capsys.readouterr()
    assert cli.main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "python -c 'print('\"'\"'a b'\"'\"')'" in out and 'echo "a  b"' in out
    assert "the command failed with exit code 3" in out
