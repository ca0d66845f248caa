"""``bunshin``: submit and follow Bunshin jobs from a terminal inside your server.

It uses the environment JupyterHub gives every server: ``$JUPYTERHUB_API_TOKEN`` (the server's
token, allowed to submit) and ``$BUNSHIN_URL`` (set by the hub configuration). ``bunshin submit
--parsable`` prints only the job id and ``bunshin status ID`` prints ``running``, ``success`` or
``failed``: together they are Snakemake's cluster-generic submit and status commands. A job
waiting for a GPU again after a notebook preempted it is ``running`` there: its work is not lost
and it runs again (``bunshin status --explain ID`` and ``bunshin ls`` say why it waits). Reads
are retried through short outages of the hub or the service, so a workflow does not give up.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.request
from typing import Any

EXIT_ERROR, EXIT_USAGE = 1, 2
SNAKEMAKE_STATUS = {
    "queued": "running",
    "admitted": "running",
    "running": "running",
    "succeeded": "success",
    "failed": "failed",
    "cancelled": "failed",
}


class CliError(Exception):
    """An error to print as ``bunshin: <message>`` with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def api_base() -> str:
    """``$BUNSHIN_URL``: the hub gives it to every server (``AIInfnSpawner.bunshin_url``)."""
    if os.environ.get("BUNSHIN_URL"):
        return os.environ["BUNSHIN_URL"].rstrip("/")
    raise CliError(
        "BUNSHIN_URL is not set: run me in a terminal of your server (the hub sets it there), "
        "or set it to <hub address>/services/bunshin/api/v1",
        EXIT_USAGE,
    )


# a read that meets these is tried again: the hub or the service restarting must not make a
# workflow manager (Snakemake polls `bunshin status`) give up on running jobs
_TRANSIENT_HTTP = (502, 503, 504)
_READ_ATTEMPTS = 4
_RETRY_DELAY = 2.0


def call(method: str, path: str, body: Any = None) -> Any:
    """One API call; reads (GET) are retried a few times on a connection error or a 502-504."""
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        raise CliError("JUPYTERHUB_API_TOKEN is not set (run me inside your server)", EXIT_USAGE)
    attempts = _READ_ATTEMPTS if method == "GET" else 1
    for attempt in range(1, attempts + 1):
        try:
            return _call_once(method, path, body, token)
        except _Transient as exc:
            if attempt == attempts:
                raise CliError(str(exc)) from None
            time.sleep(_RETRY_DELAY * attempt)
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A failure worth another try."""


def _call_once(method: str, path: str, body: Any, token: str) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{api_base()}/{path}", data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        if exc.code in _TRANSIENT_HTTP:
            raise _Transient(f"{message} (HTTP {exc.code})") from None
        raise CliError(f"{message} (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Transient(f"cannot reach the Bunshin service: {reason}") from None


def gpu(text: str) -> dict[str, Any]:
    """``MODEL`` or ``MODEL:N``. ``none``, or a count of 0 (``t4:0``), asks for no accelerator
    at all (not the server's), so a Snakemake profile can always pass
    ``--gpu {resources.gpu_model}:{resources.gpu}``."""
    name, _, count = text.partition(":")
    if not name or (count and not count.isdigit()):
        raise argparse.ArgumentTypeError("expected MODEL or MODEL:N, e.g. a100:2")
    if name == "none" or (count and int(count) == 0):
        return {"name": "none", "count": 0}
    return {"name": name, "count": int(count or 1)}


def job_name(text: str) -> str | None:
    """A name the service accepts (lowercase letters, digits, '-', at most 32): Snakemake's
    ``--name {rule}`` gives rule names, which are Python names (``train_model``)."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32].rstrip("-")
    return name or None


def submit(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("give the command to run after --, e.g. bunshin submit -- python x.py", 2)
    body: dict[str, Any] = {"command": command, "server": args.server, "offload": args.offload}
    for key, value in (("name", args.name), ("cpu", args.cpu), ("memory", args.memory)):
        if value is not None:
            body[key] = value
    if args.gpu is not None:  # without --gpu, the job keeps the server's accelerator
        body["accelerator"] = args.gpu if args.gpu["count"] else None
    if args.completions is not None:
        body["completions"] = args.completions
    if args.retries is not None:  # without it, the platform's default (no retry)
        body["retries"] = args.retries
    job = call("POST", "jobs", body)
    if args.parsable:
        print(job["id"])
    else:
        print(f"submitted {job['id']} ({job['status']}) to the {job['project']} queue")
    return 0


def listing(args: argparse.Namespace) -> int:
    jobs = call("GET", "jobs")
    if not jobs:
        print("no jobs")
    for job in jobs:
        accelerator = job["accelerator"]
        gpu_text = f"{accelerator['name']}x{accelerator['count']}" if accelerator else "-"
        command = job.get("commandText") or shlex.join(job["command"])  # as typed, if known
        print(f"{job['id']:<32} {job['status']:<10} {gpu_text:<12} {command}")
        why = _why(job)
        if why:
            print(f"{'':<32} {why}")
    return 0


def logs(args: argparse.Namespace) -> int:
    seen: dict[str, int] = {}
    while True:
        answer = call("GET", f"jobs/{args.id}/logs")
        for pod in answer["pods"]:
            text = pod["log"]
            new = text[seen.get(pod["name"], 0) :]
            if new:
                sys.stdout.write(new if len(answer["pods"]) == 1 else _prefixed(pod["name"], new))
                sys.stdout.flush()
            seen[pod["name"]] = len(text)
        if answer.get("truncated") and not seen.get("\0cut"):
            seen["\0cut"] = 1  # said once
            print(f"bunshin: {answer.get('message') or 'the logs are cut'}", file=sys.stderr)
        if not args.follow:
            return 0
        status = call("GET", f"jobs/{args.id}")["status"]
        if status in ("succeeded", "failed", "cancelled"):
            return 0
        time.sleep(2)


def _prefixed(pod: str, text: str) -> str:
    return "".join(f"[{pod}] {line}\n" for line in text.splitlines())


def cancel(args: argparse.Namespace) -> int:
    """Cancel each job given, side by side (Snakemake allows its cancel command 2 seconds);
    every one is tried, and the exit code says whether all were cancelled."""

    def one(job_id: str) -> str | None:
        try:
            job = call("DELETE", f"jobs/{job_id}")
        except CliError as exc:
            print(f"bunshin: {job_id}: {exc}", file=sys.stderr)
            return None
        return f"{job['id']} {job['status']}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, args.ids))
    for line in results:
        if line is not None:
            print(line)
    return EXIT_ERROR if None in results else 0


def _why(job: dict[str, Any]) -> str:
    """The service's reason for the job's status and its preemptions, in plain words."""
    return "; ".join(text for text in (job.get("reason"), job.get("preemptionNote")) if text)


def status(args: argparse.Namespace) -> int:
    """Snakemake's word for the job (a job waiting after a preemption is ``running``); with
    ``--explain``, a second line with the service's status and why."""
    job = call("GET", f"jobs/{args.id}")
    print(SNAKEMAKE_STATUS.get(job["status"], "running"))
    if args.explain:
        why = _why(job)
        print(f"{job['status']}: {why}" if why else job["status"])
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="bunshin", description=__doc__)
    commands = top.add_subparsers(dest="action", required=True)
    sub = commands.add_parser("submit", help="clone your server as a job running CMD")
    sub.add_argument(
        "--gpu",
        type=gpu,
        help="accelerator model and count, e.g. t4 or a100:2 (MODEL:0: none)",
    )
    sub.add_argument("--offload", action="store_true", help="may run on a remote site")
    sub.add_argument("--name", type=job_name, help="a short name for the job")
    sub.add_argument("--cpu", type=float, help="CPU cores (default: your server's)")
    sub.add_argument("--memory", help="memory, e.g. 8Gi (default: your server's)")
    sub.add_argument("--completions", type=int, help="run CMD this many times (indexed)")
    sub.add_argument(
        "--retries",
        type=int,
        help="run a failing CMD again up to this many times (default: not again)",
    )
    sub.add_argument("--server", default="", help="which of your servers to clone")
    sub.add_argument("--parsable", action="store_true", help="print only the job id")
    sub.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    sub.set_defaults(run=submit)
    commands.add_parser("ls", help="your jobs").set_defaults(run=listing)
    several = commands.add_parser("cancel", help="cancel jobs")
    several.add_argument("ids", nargs="+", metavar="ID")
    several.set_defaults(run=cancel)
    for name, run, help_text in (
        ("logs", logs, "the job's output"),
        ("status", status, "running, success or failed"),
    ):
        one = commands.add_parser(name, help=help_text)
        one.add_argument("id")
        if name == "logs":
            one.add_argument("-f", "--follow", action="store_true", help="until the job ends")
        else:
            one.add_argument(
                "--explain", action="store_true", help="also say the job's status and why"
            )
        one.set_defaults(run=run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as exc:
        print(f"bunshin: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
