"""Who may run what, where: a request + the user + the source pod -> a :class:`JobPlan` (pure).

The Job is re-derived from the source pod, never copied: image, working directory, literal
environment without hub tokens, the pod's user id, and only the volumes and mounts the storage
plan gives the user *now*, as the plan has them (a project lost since the server started is not
cloned; an area whose maintainers the user has left is read-only). Jobs run in their own
namespace: what a volume names in the server's namespace (a claim, a Secret) cannot follow, so
such a clone is refused with the list, and nothing holding a Secret (buckets and the user's
token) is ever cloned. Offloaded pods leave the cluster with
everything mounted into them, so cluster-local volumes refuse an offload, with the list, unless
the configuration gives a JuiceFS stand-in for the platform file system (see ``juicefs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..config import Accelerator, PlatformConfig
from ..config.jobs import Jobs
from ..kubemodel.quantity import parse_quantity
from ..platform import entitlements
from ..platform import vocabulary as v
from ..platform.entitlements import EntitlementError, UserContext
from ..platform.storage import storage_plan
from ..platform.storage.nfs import INIT_CONTAINER
from .errors import BunshinError
from .juicefs import CREDENTIALS_VOLUME, JuiceFSPlan, offload_storage
from .namespaces import foreign_references
from .request import JobRequest

JSON = dict[str, Any]
NOTEBOOK = v.NOTEBOOK_CONTAINER
# environment the hub or kubespawner set for the notebook that must not reach a job
_DROPPED_ENV = re.compile(r"^(JUPYTERHUB_|JPY_|MEM_|CPU_)")
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|PRIVATE)", re.I)


@dataclass(frozen=True)
class JobContext:
    """The facts policy needs about the caller and the world."""

    user: UserContext
    config: PlatformConfig
    can_offload: bool
    active_jobs: int


@dataclass(frozen=True)
class JobPlan:
    """Everything the builder needs: all values checked."""

    user: str
    project: str
    server: str
    source_pod: str
    source_uid: str
    image: str
    command: list[str]
    working_dir: str | None
    env: list[JSON]
    cpu: float
    memory: str
    accelerator: Accelerator | None
    count: int
    completions: int
    parallelism: int
    max_runtime_seconds: int
    offload: bool
    volumes: list[JSON]
    mounts: list[JSON]
    sandbox: dict[str, str]
    security_context: JSON
    supplemental_gids: list[int]
    display_name: str | None = None
    juicefs: JuiceFSPlan | None = None
    retries: int = 0  # the Job's backoffLimit: runs of a failing command after the first
    command_text: str | None = None  # as the user typed it
    notes: list[str] = field(default_factory=list)


def _invalid(message: str) -> BunshinError:
    return BunshinError(422, "invalid", message)


def notebook_container(pod: JSON) -> JSON:
    containers = (pod.get("spec") or {}).get("containers") or []
    found: JSON | None = next((c for c in containers if c.get("name") == NOTEBOOK), None)
    if found is None:
        raise BunshinError(409, "no-server", "the server's pod has no notebook container")
    return found


def check_source_pod(pod: JSON, username: str, expected_uid: str | None = None) -> None:
    """The pod is the user's running notebook server: its username annotation, the UID the
    hub recorded when it started it (when known), running and not being deleted."""
    meta = pod.get("metadata") or {}
    owner = (meta.get("annotations") or {}).get(v.HUB_USERNAME)
    if owner != username:
        raise BunshinError(403, "forbidden", "that server's pod belongs to someone else")
    if expected_uid and meta.get("uid") != expected_uid:
        raise BunshinError(
            409, "no-server", "the server's pod is not the one the hub started; try again"
        )
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
        raise BunshinError(409, "no-server", "the server is not running; start it first")


def choose_project(request: JobRequest, ctx: JobContext) -> str:
    projects = [name for name, _ in ctx.user.projects(ctx.config)]
    if request.project is not None:
        if request.project not in projects:
            raise BunshinError(
                403,
                "forbidden",
                f"you are not a member of project {request.project!r}; yours: "
                f"{', '.join(projects) or 'none'}",
            )
        return request.project
    if not projects:
        raise BunshinError(
            403, "forbidden", "jobs run in a project's queue and you are in no project"
        )
    return projects[0]


def _resources(
    request: JobRequest, ctx: JobContext, container: JSON, pod: JSON
) -> tuple[float, str, Accelerator | None, int]:
    """CPU, memory and accelerator: asked (as minimums), else the server's; then the smallest
    choices of the spawn form that meet them, within the same caps."""
    config, user = ctx.config, ctx.user
    limits = (container.get("resources") or {}).get("limits") or {}
    try:
        image = entitlements.image_by_reference(config, user, str(container.get("image") or ""))
        cpu = request.cpu
        if cpu is None and "cpu" in limits:
            cpu = float(parse_quantity(str(limits["cpu"])))
        cpu = entitlements.fit_cpu(config, user, cpu)
        memory = request.memory or (str(limits["memory"]) if "memory" in limits else None)
        memory = entitlements.fit_memory(config, user, memory)
        name, count = _accelerator_asked(request, pod)
        model = None if name is None else entitlements.check_accelerator(config, user, name, count)
        entitlements.check_image_runs_on(image, model)
    except EntitlementError as exc:
        raise _invalid(str(exc)) from None
    return cpu, memory, model, count if model else 0


def server_accelerator(pod: JSON) -> tuple[str | None, int]:
    """The model and units of the server's pod (its labels); ``(None, 0)`` without one."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = labels.get(v.ACCELERATOR)
    if name in (None, v.NO_ACCELERATOR):
        return None, 0
    try:
        return str(name), int(labels.get(v.ACCELERATOR_COUNT) or 0)
    except ValueError:
        return str(name), 0


def _accelerator_asked(request: JobRequest, pod: JSON) -> tuple[str | None, int]:
    """The model and units the request names, else those of the server (its pod's labels).
    A count without a model asks for that many units of the server's model: refused when the
    server has none (a count is never dropped silently)."""
    wanted = request.accelerator
    if not request.accelerator_given:
        return server_accelerator(pod)
    if wanted is None:
        return None, 0
    if wanted.name is not None:
        return wanted.name, wanted.count
    name, _ = server_accelerator(pod)
    if name is None:
        raise _invalid(
            f"accelerator: {wanted.count} unit(s) of your server's model asked, but your "
            "server has no accelerator: choose a model, or no GPU"
        )
    return name, wanted.count


def _retries(request: JobRequest, jobs: Jobs) -> int:
    """Runs of a failing command after the first: asked, else ``jobs.backoffLimit``."""
    if request.retries is None:
        return jobs.backoff_limit
    if request.retries > jobs.max_retries:
        raise _invalid(f"retries: at most {jobs.max_retries} (asked {request.retries})")
    return request.retries


def _environment(container: JSON, request: JobRequest) -> list[JSON]:
    kept = [
        {"name": e["name"], "value": e["value"]}
        for e in container.get("env") or []
        if isinstance(e.get("value"), str)
        and "valueFrom" not in e
        and not _DROPPED_ENV.match(e["name"])
        and not _SECRET_ENV.search(e["name"])
        and e["name"] not in request.env
    ]
    return kept + [{"name": k, "value": v} for k, v in sorted(request.env.items())]


def _storage(
    request: JobRequest, ctx: JobContext, pod: JSON, container: JSON
) -> tuple[list[JSON], list[JSON], list[int]]:
    """The source pod's volumes the user may still use (as the storage plan says now)."""
    if not request.storage:
        return [], [], []
    # only the plan's volumes and mounts are used: they do not depend on the user's number
    # (the job runs as the source pod's user id, set by the hub)
    plan = storage_plan(
        ctx.config,
        ctx.user.name,
        ctx.user.groups,
        scratch_size=None,
        token_secret="",
        user_number=0,
    )
    planned_mounts = {(m["name"], m["mountPath"], m.get("subPath")): m for m in plan.mounts}
    # a job never holds a Secret of the user's (buckets' token): those volumes are not cloned
    planned_volumes = {
        v["name"]: v for v in plan.volumes if "a Secret" not in foreign_references(v)
    }
    source_volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    volumes: dict[str, JSON] = {}
    mounts: list[JSON] = []
    for mount in container.get("volumeMounts") or []:
        name = mount.get("name", "")
        source = source_volumes.get(name)
        if source is None or name not in planned_volumes:
            continue
        if "emptyDir" in source or "ephemeral" in source:  # scratch: fresh and empty per pod
            size = _scratch_size(source)
            volumes[name] = {"name": name, "emptyDir": {"sizeLimit": size} if size else {}}
            mounts.append({"name": name, "mountPath": mount["mountPath"]})
            continue
        planned = planned_mounts.get((name, mount["mountPath"], mount.get("subPath")))
        if planned is None:
            continue  # e.g. the folder of a project the user has left
        volumes[name] = planned_volumes[name]
        # as the plan has it now (readOnly above all), not as the pod was started
        mounts.append(dict(planned))
    # buckets need the rclone sidecar and the token Secret: not in jobs
    for name in ("buckets", "iam-token"):
        volumes.pop(name, None)
    mounts = [m for m in mounts if m["name"] in volumes]
    return list(volumes.values()), mounts, plan.supplemental_gids


def _run_as(pod: JSON, container: JSON) -> JSON:
    """The ids the server runs as: its container's, else its pod's (the per-user uid)."""
    pod_level = (pod.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    return {
        key: own.get(key, pod_level.get(key))
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot")
        if own.get(key, pod_level.get(key)) is not None
    }


def _check_namespace(ctx: JobContext, pod: JSON, volumes: list[JSON], mounts: list[JSON]) -> None:
    """Refuse volumes naming objects of the server's namespace when the job runs elsewhere."""
    source = (pod.get("metadata") or {}).get("namespace")
    target = ctx.config.jobs.namespace
    if not source or source == target:
        return
    paths: dict[str, list[str]] = {}
    for mount in mounts:
        paths.setdefault(mount["name"], []).append(mount["mountPath"])
    blockers = [
        f"{', '.join(paths.get(v['name'], [v['name']]))} ({' and '.join(refs)})"
        for v in volumes
        if v["name"] != CREDENTIALS_VOLUME and (refs := foreign_references(v))
    ]
    if blockers:
        raise _invalid(
            f"these folders cannot follow the job into the jobs' namespace {target!r}: "
            f"{'; '.join(blockers)} of the server's namespace {source!r}; run it without your "
            'folders ("storage": false in the API, "without my folders" on the page), or ask '
            "the platform administrators"
        )


def _scratch_size(volume: JSON) -> str | None:
    if "emptyDir" in volume:
        size = volume["emptyDir"].get("sizeLimit")
        return str(size) if size else None
    template = volume.get("ephemeral", {}).get("volumeClaimTemplate", {}).get("spec", {})
    size = template.get("resources", {}).get("requests", {}).get("storage")
    return str(size) if size else None


def _check_quota(ctx: JobContext) -> None:
    jobs = ctx.config.jobs
    if ctx.active_jobs >= jobs.max_active_jobs_per_user:
        raise BunshinError(
            409,
            "over-quota",
            f"you have {ctx.active_jobs} queued or running jobs and the limit is "
            f"{jobs.max_active_jobs_per_user}; wait for some to finish or cancel them",
        )


def _shape(request: JobRequest, jobs: Jobs) -> tuple[int, int, int]:
    """Completions, parallelism and run time, within the platform's limits."""
    completions = request.completions
    if completions > jobs.max_completions:
        raise _invalid(f"completions: at most {jobs.max_completions} (asked {completions})")
    parallelism = request.parallelism or completions
    if parallelism > min(jobs.max_parallelism, completions):
        raise _invalid(
            f"parallelism: at most {min(jobs.max_parallelism, completions)} (asked {parallelism})"
        )
    runtime = request.max_runtime_seconds or jobs.max_runtime_seconds
    if runtime > jobs.max_runtime_seconds:
        raise _invalid(f"maxRuntimeSeconds: at most {jobs.max_runtime_seconds} (asked {runtime})")
    return completions, parallelism, runtime


def _check_inputs(request: JobRequest, jobs: Jobs) -> None:
    """Sandbox files and environment values within their byte limits."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in request.sandbox.items())
    if size > jobs.max_sandbox_bytes:
        raise _invalid(f"sandbox: {size} bytes, at most {jobs.max_sandbox_bytes}")
    too_long = sorted(
        k for k, v in request.env.items() if len(v.encode()) > jobs.max_env_value_bytes
    )
    if too_long:
        raise _invalid(
            f"env: {', '.join(too_long)[:200]}: at most {jobs.max_env_value_bytes} bytes per "
            "value; ship larger inputs as sandbox files"
        )


def _offloaded(
    ctx: JobContext, project: str, volumes: list[JSON], mounts: list[JSON], uid: Any
) -> tuple[list[JSON], list[JSON], JuiceFSPlan | None]:
    """The volumes an offloaded pod takes along (JuiceFS stand-ins), if the caller may offload."""
    if not ctx.config.jobs.offload.enabled:
        raise BunshinError(403, "forbidden", "offloading is not offered on this platform")
    if not ctx.can_offload:
        raise BunshinError(403, "forbidden", "you may not offload jobs (ask for the scope)")
    remote = offload_storage(ctx.config, ctx.user.name, project, volumes, mounts, uid=uid)
    if remote.blockers:
        raise _invalid(
            "offload: these folders cannot leave the cluster: "
            f'{", ".join(remote.blockers)}; run it without your folders ("storage": false in '
            'the API, "without my folders" on the page: the sandbox files and an empty '
            "scratch still go along)"
        )
    return remote.volumes, remote.mounts, remote.juicefs


def _security(run_as: JSON) -> JSON:
    """The server's ids, never root, nothing more than the restricted profile allows."""
    return dict(run_as) | {
        "runAsNonRoot": True,  # never root, even if the source pod did not say
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def plan_job(
    request: JobRequest, ctx: JobContext, pod: JSON, server: str, pod_uid: str | None = None
) -> JobPlan:
    """Check the request against the platform, the user and the source pod (whose UID the
    hub recorded, when given)."""
    user = ctx.user
    check_source_pod(pod, user.name, pod_uid)
    project = choose_project(request, ctx)
    _check_quota(ctx)
    container = notebook_container(pod)
    cpu, memory, model, count = _resources(request, ctx, container, pod)
    completions, parallelism, runtime = _shape(request, ctx.config.jobs)
    retries = _retries(request, ctx.config.jobs)
    _check_inputs(request, ctx.config.jobs)
    run_as = _run_as(pod, container)
    volumes, mounts, gids = _storage(request, ctx, pod, container)
    juicefs = None
    if request.offload:
        volumes, mounts, juicefs = _offloaded(
            ctx, project, volumes, mounts, run_as.get("runAsUser")
        )
    _check_namespace(ctx, pod, volumes, mounts)
    return JobPlan(
        user=user.name,
        project=project,
        server=server,
        source_pod=str(pod["metadata"]["name"]),
        source_uid=str(pod["metadata"].get("uid") or ""),
        image=str(container.get("image") or ""),
        command=request.command,
        working_dir=container.get("workingDir"),
        env=_environment(container, request),
        cpu=cpu,
        memory=memory,
        accelerator=model,
        count=count,
        completions=completions,
        parallelism=parallelism,
        max_runtime_seconds=runtime,
        offload=request.offload,
        volumes=volumes,
        mounts=mounts,
        sandbox=request.sandbox,
        security_context=_security(run_as),
        supplemental_gids=gids,
        display_name=request.name,
        juicefs=juicefs,
        retries=retries,
        command_text=request.command_text,
    )


__all__ = ["INIT_CONTAINER", "JobContext", "JobPlan", "plan_job"]
