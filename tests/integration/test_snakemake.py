"""Snakemake runs examples/snakemake with its Bunshin profile, as from a terminal in a server: a
real hub with the Bunshin service, the emulated cluster running pods as local processes with
the platform file system as host folders (the server's home is the job pods' home too), and
the Kueue stand-in admitting jobs. Every rule instance becomes a Bunshin job, submitted with
``bunshin submit --parsable`` and followed with ``bunshin status``.

Snakemake comes from its own virtual environment (``.tools/snakemake``, see ``scripts/setup``;
its dependencies clash with the hub's) or from ``$PATH``; without it the module is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from bunshin_helpers import User, bunshin_config, wait_for_bunshin
from iam_platform import (
    EXAMPLES,
    NAMESPACE,
    Hub,
    platform_with_storage,
    running_platform,
    wait_for,
)

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.controllers.volumes import host_path
from aiinfn_hub.dev.kueue_standin import KueueStandIn

pytestmark = pytest.mark.slow
REPO = EXAMPLES.parent
WORKFLOW = EXAMPLES / "snakemake"
ROOT = os.geteuid() == 0
PLUGIN = "snakemake_executor_plugin_cluster_generic"


def find_snakemake() -> tuple[str | None, str]:
    """The ``snakemake`` program with the cluster-generic executor, or None and why not."""
    program = REPO / ".tools" / "snakemake" / "bin" / "snakemake"
    found = str(program) if program.exists() else shutil.which("snakemake")
    if found is None:
        return None, "Snakemake is not installed (scripts/setup puts it in .tools/snakemake)"
    shebang = (Path(found).read_text(errors="replace").splitlines() or [""])[0]
    python = shebang[2:].strip() if shebang.startswith("#!") else ""
    if not python or " " in python:
        return None, f"cannot tell which Python runs {found}"
    check = subprocess.run(
        [python, "-c", f"import {PLUGIN}"], capture_output=True, timeout=60, check=False
    )
    if check.returncode != 0:
        return None, f"{found} has no cluster-generic executor ({PLUGIN})"
    return found, ""


SNAKEMAKE, MISSING = find_snakemake()
if SNAKEMAKE is None:
    pytest.skip(MISSING, allow_module_level=True)


def storage() -> dict[str, Any]:
    """The platform file system (homes on an NFS export) and nothing that needs a server."""
    uid, gid = (1000, 100) if ROOT else (os.geteuid(), os.getegid())
    return {"nfs": {"server": "nfs.local", "path": "/exports"}, "home": {"uid": uid, "gid": gid}}


@dataclass
class Terminal:
    """A terminal in alice's running server: its home (a host folder) and its environment."""

    hub: Hub
    home: Path
    env: dict[str, str]

    def jobs(self, folder: Path) -> dict[str, dict[str, Any]]:
        """The user's Bunshin jobs that run job scripts of the workflow in ``folder``."""
        response = requests.get(
            f"{self.env['BUNSHIN_URL']}/jobs",
            headers={"Authorization": f"token {self.env['JUPYTERHUB_API_TOKEN']}"},
            timeout=30,
        )
        response.raise_for_status()
        return {
            job["id"]: job
            for job in response.json()
            if job["command"][:1] and job["command"][0].startswith(f"{folder}/")
        }

    def workflow(self, name: str) -> Path:
        """A fresh copy of the example workflow in the home."""
        folder = self.home / name
        shutil.copytree(
            WORKFLOW,
            folder,
            ignore=shutil.ignore_patterns(".snakemake", "data", "models", "results", "logs"),
        )
        return folder

    def snakemake(self, folder: Path, *args: str) -> Run:
        """Start ``snakemake --profile profile`` in ``folder``, its output to a file there."""
        assert SNAKEMAKE is not None
        log = folder / "snakemake.out"
        with log.open("w") as out:
            process = subprocess.Popen(
                [SNAKEMAKE, "--profile", "profile", "--seconds-between-status-checks", "1", *args],
                cwd=folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Run(process, log)


@dataclass
class Run:
    """A Snakemake run going on."""

    process: subprocess.Popen[bytes]
    log: Path

    def finish(self, timeout: float) -> tuple[int, str]:
        """Its exit code and output, once it has ended."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"snakemake still running:\n{self.log.read_text()}") from None
        return code, self.log.read_text()


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    with running_platform(
        tmp_path_factory.mktemp("snakemake"),
        platform=lambda folder: platform_with_storage(folder / "config", storage()),
        extra_config=bunshin_config,
    ) as hub:
        kueue = KueueStandIn(hub.emulator.access, interval=0.3).start()
        try:
            wait_for_bunshin(hub)
            yield alice_terminal(hub)
        finally:
            kueue.stop()
            hub.admin("DELETE", "/users/alice/server")


def alice_terminal(hub: Hub) -> Terminal:
    # a CUDA image: the training rules clone the server onto T4s, as the form would allow
    User(hub, "alice", "alice-pw").start_server({"image": "cuda-ml"})
    pod_name = hub.admin_get("/users/alice")["servers"][""]["state"]["pod_name"]
    (pod,) = [
        p for p in hub.emulator.objects("Pod", NAMESPACE) if p["metadata"]["name"] == pod_name
    ]
    (notebook,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    server_env = {e["name"]: e.get("value") for e in notebook.get("env") or []}
    home = host_path(pod, "notebook", "/home/jovyan", hub.emulator.state_dir)
    assert home is not None and home.is_dir()
    token = server_env.get("JUPYTERHUB_API_TOKEN")
    assert token, "the server's own token is in its environment"
    env = {
        # the server's own token, as in every terminal of the server
        "JUPYTERHUB_API_TOKEN": token,
        # the service's address, as configure_bunshin gives it to every server
        "BUNSHIN_URL": server_env["BUNSHIN_URL"],
        # `bunshin` (console script of this project) and python, as in the server's image
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    return Terminal(hub, home, env)


def simulation_starting_with(folder: Path, command: str) -> None:
    """Make the workflow's simulate rule run ``command`` first."""
    snakefile = folder / "Snakefile"
    text = snakefile.read_text()
    changed = text.replace('shell:\n        "python', f'shell:\n        "{command}; python', 1)
    assert changed != text
    snakefile.write_text(changed)


@pytest.fixture(scope="module")
def failing_run(terminal: Terminal) -> Iterator[tuple[Path, Run]]:
    """A workflow whose simulation fails, started early: it runs alongside the next test's."""
    folder = terminal.workflow("failing-analysis")
    simulation_starting_with(folder, "echo no detector today >&2; exit 3")
    run = terminal.snakemake(folder)
    yield folder, run
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait()


@pytest.mark.usefixtures("failing_run")
def test_the_example_workflow_runs_every_rule_as_a_bunshin_job(terminal: Terminal) -> None:
    folder = terminal.workflow("toy-analysis")
    # the training jobs ask for a T4 each: the profile maps resources gpu/gpu_model to --gpu
    code, output = terminal.snakemake(folder, "--config", "train_gpus=1", "gpu_model=t4").finish(
        150
    )
    assert code == 0, output

    summary = json.loads((folder / "results" / "summary.json").read_text())
    assert summary["models"] == 3 and summary["test_events"] == 2000
    assert summary["auc"] > 0.95 and summary["accuracy"] > 0.9, summary
    for shard in range(3):
        assert len((folder / "data" / f"train-{shard}.csv").read_text().splitlines()) == 2001
        assert (folder / "logs" / f"train-{shard}.log").read_text().startswith("data/train-")

    jobs = terminal.jobs(folder)
    # one job per rule instance, named after the rule (as the service allows: evaluate_ensemble
    # becomes evaluate-ensemble)
    names = Counter(j["name"] for j in jobs.values())
    assert names == {"simulate": 1, "train": 3, "evaluate-ensemble": 1}, jobs
    assert all(j["status"] == "succeeded" for j in jobs.values()), jobs
    for job in jobs.values():
        # the job ran the job script Snakemake wrote in the workflow folder
        (script,) = job["command"]
        rule = job["name"].replace("-", "_")
        assert script.startswith(f"{folder}/.snakemake/tmp.") and f"/snakejob.{rule}." in script
        gpu = {"name": "t4", "count": 1} if job["name"] == "train" else None
        assert job["accelerator"] == gpu, job
        assert f"external jobid '{job['id']}'" in output
    trainers = {k for k, j in jobs.items() if j["name"] == "train"}
    # each model and the summary were written inside the Bunshin job that Snakemake submitted
    assert set(summary["trained_by"]) == trainers
    (evaluator,) = [k for k, j in jobs.items() if j["name"] == "evaluate-ensemble"]
    assert summary["evaluated_by"] == evaluator

    # a second run has nothing to do and submits nothing
    code, output = terminal.snakemake(folder).finish(60)
    assert code == 0 and "Nothing to be done" in output, output
    assert terminal.jobs(folder).keys() == jobs.keys()


def test_a_failing_rule_fails_the_workflow_with_its_job(
    terminal: Terminal, failing_run: tuple[Path, Run]
) -> None:
    folder, run = failing_run
    code, output = run.finish(90)
    assert code != 0, output
    (job,) = terminal.jobs(folder).values()
    assert job["name"] == "simulate" and job["status"] == "failed", job
    # the platform did not run the failing command again (jobs.backoffLimit, 0 by default:
    # Snakemake has its own --retries), and it says how the command ended
    retries = load_platform_config(EXAMPLES / "platform.yaml").jobs.backoff_limit
    assert retries == 0 and len(job["pods"]) == 1, job
    assert job["exitCode"] and job["failure"]["pod"] == job["pods"][0]["name"], job
    assert job["reason"] == f"the command failed with exit code {job['exitCode']}", job
    assert "Error in rule simulate" in output and job["id"] in output, output
    assert not (folder / "data" / "test.csv").exists()


def test_stopping_snakemake_cancels_its_jobs(terminal: Terminal) -> None:
    folder = terminal.workflow("stopped-analysis")
    (folder / "data").mkdir()
    # the simulation stalls (a FIFO nobody writes): the job stays running until cancelled
    os.mkfifo(folder / "data" / "stall")
    simulation_starting_with(folder, "cat data/stall")
    run = terminal.snakemake(folder)

    def running_job() -> str | None:
        jobs = terminal.jobs(folder).values()
        return next((j["id"] for j in jobs if j["status"] == "running"), None)

    try:
        job_id = wait_for(running_job, 60, "the simulation job to run")
    finally:
        run.process.send_signal(signal.SIGINT)  # Ctrl-C
    code, output = run.finish(60)
    assert code != 0
    assert terminal.jobs(folder)[job_id]["status"] == "cancelled", output
    assert f"{job_id} cancelled" in output  # what `bunshin cancel` printed
