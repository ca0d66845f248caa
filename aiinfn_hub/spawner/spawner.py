"""``AIInfnSpawner``: KubeSpawner with a GPU-aware spawn form and server-side validation.

Registered as the ``jupyterhub.spawners`` entry point ``aiinfn``
(``c.JupyterHub.spawner_class = "aiinfn"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from typing import Any

from jupyterhub.handlers.pages import SpawnHandler
from kubernetes_asyncio import client
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Bool, Float, Unicode, default

from ..config import PlatformConfig, config_provider
from ..inventory.availability import ModelAvailability
from ..inventory.live import LiveInventory
from ..kube.informer import ClusterView
from ..kube.rest import KubeError, cluster_unavailable, kube_call
from ..platform import entitlements
from ..platform.entitlements import UserContext
from ..platform.names import user_server_slug, user_slug
from ..platform.placement import DEFAULT_RESERVED_KEY
from ..platform.storage import StoragePlan, spawner_settings, storage_plan
from ..platform.storage.buckets import SIDECAR as BUCKET_SIDECAR
from ..platform.storage.nfs import INIT_CONTAINER as STORAGE_INIT
from ..platform.storage.plan import TRAITS as STORAGE_TRAITS
from ..platform.vocabulary import NO_ACCELERATOR
from .form_render import render_form
from .form_view import TIMES, profile_line, short_model_name, stored_profile_line
from .options import DERIVED, OptionsError, ServerChoice, form_to_options, validate_options
from .pod_settings import pod_settings
from .progress_steps import StartContext, StepTracker
from .token_secret import token_secret_manifest, token_secret_name
from .user_ids import user_number

# the value of each notebook PriorityClass, with the loop time it was read at
_priority_values: dict[str, tuple[float, int | None]] = {}
PRIORITY_CLASS_TTL = 60.0
# one inventory per hub event loop, shared by every spawner (like kubespawner's reflectors)
_inventories: dict[asyncio.AbstractEventLoop, LiveInventory] = {}

_TEMPLATE_FIELD = re.compile(
    r"(?<!\{)\{(username|safe_username|user_server|safe_user_server)\}(?!\})"
)


async def shared_inventory(timeout: float) -> LiveInventory:
    """The process's live inventory, started on first use."""
    loop = asyncio.get_running_loop()
    inventory = _inventories.get(loop)
    if inventory is None:
        view = ClusterView(client.ApiClient())
        view.start()
        inventory = _inventories[loop] = LiveInventory(view)
    await inventory.view.wait_ready(timeout)
    return inventory


async def stop_shared_inventories() -> None:
    """Stop every informer (tests, and hub shutdown)."""
    for loop, inventory in list(_inventories.items()):
        if loop is asyncio.get_running_loop():
            await inventory.view.stop()
            await inventory.view.api_client.close()
        _inventories.pop(loop, None)


# what a user sees when their server cannot start because the cluster does not answer
CLUSTER_UNAVAILABLE = (
    "The cluster is not answering right now, so your server was not started. Nothing was "
    "lost: try again in a minute; if it lasts, tell the platform administrators."
)


class AIInfnSpawner(KubeSpawner):  # type: ignore[misc]
    """KubeSpawner whose options come from the platform catalogue, validated on the server."""

    _start_config: PlatformConfig | None = None

    platform_config_file = Unicode(
        "",
        config=True,
        help="""Path of the platform configuration YAML (accelerators, images, resources,
        projects), validated by `aiinfn_hub.config.PlatformConfig`. Re-read when it changes
        (one shared provider per file for the spawner, the authenticator and the services; an
        invalid edit is logged and the last valid version stays in force). Each start uses one
        version from its options to its mounts. Required: the spawner refuses to start
        without it.""",
    )
    notebook_priority_class = Unicode(
        "",
        config=True,
        help="""PriorityClass given to notebook pods, e.g. `notebook`. Give it a higher value
        than the batch (Bunshin) jobs' class, so notebooks can preempt opportunistic jobs.
        Empty: no class (the cluster default applies).""",
    )
    reserved_node_key = Unicode(
        DEFAULT_RESERVED_KEY,
        config=True,
        help="""Taint or label key that reserves a node for one project
        (`<key>=<project>`): such nodes are offered only to that project's members.""",
    )
    bunshin_url = Unicode(
        "",
        config=True,
        help="""Address of the Bunshin API (`<service url>/services/bunshin/api/v1`), given to
        servers as `$BUNSHIN_URL` so the `bunshin` command works in their terminals. Set by
        `configure_bunshin`; kept apart from `environment`, which a more specific section of
        the hub configuration (e.g. z2jh's `singleuser.extraEnv`) replaces whole.""",
    )
    inventory_timeout = Float(
        10.0,
        config=True,
        help="""Seconds to wait for the first list of nodes and pods before the form or a
        start is refused with a message to retry.""",
    )

    bucket_mount_timeout = Float(
        20.0,
        config=True,
        help="""Seconds to wait, once the pod runs, for the bucket sidecar to report each
        mount; a bucket that failed (or did not report in time) is named on the spawn progress
        page, and the server starts anyway. 0: do not wait.""",
    )
    storage_token_secret = Bool(
        True,
        config=True,
        help="""Keep the user's storage token (from the authenticator's encrypted auth_state)
        in the Secret `aiinfn-token-<user>` of the spawner's namespace while the user has a
        server: written at spawn, rewritten at the spawner poll after each renewal, deleted
        when the user's last server stops. Needs an authenticator with `storage_token()`
        (`IAMAuthenticator`); with others nothing is written.""",
    )

    _token_written: str | None = None  # the token last written to the Secret by this spawner
    _progress_notes: list[str] = []  # replaced per start
    _making_room_on: str | None = None  # node a batch job makes room on, this start
    _storage_reported: asyncio.Event | None = None
    _storage_base: dict[str, Any] | None = None  # the hub configuration's own storage traits
    _pod_uid: str | None = None  # the UID of the pod this spawner started
    storage_plan: StoragePlan | None = None  # what the last start mounts
    _slug_cache: tuple[tuple[str, str], dict[str, str]] | None = None

    # -- names -----------------------------------------------------------------------------
    def _expand_user_properties(self, template: str, slug_scheme: str | None = None) -> str:
        """kubespawner's templating, with injective names for ``{username}``/``{user_server}``.

        kubespawner's "safe" slugs keep 32 bits of hash: a searched-for username could get
        another user's pod name (and the hub would replace that user's pod). Ours cannot
        collide (see :mod:`aiinfn_hub.platform.names`); clean names (``alice``) are unchanged.
        """
        if "{" not in template and "}" not in template:
            # nothing to expand: kubespawner's ``format`` would return it as it is, after
            # building every name (most of a manifest's strings; ours add a hundred)
            return template
        if (slug_scheme or self.slug_scheme) == "safe":
            names = self._slug_names()
            # only real fields: ``{{username}}`` is an escaped literal and stays one
            template = _TEMPLATE_FIELD.sub(lambda m: names[m.group(1)], template)
        expanded: str = super()._expand_user_properties(template, slug_scheme)
        return expanded

    def _slug_names(self) -> dict[str, str]:
        """Our names for the template fields, computed once per user and server name (a pod
        manifest expands a hundred templates)."""
        key = (self.user.name, self.name or "")
        cached = self._slug_cache
        if cached is None or cached[0] != key:
            names = {
                "username": user_slug(key[0]),
                "user_server": user_server_slug(*key),
            }
            names["safe_username"], names["safe_user_server"] = names.values()
            cached = self._slug_cache = (key, names)
        return cached[1]

    # -- context ---------------------------------------------------------------------------
    @property
    def platform(self) -> PlatformConfig:
        if not self.platform_config_file:
            raise web.HTTPError(
                500,
                "the hub has no platform configuration; the "
                "administrator must set AIInfnSpawner.platform_config_file",
            )
        return config_provider(self.platform_config_file).current()

    def user_context(self) -> UserContext:
        groups = frozenset(g.name for g in getattr(self.user, "groups", []) or [])
        return UserContext(self.user.name, groups)

    async def availability(self, config: PlatformConfig | None = None) -> list[ModelAvailability]:
        """Live free/total of the models this user may use (under ``config``, when given)."""
        config = config or self.platform
        try:
            inventory = await shared_inventory(self.inventory_timeout)
        except TimeoutError:
            raise web.HTTPError(
                503, "the cluster inventory is not ready yet; retry in a few seconds"
            ) from None
        user = self.user_context()
        allowed = {a.name for a in entitlements.allowed_accelerators(config, user)}
        models = inventory.availability(
            config, set(user.groups), self.reserved_node_key, await self.notebook_priority()
        )
        return [m for m in models if m.name in allowed]

    async def notebook_priority(self) -> int | None:
        """The priority of notebook pods: pods below it (batch jobs) are preempted for them.

        The value of ``notebook_priority_class``, read from the cluster and kept a minute; 0
        without a class. None when the class cannot be read: then no unit held by a job is
        offered, since the form must not promise what the scheduler may not give.
        """
        name = self.notebook_priority_class
        if not name:
            return 0
        now = asyncio.get_running_loop().time()
        cached = _priority_values.get(name)
        if cached is not None and now - cached[0] < PRIORITY_CLASS_TTL:
            return cached[1]
        value: int | None
        try:
            found = await kube_call(
                client.SchedulingV1Api(self.api.api_client).read_priority_class(name),
                "PriorityClass",
                "",
                name,
            )
            value = int(found.value)
        except KubeError as exc:
            self.log.warning("Notebooks cannot preempt batch jobs in the form's counts: %s", exc)
            value = None
        _priority_values[name] = (now, value)
        return value

    # -- form ------------------------------------------------------------------------------
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the stored options are those of the last start that worked (a refusal puts them back)
        self._last_started: dict[str, Any] = dict(self.user_options or {})
        self._form_error: OptionsError | None = None
        self._choice: ServerChoice | None = None
        self._adopted = False

    async def get_options_form(self) -> str:
        """The form, pre-filled from the last choice that started, with the error of the last
        refused one (shown once) next to its field."""
        config = self.platform
        error, self._form_error = self._form_error, None
        return render_form(
            config,
            self.user_context(),
            await self.availability(config),
            self._last_started,
            error,
        )

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self._aiinfn_options_from_form

    def _aiinfn_options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Form fields to ``user_options``; checked fully again in ``load_user_options``."""
        try:
            options = form_to_options(formdata)
        except OptionsError as exc:
            self._form_error = exc
            raise _refusal(exc) from exc
        if options.get("accelerator") in (None, "", NO_ACCELERATOR):
            # the form always posts count and server; they mean nothing without a model
            options.pop("count", None)
            options.pop("server", None)
        elif options.get("server") == "":
            options.pop("server")
        return options

    def _restore_last_started(self) -> None:
        """After a refusal or a failed start, keep the last choice that started as the stored
        options: JupyterHub stores what was submitted, pre-fills nothing from it here, and
        reuses it for a REST start with an empty body, which must not repeat the failure."""
        try:
            self._store_options(self._last_started, commit=True)
        except Exception as exc:  # the start's own failure is what the user must see
            self.log.warning("Cannot put back the options of %s: %s", self._log_name, exc)

    def _record_started(self) -> None:
        """Store the choice that started, with its profile line naming the node it runs on."""
        choice = self._choice
        if choice is None:
            return
        node = ((self._own_pod() or {}).get("spec") or {}).get("nodeName") or choice.server
        options = self._options_with_profile(choice, node)
        self._last_started = dict(options)
        self._store_options(options)

    def _store_options(self, options: dict[str, Any], commit: bool = False) -> None:
        """``options`` as this spawner's and the hub database's ``user_options`` (copies)."""
        self.user_options = dict(options)
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None:
            orm_spawner.user_options = dict(options)
            if commit and self.db is not None:
                try:
                    self.db.commit()
                except Exception:
                    self.db.rollback()  # the hub's session stays usable
                    raise

    def _adopt_running_pod(self) -> None:
        """For a server this hub process did not start (found again after a hub restart, maybe
        cut in the middle of its start): take its pod's UID, as a start does (in memory: the
        next restart takes it again), and name the node it runs on in its profile line."""
        if self._choice is not None or self._adopted:
            return
        pod = self._own_pod()
        if pod is None:
            return
        self._adopted = True
        if self._pod_uid is None:
            self._remember_pod_uid()
        options = dict(self.user_options or {})
        if not options:
            return
        node = (pod.get("spec") or {}).get("nodeName") or None
        profile = stored_profile_line(self.platform, self.user_context(), options, node)
        if profile is not None and profile != options.get("profile"):
            self._store_options({**options, "profile": profile}, commit=True)
            self._last_started = {**options, "profile": profile}

    def _options_with_profile(self, choice: ServerChoice, node: str | None) -> dict[str, Any]:
        config = self._start_config or self.platform
        profile = profile_line(
            config, self.user_context(), choice.image, choice.accelerator, choice.count, node
        )
        return {**choice.to_user_options(), "profile": profile}

    # -- start -----------------------------------------------------------------------------
    async def load_user_options(self) -> None:
        """Validate ``user_options`` (form or REST API) and apply them to this spawner."""
        config, user = self.platform, self.user_context()
        self._start_config = config  # this start's version, from its options to its report
        self._choice = None
        submitted: dict[str, Any] = dict(getattr(self, "user_options", None) or {})
        for key in DERIVED:  # stored with the last choice, so back with an empty REST body
            submitted.pop(key, None)
        try:
            choice = validate_options(submitted, config, user, await self.availability(config))
        except OptionsError as exc:
            self.log.warning("Refusing options of %s: %s", self.user.name, exc)
            if isinstance(getattr(self, "handler", None), SpawnHandler):
                self._form_error = exc  # the form shows it; a REST caller has its answer
            raise _refusal(exc) from exc
        self._choice = choice
        # stored (and committed) now, not only once started: a hub restart in the middle of
        # this start finds the server with what was asked, not the empty body of a REST start
        self._store_options(self._options_with_profile(choice, choice.server), commit=True)
        settings = pod_settings(
            choice,
            config,
            user,
            priority_class=self.notebook_priority_class or None,
            reserved_key=self.reserved_node_key,
        )
        for trait, value in settings.items():
            setattr(self, trait, value)
        self.apply_storage(choice.scratch, config)

    def apply_storage(
        self, scratch_size: str | None, config: PlatformConfig | None = None
    ) -> StoragePlan:
        """Set volumes, mounts, init container and sidecar from the storage plan.

        Built from scratch at every start on top of the hub configuration's own values, so a
        restart of the server or of the hub never duplicates or loses a mount.
        """
        if self._storage_base is None:
            self._storage_base = {t: copy.deepcopy(getattr(self, t)) for t in STORAGE_TRAITS}
        plan = storage_plan(
            config or self.platform,
            self.user.name,
            self.user_context().groups,
            scratch_size=scratch_size,
            token_secret=token_secret_name(self.user.name),
            user_number=user_number(self.user.db, self.user.name),
        )
        for trait, value in spawner_settings(plan, self._storage_base).items():
            setattr(self, trait, value)
        self.storage_plan = plan
        return plan

    def get_env(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_env()
        if self.bunshin_url:
            env["BUNSHIN_URL"] = self.bunshin_url
        return env

    # -- start, with the token Secret before and the storage report after ----------------------
    async def start(self) -> Any:
        self._progress_notes = []
        self._making_room_on = None
        self._storage_reported = asyncio.Event()
        self.storage_plan = None
        try:
            await self.write_token_secret()
            result = await self._start_watching_storage_init()
            self._remember_pod_uid()
            self._record_started()
            await self.report_storage()
        except BaseException as exc:
            if isinstance(exc, Exception):
                # a failed start; one cut short (the hub stopping) may still come up, its
                # choice kept for the restarted hub that finds it
                self._restore_last_started()
            if isinstance(exc, Exception) and cluster_unavailable(exc):
                self.log.warning(
                    "Start of %s failed, the cluster not answering: %s", self._log_name, exc
                )
                raise web.HTTPError(503, CLUSTER_UNAVAILABLE) from None
            raise
        finally:
            self._storage_reported.set()
        return result

    async def _start_watching_storage_init(self) -> Any:
        """KubeSpawner's start, cut short with the reason if storage-init fails.

        A failed storage-init (e.g. a symlink planted in place of the home) would otherwise
        leave the pod initializing until ``start_timeout``.
        """
        start = asyncio.ensure_future(super().start())
        watcher = asyncio.ensure_future(self._storage_init_failure())
        making_room = asyncio.ensure_future(self._watch_making_room())
        try:
            await asyncio.wait({start, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not watcher.cancelled() and watcher.result():
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await start
                raise web.HTTPError(500, _escape(watcher.result() or ""))
            return await start
        finally:
            watcher.cancel()
            making_room.cancel()

    async def _watch_making_room(self) -> None:
        """Remember the node the scheduler preempts batch pods on for this server (the progress
        page says so, also to a page opened after the pod was bound)."""
        while self._making_room_on is None:
            self._making_room_on = self._nominated_node()
            await asyncio.sleep(0.5)

    async def _storage_init_failure(self) -> str | None:
        """Wait for the storage-init container to fail; the user-facing reason."""
        while True:
            await asyncio.sleep(1)
            if self.storage_plan is None:
                continue  # kubespawner applies the options (and so the plan) inside its start
            if not self.storage_plan.init_containers:
                return None
            pod = self._own_pod()
            if not pod or not storage_init_failed(pod):
                continue
            try:
                log = await kube_call(
                    self.api.read_namespaced_pod_log(
                        self.pod_name, self.namespace, container=STORAGE_INIT, tail_lines=5
                    ),
                    "Pod",
                    self.namespace,
                    self.pod_name,
                )
            except KubeError as exc:
                self.log.warning("Cannot read storage-init's log: %s", exc)
                log = ""
            reasons = [line for line in str(log or "").splitlines() if "storage-init:" in line]
            why = reasons[-1].split("storage-init:", 1)[1].strip() if reasons else "it failed"
            self.log.error("storage-init of %s failed: %s", self.user.name, why)
            return (
                f"Your storage could not be prepared: {why}. Nothing was changed; please "
                "tell the platform administrators."
            )

    def get_state(self) -> dict[str, Any]:
        """KubeSpawner's state plus the pod's UID, so Bunshin can tell it is this pod."""
        state: dict[str, Any] = super().get_state()
        if self._pod_uid:
            state["pod_uid"] = self._pod_uid
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._pod_uid = state.get("pod_uid")

    def clear_state(self) -> None:
        super().clear_state()
        self._pod_uid = None

    def _own_pod(self) -> dict[str, Any] | None:
        """This server's pod as kubespawner's pod reflector has it (None before it exists)."""
        reflector = getattr(self, "pod_reflector", None)
        pod: dict[str, Any] | None = (
            reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
        )
        return pod

    def _remember_pod_uid(self) -> None:
        self._pod_uid = ((self._own_pod() or {}).get("metadata") or {}).get("uid")

    async def progress(self) -> Any:
        """KubeSpawner's events as steps a person understands (``progress_steps``; the raw
        event kept), once that a batch job makes room when the scheduler preempts one for
        this server, then storage notes (e.g. a bucket not mounted)."""
        said = False
        steps: StepTracker | None = None
        async for event in super().progress():
            raw = event.get("raw_event")
            if isinstance(raw, dict):
                steps = steps or StepTracker(self._start_context())
                translated = steps.page_event(raw)
                if translated is not None:
                    yield translated
            else:
                yield event
            node = None if said else (self._making_room_on or self._nominated_node())
            if node:
                said = True
                yield {
                    "message": f"A batch job is making room for you on {node}: it stops now "
                    "and runs again later, when a GPU is free."
                }
        sent = 0
        while True:
            while sent < len(self._progress_notes):
                yield {"message": self._progress_notes[sent]}
                sent += 1
            reported = self._storage_reported
            if reported is None or reported.is_set():
                return
            await asyncio.sleep(0.5)

    def _start_context(self) -> StartContext:
        """What the progress steps name for this start."""
        choice = self._choice
        model = choice.accelerator if choice else None
        holds = f"{choice.count} {TIMES} {short_model_name(model)}" if choice and model else None
        return StartContext(
            accelerator=holds,
            image=choice.image.name if choice else "server",
            storage_init=STORAGE_INIT,
            bucket_sidecar=BUCKET_SIDECAR,
        )

    def _nominated_node(self) -> str | None:
        """The node the scheduler preempts lower-priority pods on for this server, if any."""
        pod = self._own_pod()
        # only preemption nominates a node (kept after binding until Kubernetes 1.34)
        nominated = ((pod or {}).get("status") or {}).get("nominatedNodeName")
        return str(nominated) if nominated else None

    async def report_storage(self) -> None:
        """Put what could not be mounted on the progress page (the server starts anyway)."""
        plan = self.storage_plan
        if plan is None:
            return
        notes = [f"Storage: {note}" for note in plan.notes]
        notes += await self.bucket_mount_failures(plan)
        for note in notes:
            self.log.warning("%s (user %s)", note, self.user.name)
        self._progress_notes.extend(notes)
        if notes:
            await asyncio.sleep(1.5)  # let the progress page receive them before "ready"

    async def bucket_mount_failures(self, plan: StoragePlan) -> list[str]:
        """Read the bucket sidecar's log until every bucket reported (or the timeout)."""
        if not plan.buckets or self.bucket_mount_timeout <= 0:
            return []
        pending, failed = set(plan.buckets), {}
        deadline = asyncio.get_running_loop().time() + self.bucket_mount_timeout
        while pending and asyncio.get_running_loop().time() < deadline:
            try:
                text = await kube_call(
                    self.api.read_namespaced_pod_log(
                        self.pod_name, self.namespace, container=BUCKET_SIDECAR
                    ),
                    "Pod",
                    self.namespace,
                    self.pod_name,
                )
            except KubeError:
                text = ""  # the sidecar may not have started yet: read again
            for bucket, why in parse_bucket_report(str(text or "")):
                pending.discard(bucket)
                if why is not None:
                    failed[bucket] = why
            if pending:
                await asyncio.sleep(1)
        buckets = (self._start_config or self.platform).storage.buckets
        where = buckets.mount_path if buckets else ""
        notes = [
            f"Bucket {bucket} is not mounted: {why}." for bucket, why in sorted(failed.items())
        ]
        if pending:
            notes.append(
                f"Bucket(s) {', '.join(sorted(pending))} not mounted yet after "
                f"{self.bucket_mount_timeout:g} s; look in {where} once the server is up"
            )
        return notes

    async def poll(self) -> int | None:
        """kubespawner's poll, riding out a cluster that does not answer: the server is taken as
        still running (None) rather than stopped, since JupyterHub stops and forgets servers
        whose poll fails (at its start, for one); the next poll looks again. A reflector that
        gave up watching or never started (kubespawner's give up after about 50 s of failures,
        and one whose first list failed keeps failing every caller) is replaced first."""
        try:
            await self._replace_dead_reflectors()
            status: int | None = await super().poll()
        except Exception as exc:
            if not cluster_unavailable(exc):
                raise
            self.log.warning(
                "Cannot check the server of %s, the cluster not answering (%s): taken as "
                "still running until the next poll",
                self._log_name,
                exc,
            )
            return None
        if status is None:
            try:
                self._adopt_running_pod()
            except Exception as exc:  # nor because of its profile line
                self.log.warning("Cannot describe the server of %s: %s", self._log_name, exc)
            try:
                await self.keep_token_fresh()
            except Exception as exc:  # a poll must never fail because of the token
                self.log.warning("Token upkeep for %s failed: %s", self.user.name, exc)
        return status

    async def _replace_dead_reflectors(self) -> None:
        for kind, start in (
            ("pods", self._start_watching_pods),
            ("events", self._start_watching_events),
        ):
            reflector = self.__class__.reflectors.get(self._get_reflector_key(kind))
            if reflector is None or not _reflector_is_dead(reflector):
                continue
            self.log.warning("The %s reflector stopped watching: starting a new one", kind)
            await start(replace=True)

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        others = [s for s in self.user.spawners.values() if s is not self and s.active]
        if not others:
            await self.delete_token_secret()

    def _storage_token(self, auth_state: dict[str, Any] | None) -> tuple[str, float] | None:
        getter = getattr(self.authenticator, "storage_token", None)
        if not self.storage_token_secret or getter is None:
            return None
        token: tuple[str, float] | None = getter(auth_state)
        return token

    async def keep_token_fresh(self) -> None:
        """Renew the user's tokens when they near expiry, then bring the Secret up to date."""
        if not self.storage_token_secret or not hasattr(self.authenticator, "storage_token"):
            return
        refreshed = await self.authenticator.refresh_user(self.user)
        if refreshed is False:
            self.log.info("Tokens of %s cannot be renewed until they sign in again", self.user.name)
            return
        await self.write_token_secret()

    async def write_token_secret(self) -> None:
        """Create or replace the token Secret if the token changed since the last write."""
        found = self._storage_token(await self.user.get_auth_state())
        if found is None:
            return
        token, expires_at = found
        if self._token_written == token:
            return
        body = token_secret_manifest(self.user.name, self.namespace, token, expires_at)
        name = body["metadata"]["name"]
        try:
            await kube_call(
                self.api.create_namespaced_secret(self.namespace, body),
                "Secret",
                self.namespace,
                name,
            )
        except KubeError as exc:
            if not exc.conflict:
                raise
            await kube_call(
                self.api.replace_namespaced_secret(name, self.namespace, body),
                "Secret",
                self.namespace,
                name,
            )
        self._token_written = token
        self.log.info("Token Secret %s of %s written", name, self.user.name)

    async def delete_token_secret(self) -> None:
        name = token_secret_name(self.user.name)
        try:
            await kube_call(
                self.api.delete_namespaced_secret(name, self.namespace),
                "Secret",
                self.namespace,
                name,
            )
        except KubeError as exc:
            if not exc.not_found:
                raise
        else:
            self.log.info("Token Secret %s of %s deleted", name, self.user.name)
        self._token_written = None


def storage_init_failed(pod: dict[str, Any]) -> bool:
    """Whether the pod's storage-init container has exited with an error (now or before)."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") != STORAGE_INIT:
            continue
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            terminated = state.get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                return True
    return False


def parse_bucket_report(log: str) -> list[tuple[str, str | None]]:
    """``(bucket, None)`` for "mounted" lines and ``(bucket, why)`` for "FAILED" lines."""
    reports: list[tuple[str, str | None]] = []
    for line in log.splitlines():
        if line.startswith("aiinfn-bucket: mounted "):
            reports.append((line.split()[2], None))
        elif line.startswith("aiinfn-bucket: FAILED "):
            bucket, _, why = line[len("aiinfn-bucket: FAILED ") :].partition(": ")
            reports.append((bucket, why or "unknown error"))
    return reports


def _refusal(exc: OptionsError) -> web.HTTPError:
    """A 400 whose message is the refusal alone (no "HTTP 400: Bad Request" around it).

    The REST API answers with it; the form shows ``exc.shown`` next to the field at fault
    instead (``render_form``), so the hub's own error line above the form is hidden there.
    """
    error = web.HTTPError(400, _escape(str(exc)))
    error.jupyterhub_message = str(exc)  # type: ignore[attr-defined]
    return error


def _escape(message: str) -> str:
    """HTTPError formats its message with ``%``."""
    return message.replace("%", "%%")


def _reflector_is_dead(reflector: Any) -> bool:
    """Its first list failed (every caller then gets that error, for good), or its watch
    task ended (kubespawner's reflectors stop after repeated failures)."""
    first = reflector.first_load_future
    if first.done() and not first.cancelled() and first.exception() is not None:
        return True
    task = getattr(reflector, "watch_task", None)
    return task is not None and task.done()
