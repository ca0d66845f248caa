"""docs/deploy.md stays true to the repository: every repository path it names exists, every
`aiinfn-hub` subcommand is one the CLI has, every Helm values key exists in our values or the
vendored z2jh chart's (hub.config settings are traits of their classes), every platform key is
one of the configuration reference, every key of the Secret `aiinfn-hub-secrets` is one the
values read (and all of them are created), the chart and Kueue versions are the vendored ones,
the release's namespace and ServiceAccount are the ones the manifests bind, the YAML it shows
parses, and its command extracting the platform document really does.

Fast: the document is parsed once, `helm template` runs once (skipped without helm)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiinfn_hub.cli import build_parser
from aiinfn_hub.config_check import check_config_command
from aiinfn_hub.z2jh import OWN_KEYS, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
VALUES = ROOT / "helm-values" / "values.yaml"
EVENT = ROOT / "helm-values" / "event.yaml"
MANIFESTS = ROOT / "helm-values" / "manifests"
CHART = ROOT / "tests" / "data" / "z2jh-chart-4.4.0"
HELM = ROOT / ".tools" / "bin" / "helm"
CONFIG_REFERENCE = ROOT / "docs" / "configuration.md"
SECRET = "aiinfn-hub-secrets"

# where a repository path starts; anything else with a slash is a URL, an image, a label...
REPO_TOP = ("helm-values/", "images/", "docs/", "aiinfn_hub/", "tests/", "examples/", "scripts/")
REPO_FILES = ("README.md", "pyproject.toml", "jupyterhub_config.py")
# top-level keys of the platform configuration (docs/configuration.md, "The top level")
PLATFORM_TOP = ("accelerators", "images", "resources", "projects", "storage", "jobs")
# host names are dotted too, but no values key ends like this
HOST = re.compile(r"\.(org|it|ch|io|com|local|net)$")
DOTTED = re.compile(r"^[A-Za-z_][\w-]*(\[\])?(\.(<name>|[\w-]+)(\[\])?)*$")


@cache
def text() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def fenced_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text(), flags=re.M | re.S)


@cache
def code_spans() -> list[str]:
    """The inline `code` spans of the prose (fenced blocks left out)."""
    prose = re.sub(r"^```.*?^```", "", text(), flags=re.M | re.S)
    return re.findall(r"`([^`\n]+)`", prose)


def commands() -> list[str]:
    """Shell commands of the bash blocks, continuation lines joined."""
    found = []
    for lang, body in fenced_blocks():
        if lang == "bash":
            found += [c.strip() for c in body.replace("\\\n", " ").splitlines() if c.strip()]
    return found


def key_of(span: str) -> str:
    """`a.b.c: value` -> `a.b.c`; other spans unchanged."""
    return span.split(": ", 1)[0].strip()


def dotted_spans(first: tuple[str, ...]) -> list[str]:
    found = []
    for span in code_spans():
        key = key_of(span)
        head = re.split(r"[.\[]", key, maxsplit=1)[0]
        if head in first and "." in key and DOTTED.match(key) and not HOST.search(key):
            found.append(key)
    return found


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


@cache
def our_values() -> tuple[dict[str, Any], ...]:
    return (load(VALUES), load(EVENT), load(CHART / "values.yaml"))


def has_path(tree: Any, parts: list[str]) -> bool:
    node = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def hub_config_trait(cls_name: str, trait: str) -> bool:
    from jupyterhub.app import JupyterHub
    from kubespawner import KubeSpawner

    from aiinfn_hub.auth import IAMAuthenticator
    from aiinfn_hub.spawner.spawner import AIInfnSpawner

    classes = {
        "IAMAuthenticator": IAMAuthenticator,
        "AIInfnSpawner": AIInfnSpawner,
        "JupyterHub": JupyterHub,
        "KubeSpawner": KubeSpawner,
    }
    cls = classes.get(cls_name)
    return cls is not None and cls.class_traits(config=True).get(trait) is not None


@cache
def platform_paths() -> set[str]:
    """Every key path of docs/configuration.md's platform tables, `[]` dropped."""
    paths: set[str] = set()
    section = ""
    part = CONFIG_REFERENCE.read_text(encoding="utf-8").split("## Settings of the JupyterHub")[0]
    for line in part.splitlines():
        heading = re.match(r"^### (?:`([^`]+)`|The top level)", line)
        if heading:
            section = (heading.group(1) or "").replace("[]", "")
            continue
        row = re.match(r"^\| `([^`]+)` \|", line)
        if row and section is not None:
            key = row.group(1)
            paths.add(f"{section}.{key}" if section else key)
    return paths


@cache
def secret_items() -> set[str]:
    """The keys of `aiinfn-hub-secrets` the values mount (hub.extraVolumes)."""
    keys: set[str] = set()
    for volume in load(VALUES)["hub"]["extraVolumes"]:
        secret = volume.get("secret") or {}
        if secret.get("secretName") == SECRET:
            keys |= {item["key"] for item in secret["items"]}
    return keys


def chart_version() -> str:
    version: str = load(CHART / "Chart.yaml")["version"]
    return version


@cache
def rendered(release: str, namespace: str) -> list[dict[str, Any]]:
    if not HELM.exists():
        pytest.skip("helm is not installed: run scripts/setup (it extracts .tools/bin/helm)")
    args = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    result = subprocess.run(
        [*args, "--values", str(VALUES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def helm_installs() -> list[tuple[str, str, list[str]]]:
    """(release, namespace, values files) of every `helm upgrade --install` of the chart."""
    found = []
    for command in commands():
        words = command.split()
        if words[:3] != ["helm", "upgrade", "--install"] or "jupyterhub/jupyterhub" not in words:
            continue
        namespace = words[words.index("--namespace") + 1]
        files = [words[i + 1] for i, w in enumerate(words) if w == "--values"]
        found.append((words[3], namespace, files))
    return found


def binding_subjects() -> list[dict[str, str]]:
    subjects = []
    for name in ("10-bunshin-role.yaml", "11-hub-clusterrole.yaml"):
        for obj in yaml.safe_load_all((MANIFESTS / name).read_text()):
            if obj and obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                subjects += obj["subjects"]
    return subjects


# -- the tests ------------------------------------------------------------------------------------
def test_every_repository_path_named_exists() -> None:
    tokens = [t for span in code_spans() for t in span.split()]
    tokens += [t for _, body in fenced_blocks() for t in re.split(r"[\s\"'=]+", body)]
    named = set()
    for token in tokens:
        token = token.strip("`,;:()")
        if "$" in token or "<" in token:
            continue  # a shell variable or a placeholder
        if token.startswith(REPO_TOP) or token in REPO_FILES:
            named.add(token)
    assert {"helm-values/values.yaml", "helm-values/manifests/", "images/README.md"} <= named
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []


def test_every_manifest_file_named_exists() -> None:
    named = {s for s in code_spans() if re.fullmatch(r"\d\d-[\w-]+\.yaml", s)}
    assert len(named) >= 5
    assert sorted(n for n in named if not (MANIFESTS / n).exists()) == []


def test_every_aiinfn_hub_subcommand_exists() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    known = set(sub.choices)  # type: ignore[arg-type]
    named = set(re.findall(r"\baiinfn-hub[ \t]+([a-z][\w-]*)", text()))
    assert {"check-config", "render-kueue"} <= named
    assert named <= known, named - known


def test_every_values_key_named_exists() -> None:
    heads = (*load(CHART / "values.yaml"), "custom")
    unknown = []
    keys = dotted_spans(heads)
    assert "custom.aiinfn.iam.clientId" in keys and "hub.extraFiles.aiinfn-platform.data" in keys
    for key in keys:
        parts = key.split(".")
        if parts[:2] == ["hub", "config"] and len(parts) == 4:
            if not hub_config_trait(parts[2], parts[3]):
                unknown.append(key)
        elif parts[:2] == ["hub", "services"] and parts[-1] == "apiToken":
            continue  # a key of the chart's Secret `hub`: test_the_metrics_token_key_is_the_charts
        elif parts[:2] == ["custom", "aiinfn"] and len(parts) > 2:
            if ".".join(parts[2:]) not in {*SETTINGS, *OWN_KEYS}:
                unknown.append(key)
        elif not any(has_path(values, parts) for values in our_values()):
            unknown.append(key)
    assert unknown == []


def snippet_keys(tree: Any, prefix: str, leaves: set[str]) -> list[str]:
    """Dotted key paths of a YAML snippet, down to lists, scalars and the `leaves` (mappings
    whose keys are data, not settings)."""
    if not isinstance(tree, dict) or prefix in leaves:
        return [prefix]
    paths = []
    for key, value in tree.items():
        paths += snippet_keys(value, f"{prefix}.{key}" if prefix else str(key), leaves)
    return paths


def test_the_yaml_snippets_use_existing_keys() -> None:
    """The values and platform snippets the doc asks to add: every key path exists."""
    leaves = {"jobs.poolAccelerators", "jobs.offload.accelerators"}
    chart_heads = set(load(CHART / "values.yaml"))
    checked = []
    for lang, body in fenced_blocks():
        tree = yaml.safe_load(body) if lang == "yaml" else None
        if not isinstance(tree, dict):
            continue
        for path in snippet_keys(tree, "", leaves):
            parts = path.split(".")
            if parts[0] in chart_heads:
                assert any(has_path(v, parts) for v in our_values()), path
            else:
                assert parts[0] in PLATFORM_TOP, path
                assert path in platform_paths(), path
            checked.append(path)
    assert {"singleuser.networkPolicy.egress", "jobs.poolAccelerators"} <= set(checked)


def test_every_platform_key_named_exists() -> None:
    keys = dotted_spans(PLATFORM_TOP)
    assert "jobs.poolAccelerators" in keys and "storage.nfs.server" in keys
    known = platform_paths()
    unknown = [k for k in keys if k.replace("[]", "") not in known]
    assert unknown == []


def test_the_secret_keys_are_the_ones_the_values_read() -> None:
    created: set[str] = set()
    for command in commands():
        if f"create secret generic {SECRET}" not in command:
            continue
        created |= set(re.findall(r"--from-(?:file|literal)=([\w.-]+)=", command))
    assert created == secret_items()
    # the table of section 6 names the same keys
    table = re.findall(r"^\| `([\w.-]+)` \| `/usr/local/etc/aiinfn/secrets/", text(), re.M)
    assert set(table) == secret_items()


def test_container_paths_are_the_values_own() -> None:
    values_text = VALUES.read_text() + EVENT.read_text()
    paths = {
        p.rstrip(".,")
        for p in re.findall(r"(/usr/local/etc/aiinfn/[\w./-]*|/etc/bunshin/[\w./-]*)", text())
    }
    assert paths and all(p in values_text for p in paths), paths


def test_the_chart_version_is_the_vendored_one() -> None:
    installs = [c for c in commands() if "jupyterhub/jupyterhub" in c]
    assert installs
    for command in installs:
        assert re.findall(r"--version[ =](\S+)", command) == [chart_version()], command
    for mentioned in re.findall(r"\bchart (\d+\.\d+\.\d+)", text()):
        assert mentioned == chart_version()
    assert "https://hub.jupyter.org/helm-chart/" in text()


def test_the_kueue_version_is_the_one_the_objects_are_tested_against() -> None:
    tested = re.findall(r"Kueue (v\d+\.\d+\.\d+)'s CRDs", (ROOT / "README.md").read_text())
    assert len(set(tested)) == 1
    named = set(re.findall(r"kueue/releases/download/(v[\d.]+)/", text()))
    named |= set(re.findall(r"\bKueue (v\d+\.\d+\.\d+)", text()))
    assert named == set(tested)


def test_release_namespace_and_service_account_match_the_manifests() -> None:
    subjects = binding_subjects()
    namespaces = {s["namespace"] for s in subjects}
    accounts = {s["name"] for s in subjects}
    assert len(namespaces) == 1 and len(accounts) == 1
    site = [i for i in helm_installs() if str(EVENT.relative_to(ROOT)) not in i[2]]
    assert site
    for release, namespace, files in site:
        assert files == [str(VALUES.relative_to(ROOT))]
        assert {namespace} == namespaces, (release, namespace)
        objects = rendered(release, namespace)
        (hub,) = [
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub"
        ]
        assert {hub["spec"]["template"]["spec"]["serviceAccountName"]} == accounts
        assert f"ServiceAccount `{next(iter(accounts))}`" in text()
        classes = {o["metadata"]["name"] for o in objects if o["kind"] == "PriorityClass"}
        assert f"{release}-default-priority" in classes
        assert f"`{release}-default-priority`" in text()


def test_the_metrics_token_key_is_the_charts() -> None:
    release, namespace, _ = helm_installs()[0]
    (secret,) = [
        o
        for o in rendered(release, namespace)
        if o["kind"] == "Secret" and o["metadata"]["name"] == "hub"
    ]
    named = set(re.findall(r"hub\\?\.services\\?\.prometheus\\?\.(\w+)", text()))
    assert named
    for key in named:
        assert f"hub.services.prometheus.{key}" in secret["data"], key


def test_the_yaml_it_shows_parses() -> None:
    blocks = [body for lang, body in fenced_blocks() if lang == "yaml"]
    blocks += re.findall(r"<<'EOF'\n(.*?)^EOF$", text(), flags=re.M | re.S)
    assert len(blocks) >= 5
    for body in blocks:
        list(yaml.safe_load_all(body))


def test_the_extraction_command_gives_the_platform_document(tmp_path: Path) -> None:
    """Run the doc's own one-liner (with this Python) on every values file it names."""
    runs = re.findall(
        r"python3 -c '([^']+)' \\\n\s+(\S+) (\S+) > (\S+)", "\n".join(b for _, b in fenced_blocks())
    )
    assert len(runs) >= 2
    for code, values_file, entry, _ in runs:
        result = subprocess.run(
            [sys.executable, "-c", code, values_file, entry],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        expected = load(ROOT / values_file)["hub"]["extraFiles"][entry]["data"]
        assert yaml.safe_load(result.stdout) == expected
        path = tmp_path / f"{entry}.yaml"
        path.write_text(result.stdout)
        err = io.StringIO()
        assert check_config_command(str(path), out=io.StringIO(), err=err) == 0, err.getvalue()
