"""Same question, same answer: the spawn form and Bunshin ask one set of entitlements.

For every user, CPU, memory and accelerator in a grid around the configured limits: a job asks
for minimums and gets the smallest of the user's listed choices meeting them; the spawn form's
validator, given those choices, accepts exactly the jobs Bunshin accepts and refuses the rest
with the same message; and a job asking for more than any choice is refused (Bunshin once took
any CPU and memory up to the maximum and any GPU with any image).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.policy import JobContext, JobPlan, plan_job
from aiinfn_hub.bunshin.request import parse_request
from aiinfn_hub.config import load_platform_config, parse_memory
from aiinfn_hub.inventory.availability import ModelAvailability, ServerAvailability
from aiinfn_hub.platform.entitlements import UserContext, allowed_cpus, allowed_memory
from aiinfn_hub.spawner.options import OptionsError, validate_options

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")
IMAGES = {i.name: i for i in CONFIG.images}
# every model free in plenty: the form's live check is not what is compared here
PLENTY = [
    ModelAvailability(
        a.name, a.description, a.kind, a.memory_gib, 8, 8, (ServerAvailability("s", 8, 8),)
    )
    for a in CONFIG.accelerators
]
USERS = [
    UserContext("ada", frozenset({"ml-infn"})),
    UserContext("carl", frozenset({"cms"})),
    UserContext("quinn", frozenset({"qml", "cms"})),
    UserContext("fay", frozenset({"fpga-lab"})),
]
CPUS = [0.5, 1.0, 3.0, 8.0, 16.0, 32.0]
MEMORIES = ["4Gi", "5Gi", "8192Mi", "32Gi", "64Gi", "128Gi"]
ACCELERATORS: list[tuple[str | None, int]] = [
    (None, 0),
    ("t4", 1),
    ("t4", 2),
    ("a100", 1),
    ("a100-1g-10gb", 1),
    ("u250", 1),
]


def _source_pod(image: str) -> dict[str, Any]:
    """A running notebook pod of the user (the spawner's golden pod) with ``image``."""
    pod: dict[str, Any] = json.loads((ROOT / "tests" / "golden" / "pod-cpu-only.json").read_text())
    pod = copy.deepcopy(pod)
    pod["metadata"] |= {"uid": "u-1", "namespace": "jupyterhub"}
    pod["status"] = {"phase": "Running"}
    notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    notebook["image"] = IMAGES[image].image
    return pod


def _form(
    user: UserContext, image: str, cpu: float, memory: str, model: str | None, count: int
) -> str:
    options: dict[str, Any] = {"image": image, "cpu": cpu, "memory": memory}
    if model:
        options |= {"accelerator": model, "count": count}
    try:
        validate_options(options, CONFIG, user, PLENTY)
    except OptionsError as exc:
        return str(exc)
    return "ok"


def _job(
    user: UserContext, image: str, cpu: float, memory: str, model: str | None, count: int
) -> tuple[str, JobPlan | None]:
    body: dict[str, Any] = {"command": ["python", "train.py"], "cpu": cpu, "memory": memory}
    body["accelerator"] = {"name": model, "count": count} if model else None
    pod = _source_pod(image)
    pod["metadata"]["annotations"]["hub.jupyter.org/username"] = user.name
    ctx = JobContext(user, CONFIG, can_offload=False, active_jobs=0)
    try:
        return "ok", plan_job(parse_request(body), ctx, pod, "")
    except BunshinError as exc:
        assert exc.status == 422, exc.message  # an entitlement refusal, not another rule
        return exc.message, None


def _smallest(choices: list[Any], at_least: float, size: Any = float) -> Any:
    return min((c for c in choices if size(c) >= at_least), key=size, default=None)


@pytest.mark.parametrize("user", USERS, ids=lambda u: sorted(u.groups)[0])
@pytest.mark.parametrize("image", ["base", "cuda-ml"])
def test_the_form_and_bunshin_accept_and_refuse_alike(user: UserContext, image: str) -> None:
    accepted = 0
    cpus, memories = allowed_cpus(CONFIG, user), allowed_memory(CONFIG, user)
    for cpu, memory, (model, count) in itertools.product(CPUS, MEMORIES, ACCELERATORS):
        job, plan = _job(user, image, cpu, memory, model, count)
        fit_cpu = _smallest(cpus, cpu)
        fit_memory = _smallest(memories, parse_memory(memory), parse_memory)
        if fit_cpu is None or fit_memory is None:  # more than any choice of the user's
            assert "is not allowed; choose one of" in job, (cpu, memory, model, count)
            continue
        form = _form(user, image, fit_cpu, fit_memory, model, count)
        assert form == job, (cpu, memory, model, count)
        if plan is not None:
            assert (plan.cpu, plan.memory) == (fit_cpu, fit_memory)
            accepted += 1
    assert accepted > 0  # the grid holds allowed requests too, not only refusals
