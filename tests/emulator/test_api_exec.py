"""``pods/exec`` and ``pods/attach`` with kubectl 1.32 (WebSocket, ``v5.channel.k8s.io``).

Process-mode pods run their command locally: exec runs in the container's context (its
environment with downward-API values, its working folder, its mounts) and kubectl's exit
status is the command's. Simulated pods have nothing to run: exec fails as a runtime does
for a command missing from the image. Refusals before the upgrade carry the API server's
words; the raw-HTTP checks read the ``Status`` bodies themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_client import wait_until
from stream_fixtures import (
    NS,
    PY,
    StreamCluster,
    needs_kubectl,
    process_pod,
    simulated_pod,
    start_stream_cluster,
    streams,
    web_pod,
)

__all__ = ["streams"]  # the module-scoped fixture, shared by the tests below
pytestmark = needs_kubectl


@pytest.fixture(scope="module")
def web(streams: StreamCluster) -> Iterator[StreamCluster]:
    streams.create(web_pod("web"))
    streams.serving("web")
    yield streams


def test_exec_runs_in_the_container_context(web: StreamCluster) -> None:
    result = web.kubectl(
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        'echo "$GREETING $POD_NAME $POD_IP"; pwd; cat /data/main.txt',
    )
    assert result.returncode == 0, result.stderr
    greeting, cwd, from_main = result.stdout.decode().splitlines()
    assert greeting == f"hello web {web.pod('web')['status']['podIP']}"
    assert cwd.endswith("/pods/default_web/root/srv/work")  # the container's workingDir
    assert from_main == "from-main"  # /data is the same folder the main process wrote to


def test_exec_keeps_stdout_and_stderr_apart(web: StreamCluster) -> None:
    result = web.kubectl("exec", "web", "--", "sh", "-c", "echo to-out; echo to-err >&2")
    assert result.returncode == 0
    assert result.stdout == b"to-out\n"
    assert result.stderr == b"to-err\n"


def test_exec_exit_code_becomes_kubectl_exit_status(web: StreamCluster) -> None:
    result = web.kubectl("exec", "web", "--", "sh", "-c", "echo partial; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"partial\n"
    assert b"command terminated with exit code 7" in result.stderr


def test_exec_with_stdin_pipes_it_to_the_command(web: StreamCluster) -> None:
    payload = b"line one\nline two\n" * 1000
    result = web.kubectl(
        "exec", "-i", "web", "--", "sh", "-c", "wc -l; cat >/dev/null", stdin=payload
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"2000"


def test_exec_echoes_stdin_back(web: StreamCluster) -> None:
    result = web.kubectl("exec", "-i", "web", "--", "cat", stdin=b"echo me\n")
    assert (result.returncode, result.stdout) == (0, b"echo me\n")


def test_exec_tty_gives_a_terminal_of_the_client_size(web: StreamCluster) -> None:
    code, output = web.kubectl_in_terminal(
        "exec",
        "-it",
        "web",
        "--",
        "sh",
        keys=b"echo $((6*7)); stty size; tty; exit 5\r",
        until=b"",
        size=(31, 101),
    )
    text = output.decode(errors="replace")
    assert code == 5, text
    assert "42" in text
    assert "31 101" in text  # kubectl's resize message reached the terminal
    assert "/dev/pts/" in text


def test_exec_tty_without_a_terminal_runs_without_one(web: StreamCluster) -> None:
    # kubectl asks for a terminal only when its own stdin is one
    result = web.kubectl("exec", "-t", "web", "--", "sh", "-c", "tty; echo plain")
    assert result.returncode == 0
    assert result.stdout == b"not a tty\nplain\n"  # a terminal would have sent \r\n


def test_exec_missing_command_is_the_runtime_error(web: StreamCluster) -> None:
    result = web.kubectl("exec", "web", "--", "no-such-command")
    assert result.returncode == 1
    message = result.stderr.decode()
    assert message.startswith(
        "error: Internal error occurred: error executing command in container"
    )
    assert 'exec: "no-such-command": executable file not found in $PATH: unknown' in message


def test_exec_in_a_simulated_pod_fails_like_a_missing_binary(streams: StreamCluster) -> None:
    streams.create(simulated_pod("sim"))
    streams.running("sim")
    result = streams.kubectl("exec", "sim", "--", "ls")
    assert result.returncode == 1
    assert 'exec: "ls": executable file not found in $PATH' in result.stderr.decode()


def test_exec_errors_before_the_upgrade(streams: StreamCluster) -> None:
    missing = streams.kubectl("exec", "absent", "--", "true")
    assert missing.returncode == 1
    assert (
        missing.stderr.decode().strip() == 'Error from server (NotFound): pods "absent" not found'
    )
    streams.create(simulated_pod("two", containers=2))
    streams.running("two")
    wrong = streams.kubectl("exec", "two", "-c", "nope", "--", "true")
    assert wrong.stderr.decode().strip() == (
        "Error from server (BadRequest): container nope is not valid for pod two"
    )
    # kubectl itself picks the first container when none is named, and says so
    defaulted = streams.kubectl("exec", "two", "--", "true")
    assert 'Defaulted container "c0" out of: c0, c1' in defaulted.stderr.decode()


def test_exec_refusals_over_raw_http(streams: StreamCluster) -> None:
    streams.create(simulated_pod("pair", containers=2))
    streams.running("pair")
    streams.create(
        process_pod(
            "pending",
            [{"name": "main", "image": "x", "command": ["true"]}],
            nodeSelector={"no": "such-node"},
        )
    )
    cases = [
        ("absent/exec?command=true&stdout=1", 404, 'pods "absent" not found'),
        (
            "pair/exec?command=true&stdout=1",
            400,
            "a container name must be specified for pod pair, choose one of: [c0 c1]",
        ),
        (
            "pair/exec?container=c0&stdout=1",
            400,
            "you must specify at least one command for the container",
        ),
        (
            "pair/exec?container=c0&command=true",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        ("pair/exec?container=c0&command=true&stdout=1", 400, "Upgrade request required"),
        ("pending/exec?command=true&stdout=1", 400, "pod pending does not have a host assigned"),
    ]
    for path, code, message in cases:
        status, body, _ = streams.raw.get(f"{NS}/pods/{path}")
        assert (status, body["message"]) == (code, message), path
        assert body["kind"] == "Status" and body["status"] == "Failure"


def test_exec_into_a_container_that_is_not_running(streams: StreamCluster) -> None:
    streams.create(
        process_pod(
            "done", [{"name": "main", "image": "x", "command": ["true"]}], restartPolicy="Never"
        )
    )
    wait_until(lambda: streams.pod("done")["status"].get("phase") == "Succeeded", 15, "done")
    status, body, _ = streams.raw.get(f"{NS}/pods/done/exec?command=true&stdout=1")
    assert (status, body["message"]) == (400, 'container not found ("main")')
    result = streams.kubectl("exec", "done", "--", "true")
    assert result.returncode == 1
    assert "cannot exec into a container in a completed pod" in result.stderr.decode()


def test_exec_needs_the_token(streams: StreamCluster) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{streams.raw.base_url}{NS}/pods/web/exec?command=true&stdout=1",
        headers={"Connection": "Upgrade", "Upgrade": "websocket"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=streams.raw.context, timeout=10)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["reason"] == "Unauthorized"


# -- attach ---------------------------------------------------------------------------------
TICKER = (
    "i=0; while [ ! -e stop ]; do echo tick $i; i=$((i+1)); "
    f'{PY} -c "import time; time.sleep(0.05)"; done; echo bye'
)


def test_attach_streams_the_main_process_output_until_it_ends(streams: StreamCluster) -> None:
    streams.create(
        process_pod(
            "ticker",
            [{"name": "main", "image": "x", "command": ["sh", "-c", TICKER]}],
            restartPolicy="Never",
        )
    )
    streams.running("ticker")
    attach = streams.kubectl_popen("attach", "ticker")
    assert attach.stdout is not None
    first = attach.stdout.readline()
    assert first.startswith(b"tick "), first
    stop = streams.kubectl("exec", "ticker", "--", "touch", "stop")  # in the container's folder
    assert stop.returncode == 0, stop.stderr
    rest, errors = attach.communicate(timeout=30)
    assert attach.returncode == 0, errors
    assert rest.splitlines()[-1] == b"bye"
    start = int(first.split()[1])
    numbers = [int(line.split()[1]) for line in rest.splitlines()[:-1]]
    assert numbers == list(range(start + 1, start + 1 + len(numbers)))  # nothing lost


def test_attach_to_a_missing_pod(streams: StreamCluster) -> None:
    result = streams.kubectl("attach", "absent")
    assert result.returncode == 1
    assert 'pods "absent" not found' in result.stderr.decode()


# -- the container's user ---------------------------------------------------------------------
DROP_TO_1000 = (
    "import os, time; os.setgroups([4242]); os.setgid(1000); os.setuid(1000); "
    "[time.sleep(1) for _ in iter(int, 1)]"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_exec_runs_as_the_user_of_the_container_process() -> None:
    base = Path(tempfile.mkdtemp(prefix="exec-user-"))
    os.chmod(base, 0o755)  # the pod folders must be reachable by uid 1000
    users = start_stream_cluster(base)
    try:
        users.create(
            process_pod(
                "dropped", [{"name": "main", "image": "x", "command": [PY, "-c", DROP_TO_1000]}]
            )
        )
        users.running("dropped")
        result = users.kubectl("exec", "dropped", "--", "sh", "-c", "id -u; id -g; id -G")
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().splitlines() == ["1000", "1000", "1000 4242"]
    finally:
        users.emulator.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_stopping_the_emulator_ends_open_streams(tmp_path: Path) -> None:
    cluster = start_stream_cluster(tmp_path)
    try:
        cluster.create(web_pod("web"))
        cluster.serving("web")
        exec_ = cluster.kubectl_popen("exec", "web", "--", "sh", "-c", "echo started; sleep 600")
        forward = cluster.kubectl_popen("port-forward", "pod/web", ":8888")
        assert exec_.stdout is not None and forward.stdout is not None
        assert exec_.stdout.readline() == b"started\n"
        assert forward.stdout.readline().startswith(b"Forwarding from")
    finally:
        cluster.emulator.stop()
    # the container was stopped under the exec: SIGKILL's 137, as from a cluster
    assert exec_.wait(timeout=15) == 137
    assert forward.wait(timeout=15) == 1
    assert forward.communicate()[1] == b"error: lost connection to pod\n"


def test_kubectl_uses_the_default_container_annotation(streams: StreamCluster) -> None:
    containers = [
        {
            "name": name,
            "image": "x",
            "command": ["sleep", "600"],
            "env": [{"name": "WHO", "value": f"I am {name}"}],
        }
        for name in ("first", "second")
    ]
    pod = process_pod("annotated", containers)
    pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] = "second"
    streams.create(pod)
    streams.running("annotated")
    result = streams.kubectl("exec", "annotated", "--", "sh", "-c", 'echo "$WHO"')
    assert (result.returncode, result.stdout, result.stderr) == (0, b"I am second\n", b"")
    named = streams.kubectl("exec", "annotated", "-c", "first", "--", "sh", "-c", 'echo "$WHO"')
    assert named.stdout == b"I am first\n"
