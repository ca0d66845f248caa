"""Pod volumes as host folders, for containers that run as local processes.

A local process cannot see a container's mount points, so every volume of the pod gets a folder
on the host and the container's command line, environment and working directory are rewritten
to use it (the longest ``mountPath`` first, only where a whole path component matches):

- ``nfs`` -> ``<state_dir>/volumes/nfs/<server>/<path>``, shared by every pod naming the export;
- ``persistentVolumeClaim`` -> ``<state_dir>/volumes/pvc/<namespace>/<claimName>``;
- ``hostPath`` -> ``<state_dir>/volumes/hostpath/<path>`` (never the real host path);
- ``csi`` -> ``<state_dir>/volumes/csi/<driver>/<short hash of its attributes and handle>``;
- everything else (``emptyDir``, ``ephemeral``, ``secret``, ``configMap``, ``projected``,
  ``downwardAPI``, unknown kinds) -> ``<pod folder>/volumes/<volume name>``, removed with the
  pod folder.

``secret``, ``configMap``, ``downwardAPI`` and ``projected`` folders hold one file per key
(``items`` and modes honoured) and are rewritten file by file (temporary file, then
``os.replace``) when their sources change. As in Kubernetes, a ``subPath`` mount of such a
volume does not see updates: it is a copy taken when the container starts, kept in
``<pod folder>/volume-subpaths/<volume>/<container>/<mount index>`` (the kubelet's bind mounts
live in a folder of that name). Other ``subPath`` mounts are ``<volume folder>/<subPath>``,
created when missing; absolute ones, ones with ``..`` and ones leading out of the volume
through a symlink are refused. When a mountPath lies inside another one of the same container,
a symlink in the outer volume's folder points at the inner one's, so browsing the outer folder
shows the inner volume.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment import ConfigError, ObjectLookup, expand, field_value, resource_value

log = logging.getLogger(__name__)
JSON = dict[str, Any]

# the kinds whose folder content the kubelet writes (and keeps in sync) itself
CONTENT_KINDS = ("secret", "configMap", "downwardAPI", "projected")
_KNOWN_KINDS = ("nfs", "persistentVolumeClaim", "hostPath", "csi", "emptyDir", "ephemeral")
_DEFAULT_MODE = 0o644
_EMPTY_DIR_MODE = 0o777
_CSI_HASH_LENGTH = 12
# characters that continue a path component: a mountPath only matches up to a boundary
_PATH_CHARS = r"-\w.~+@%"


class VolumeError(ConfigError):
    """A volume or a volume mount keeps the container from starting (a missing Secret, a
    subPath leading out of its volume...), reported like ``CreateContainerConfigError``."""


@dataclass(frozen=True)
class Mount:
    """One ``volumeMounts`` entry of a container, placed on the host."""

    volume: str
    # normalised container path, e.g. "/home/jovyan"
    mount_path: str
    # the volume's own host folder (or file, for a hostPath of type File)
    volume_path: Path
    # where mount_path lives on the host: volume_path, volume_path/subPath or a snapshot
    host: Path
    # "" without subPath / subPathExpr
    sub_path: str = ""
    # a subPath of a secret/configMap/projected/downwardAPI volume: a copy made at start
    snapshot: bool = False


@dataclass(frozen=True)
class FileContent:
    """One file of a secret/configMap/downwardAPI/projected volume."""

    data: bytes
    mode: int = _DEFAULT_MODE


# -- where things are ------------------------------------------------------------------------
def pod_folder(state_dir: Path, namespace: str, name: str) -> Path:
    """The folder of a pod's local processes (HOME, working directory, pod-scoped volumes)."""
    return state_dir / "pods" / f"{namespace}_{name}"


def volume_kind(volume: JSON) -> str:
    """The volume source's key (``nfs``, ``emptyDir``...), ``""`` when it names none."""
    for kind in (*_KNOWN_KINDS, *CONTENT_KINDS):
        if kind in volume:
            return kind
    others = sorted(k for k in volume if k != "name")
    return others[0] if others else ""


def _relative(path: str) -> str:
    """An absolute path made relative, normalised so that it cannot climb out (``..``)."""
    return posixpath.normpath("/" + path).lstrip("/")


def _absolute(path: str) -> str:
    """A container path, normalised (``/a//b/../c/`` is ``/a/c``)."""
    return "/" + _relative(path)


def _component(text: str) -> str:
    """One safe folder name made of ``text``."""
    text = text.replace("/", "_")
    return "_" if text in ("", ".", "..") else text


def volume_folder(pod: JSON, volume: JSON, state_dir: Path) -> Path:
    """Where a pod volume lives on the host (see the module docstring)."""
    meta = pod["metadata"]
    kind = volume_kind(volume)
    source = volume.get(kind) or {}
    shared = state_dir / "volumes"
    if kind == "nfs":
        return (
            shared
            / "nfs"
            / _component(str(source.get("server", "")))
            / _relative(str(source.get("path", "")))
        )
    if kind == "persistentVolumeClaim":
        return (
            shared
            / "pvc"
            / _component(str(meta.get("namespace", "")))
            / _component(str(source.get("claimName", "")))
        )
    if kind == "hostPath":
        return shared / "hostpath" / _relative(str(source.get("path", "")))
    if kind == "csi":
        identity = {
            "volumeAttributes": source.get("volumeAttributes") or {},
            "volumeHandle": source.get("volumeHandle"),
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return (
            shared / "csi" / _component(str(source.get("driver", ""))) / digest[:_CSI_HASH_LENGTH]
        )
    folder = pod_folder(state_dir, str(meta.get("namespace", "")), str(meta.get("name", "")))
    return folder / "volumes" / _component(str(volume.get("name", "")))


def subpath_folder(pod_dir: Path, volume: str, container: str, index: int) -> Path:
    """Where the copy of a content volume's subPath mount lives (see the module docstring)."""
    return pod_dir / "volume-subpaths" / _component(volume) / _component(container) / str(index)


# -- a container's mounts --------------------------------------------------------------------
class _Recording(dict[str, str]):
    """An environment that notes the variables asked for but missing or empty."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.missing: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key)
        if not value:
            self.missing.add(key)
            return ""
        return value


def sub_path(mount: JSON, env: Mapping[str, str]) -> str:
    """A mount's ``subPath``, or its ``subPathExpr`` expanded like the kubelet does; checked."""
    text = str(mount.get("subPath") or "")
    expr = mount.get("subPathExpr")
    if expr:
        recording = _Recording(env)
        text = expand(str(expr), recording)
        if recording.missing:
            raise VolumeError(f"missing value for {', '.join(sorted(recording.missing))}")
    if not text:
        return ""
    if text.startswith("/"):
        raise VolumeError(f"error SubPath `{text}` must not be an absolute path")
    if ".." in text.split("/"):
        raise VolumeError(f"unable to provision SubPath `{text}`: must not contain '..'")
    return posixpath.normpath(text)


def container_mounts(
    pod: JSON, container: JSON, env: Mapping[str, str], state_dir: Path
) -> list[Mount]:
    """Where each of the container's ``volumeMounts`` lives on the host (no I/O)."""
    meta = pod["metadata"]
    pod_dir = pod_folder(state_dir, str(meta.get("namespace", "")), str(meta.get("name", "")))
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[Mount] = []
    for index, entry in enumerate(container.get("volumeMounts") or []):
        volume = volumes.get(entry.get("name"))
        if volume is None or not entry.get("mountPath"):
            continue
        mount_path = _absolute(str(entry["mountPath"]))
        folder = volume_folder(pod, volume, state_dir)
        try:
            sub = sub_path(entry, env)
        except VolumeError as exc:
            raise VolumeError(
                f'failed to prepare subPath for volumeMount "{entry["name"]}" of container '
                f'"{container.get("name", "")}": {exc}'
            ) from exc
        snapshot = bool(sub) and volume_kind(volume) in CONTENT_KINDS
        if snapshot:
            host = subpath_folder(pod_dir, str(entry["name"]), container.get("name", ""), index)
        else:
            host = folder / sub if sub else folder
        mounts.append(Mount(str(entry["name"]), mount_path, folder, host, sub, snapshot))
    return mounts


def _by_length(mounts: Iterable[Mount]) -> list[Mount]:
    """Mounts, longest mountPath first; the first of two at one path wins; none at ``/``."""
    first: dict[str, Mount] = {}
    for mount in mounts:
        if mount.mount_path != "/":
            first.setdefault(mount.mount_path, mount)
    return sorted(first.values(), key=lambda m: len(m.mount_path), reverse=True)


def container_path(mounts: Iterable[Mount], path: str) -> Path | None:
    """Where an absolute container path lives on the host; None outside every mount."""
    if not path.startswith("/"):
        return None
    path = _absolute(path)
    for mount in _by_length(mounts):
        if path == mount.mount_path:
            return mount.host
        if path.startswith(mount.mount_path + "/"):
            return mount.host / path[len(mount.mount_path) + 1 :]
    return None


def translate(text: str, mounts: Iterable[Mount]) -> str:
    """``text`` with every container mountPath in it replaced by its host folder.

    A mountPath matches only as whole path components: preceded by the start of the text or a
    character that cannot be part of a path (space, ``=``, ``:``, a quote...), and followed by
    the end, ``/`` or such a character; the longest mountPath wins.
    """
    ordered = _by_length(mounts)
    if not ordered or "/" not in text:
        return text
    hosts = {m.mount_path: str(m.host) for m in ordered}
    alternatives = "|".join(re.escape(m.mount_path) for m in ordered)
    pattern = re.compile(rf"(?<![{_PATH_CHARS}/])(?:{alternatives})(?![{_PATH_CHARS}])")
    return pattern.sub(lambda match: hosts[match.group(0)], text)


def working_folder(container: JSON, mounts: Iterable[Mount], pod_dir: Path) -> Path:
    """The process's working directory: the pod folder, the host place of a ``workingDir``
    inside a mount, or else ``<pod folder>/root/<workingDir>``."""
    working_dir = str(container.get("workingDir") or "")
    if not working_dir:
        return pod_dir
    hosted = container_path(mounts, _absolute(working_dir))
    return hosted if hosted is not None else pod_dir / "root" / _relative(working_dir)


def literal_environment(container: JSON) -> dict[str, str]:
    """The container variables that need no lookup (plain ``value``s, expanded)."""
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "valueFrom" not in var:
            env[var["name"]] = expand(str(var.get("value") or ""), env)
    return env


def host_path(
    pod: JSON,
    container_name: str,
    path: str,
    state_dir: Path,
    env: Mapping[str, str] | None = None,
) -> Path | None:
    """Where an absolute ``path`` of a container lives on the host when run locally.

    None when the container does not exist or the path is outside its volume mounts (the
    local process then sees the host's own file system there). ``subPathExpr`` is expanded
    with ``env``, by default the container's plain ``value`` variables; raises VolumeError for
    a subPath the kubelet would refuse.
    """
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") == container_name:
            variables = literal_environment(container) if env is None else env
            return container_path(container_mounts(pod, container, variables, state_dir), path)
    return None


# -- the content of secret, configMap, downwardAPI and projected volumes --------------------
def _checked_file_path(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise VolumeError(f"invalid path {path!r} in volume items")
    return posixpath.normpath(path)


def _decode(raw: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VolumeError(f"{what} is not valid base64") from exc


def _object_data(kind: str, obj: JSON) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: _decode(v, f"key {k}") for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    for key, raw in (obj.get("binaryData") or {}).items():
        data[key] = _decode(raw, f"key {key}")
    return data


def _key_files(
    kind: str, source: JSON, name: str, namespace: str, default_mode: int, lookup: ObjectLookup
) -> dict[str, FileContent]:
    """The files of a secret or configMap source (a volume or a projected source)."""
    optional = bool(source.get("optional"))
    obj = lookup(kind, namespace, name)
    label = "secret" if kind == "Secret" else "configmap"
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{label} "{name}" not found')
    data = _object_data(kind, obj)
    items = source.get("items")
    if not items:
        return {_checked_file_path(k): FileContent(v, default_mode) for k, v in data.items()}
    files: dict[str, FileContent] = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            if kind == "Secret":
                raise VolumeError(f"references non-existent secret key: {key}")
            raise VolumeError(f"configmap references non-existent config key: {key}")
        mode = item.get("mode")
        files[_checked_file_path(str(item.get("path") or key))] = FileContent(
            data[key], default_mode if mode is None else int(mode)
        )
    return files


def _format_map(values: Mapping[str, Any]) -> str:
    """Labels or annotations as the kubelet writes them: sorted ``key="value"`` lines."""
    return "\n".join(
        f"{key}={json.dumps(str(values[key]), ensure_ascii=False)}" for key in sorted(values)
    )


def _downward_files(
    pod: JSON, items: Iterable[JSON], default_mode: int, allocatable: Mapping[str, str]
) -> dict[str, FileContent]:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    files: dict[str, FileContent] = {}
    for item in items:
        if "fieldRef" in item:
            field = str((item["fieldRef"] or {}).get("fieldPath", ""))
            if field in ("metadata.labels", "metadata.annotations"):
                text = _format_map(meta.get(field.partition(".")[2]) or {})
            else:
                text = field_value(pod, field)
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"] or {}
            target = next(
                (c for c in containers if c.get("name") == ref.get("containerName")),
                containers[0] if containers else {},
            )
            text = resource_value(target, ref, allocatable)
        else:
            continue
        mode = item.get("mode")
        files[_checked_file_path(str(item.get("path", "")))] = FileContent(
            text.encode(), default_mode if mode is None else int(mode)
        )
    return files


def volume_files(
    pod: JSON,
    volume: JSON,
    lookup: ObjectLookup,
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, FileContent] | None:
    """The files a secret/configMap/downwardAPI/projected volume holds (relative path ->
    content); None for other kinds. VolumeError for a missing non-optional source, with the
    kubelet's ``MountVolume.SetUp failed for volume ...`` wording."""
    kind = volume_kind(volume)
    if kind not in CONTENT_KINDS:
        return None
    source = volume.get(kind) or {}
    namespace = str(pod["metadata"].get("namespace", ""))
    mode = source.get("defaultMode")
    default_mode = _DEFAULT_MODE if mode is None else int(mode)
    try:
        if kind == "secret":
            name = str(source.get("secretName", ""))
            return _key_files("Secret", source, name, namespace, default_mode, lookup)
        if kind == "configMap":
            name = str(source.get("name", ""))
            return _key_files("ConfigMap", source, name, namespace, default_mode, lookup)
        if kind == "downwardAPI":
            return _downward_files(pod, source.get("items") or [], default_mode, allocatable or {})
        files: dict[str, FileContent] = {}
        for projection in source.get("sources") or []:
            if "secret" in projection:
                part = projection["secret"] or {}
                name = str(part.get("name", ""))
                files.update(_key_files("Secret", part, name, namespace, default_mode, lookup))
            elif "configMap" in projection:
                part = projection["configMap"] or {}
                name = str(part.get("name", ""))
                files.update(_key_files("ConfigMap", part, name, namespace, default_mode, lookup))
            elif "downwardAPI" in projection:
                items = (projection["downwardAPI"] or {}).get("items") or []
                files.update(_downward_files(pod, items, default_mode, allocatable or {}))
        return files
    except ConfigError as exc:
        raise VolumeError(
            f'MountVolume.SetUp failed for volume "{volume.get("name", "")}" : {exc}'
        ) from exc


def volume_sources(pod: JSON) -> set[tuple[str, str]]:
    """The (kind, name) of every Secret and ConfigMap the pod's volumes show."""
    refs: set[tuple[str, str]] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if isinstance(volume.get("secret"), dict):
            refs.add(("Secret", str(volume["secret"].get("secretName", ""))))
        if isinstance(volume.get("configMap"), dict):
            refs.add(("ConfigMap", str(volume["configMap"].get("name", ""))))
        for projection in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(projection.get("secret"), dict):
                refs.add(("Secret", str(projection["secret"].get("name", ""))))
            if isinstance(projection.get("configMap"), dict):
                refs.add(("ConfigMap", str(projection["configMap"].get("name", ""))))
    return refs


def uses_downward_api(pod: JSON) -> bool:
    """Whether a volume shows fields of the pod itself (rewritten when labels change)."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if "downwardAPI" in volume:
            return True
        sources = (volume.get("projected") or {}).get("sources") or []
        if any("downwardAPI" in s for s in sources):
            return True
    return False


# -- file system work ------------------------------------------------------------------------
def within(base: Path, target: Path) -> bool:
    """Whether ``target``, symlinks resolved, is ``base`` or lies inside it."""
    try:
        root, resolved = base.resolve(), target.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == root or root in resolved.parents


def write_files(folder: Path, files: Mapping[str, FileContent]) -> bool:
    """Make ``folder`` hold exactly ``files``; True when something changed.

    Each changed file is written to a temporary file and moved in place with ``os.replace``,
    so a reader sees the old or the new content, never a mix; files no longer wanted go
    (symlinks, such as those of nested mounts, are left alone).
    """
    folder.mkdir(parents=True, exist_ok=True)
    changed = False
    for relative, content in files.items():
        target = folder / relative
        if not within(folder, target.parent):
            log.warning("volume file %s leads out of %s: not written", relative, folder)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if (
            target.is_file()
            and not target.is_symlink()
            and (target.stat().st_mode & 0o7777) == content.mode
            and target.read_bytes() == content.data
        ):
            continue
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f"..{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content.data)
                os.fchmod(handle.fileno(), content.mode)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        changed = True
    wanted = {os.path.normpath(folder / relative) for relative in files}
    for current, dirs, names in os.walk(folder, topdown=False):
        for name in names:
            path = os.path.join(current, name)
            if path not in wanted and not os.path.islink(path):
                os.unlink(path)
                changed = True
        for name in dirs:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)  # only when empty
    return changed


def set_up_volume(
    pod: JSON,
    volume: JSON,
    state_dir: Path,
    lookup: ObjectLookup,
    allocatable: Mapping[str, str] | None = None,
) -> Path:
    """Create a volume's host folder (and write its files); its path. VolumeError when the
    kubelet could not mount it (a missing Secret or ConfigMap)."""
    folder = volume_folder(pod, volume, state_dir)
    kind = volume_kind(volume)
    files = volume_files(pod, volume, lookup, allocatable)
    if kind == "hostPath":
        host_type = str((volume.get("hostPath") or {}).get("type") or "")
        if host_type in ("File", "FileOrCreate"):
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.touch(exist_ok=True)
        elif host_type in ("Socket", "CharDevice", "BlockDevice"):
            folder.parent.mkdir(parents=True, exist_ok=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
    elif kind in ("emptyDir", "ephemeral"):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(_EMPTY_DIR_MODE)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    if files is not None:
        write_files(folder, files)
    return folder


def reset_pod_volumes(pod_dir: Path) -> None:
    """Forget the pod-scoped volumes of an earlier pod of the same name: a new pod starts
    with empty emptyDirs."""
    for name in ("volumes", "volume-subpaths"):
        remove_tree(pod_dir / name)


def remove_tree(folder: Path) -> bool:
    """``rm -rf folder``, except through a mount left inside it (a FUSE mount of a sidecar
    that was killed): those are detached first, and if one stays the folder is kept, since
    removing through it would delete the files of the file system behind it. Whether the
    folder is gone."""
    for mount in mounts_below(folder):
        for command in (["fusermount3", "-u", "-z"], ["fusermount", "-u", "-z"], ["umount", "-l"]):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                done = subprocess.run([*command, mount], capture_output=True, timeout=10)
                if done.returncode == 0:
                    break
    if mounts_below(folder):
        log.error("not removing %s: something is still mounted inside it", folder)
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not os.path.lexists(folder)


def mounts_below(folder: Path) -> list[str]:
    """Mount points inside ``folder`` (deepest first), from /proc/self/mounts."""
    prefix = os.path.realpath(folder) + os.sep
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def prepare_mounts(mounts: Iterable[Mount], container: str) -> None:
    """Make a container's mounts usable: subPath folders created (or copied, for content
    volumes) after checking they stay inside their volume, and nested mounts linked."""
    mounts = list(mounts)
    for mount in mounts:
        if not mount.sub_path:
            continue
        target = mount.volume_path / mount.sub_path
        failure = (
            f'failed to prepare subPath for volumeMount "{mount.volume}" of container '
            f'"{container}": {mount.sub_path!r} leads outside the volume'
        )
        if not within(mount.volume_path, target):
            raise VolumeError(failure)
        if not target.exists():
            target.mkdir(parents=True, exist_ok=True)
            if not within(mount.volume_path, target):
                raise VolumeError(failure)
        if mount.snapshot:
            _copy_snapshot(target, mount.host)
    link_nested_mounts(mounts)


def _copy_snapshot(source: Path, destination: Path) -> None:
    if destination.is_dir() and not destination.is_symlink():
        shutil.rmtree(destination)
    elif destination.exists() or destination.is_symlink():
        destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, symlinks=True)
    else:
        shutil.copy2(source, destination)


def link_nested_mounts(mounts: Iterable[Mount]) -> None:
    """For each mountPath inside another one, a symlink at the matching place of the outer
    host folder to the inner host folder, unless something is already there (a dangling
    symlink, left by an earlier pod, is replaced)."""
    ordered = _by_length(mounts)
    for child in ordered:
        parent = next((p for p in ordered if child.mount_path.startswith(p.mount_path + "/")), None)
        if parent is None or not parent.host.is_dir():
            continue
        link = parent.host / child.mount_path[len(parent.mount_path) + 1 :]
        try:
            if not within(parent.host, link.parent):
                continue  # a symlink on the way leads out of the outer volume
            if link.is_symlink():
                if link.exists():
                    continue
                link.unlink()
            elif link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if within(parent.host, link.parent):
                link.symlink_to(child.host, target_is_directory=True)
        except OSError as exc:
            log.warning("cannot link mount %s inside %s: %s", child.mount_path, parent.host, exc)
