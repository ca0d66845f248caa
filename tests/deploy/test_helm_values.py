"""helm-values/ rendered by the real z2jh 4.4.0 chart (vendored in tests/data/) with `helm
template`: the chart's schema accepts our values, every object passes strict Kubernetes schema
validation for the chart's minimum Kubernetes version, the platform configuration the hub gets
passes `aiinfn-hub check-config`, and the hub configuration loads from the rendered values."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from aiinfn_hub.config_check import check_config_command
from aiinfn_hub.hub_environment import ConfigurationError
from aiinfn_hub.services.web import bind_address
from aiinfn_hub.z2jh import configure_from_z2jh

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "tests" / "data" / "z2jh-chart-4.4.0"
HELM = ROOT / ".tools" / "bin" / "helm"
VALUES = ROOT / "helm-values" / "values.yaml"
EVENT = ROOT / "helm-values" / "event.yaml"
# (release, namespace, values files) of each deployment helm-values/ describes
DEPLOYMENTS = {
    "site": ("aiinfn", "aiinfn", [VALUES]),
    "event": ("aiinfn-hackathon", "aiinfn-hackathon", [VALUES, EVENT]),
}


def min_kube_version() -> str:
    """The chart's minimum Kubernetes version, from Chart.yaml's kubeVersion (">=1.28.0-0")."""
    spec = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    found = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(-0)?", spec)
    assert found, f"unexpected kubeVersion {spec!r}"
    return found.group(1)


def helm_template(
    release: str, namespace: str, files: list[Path], *extra: str
) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.skip("helm is not installed: run scripts/setup (it extracts .tools/bin/helm)")
    args = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", min_kube_version()]
    for f in files:
        args += ["--values", str(f)]
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=60)


@cache
def rendered(deployment: str) -> list[dict[str, Any]]:
    """The objects of one deployment, as `helm template` writes them."""
    result = helm_template(*DEPLOYMENTS[deployment])
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def hub_secret(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (secret,) = [o for o in objects if o["kind"] == "Secret" and "values.yaml" in o.get("data", {})]
    return secret


def chart_values(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The values as the hub reads them (the chart puts them in the hub's Secret)."""
    data = hub_secret(objects)["data"]["values.yaml"]
    values: dict[str, Any] = yaml.safe_load(base64.b64decode(data))
    return values


def platform_document(objects: list[dict[str, Any]]) -> str:
    """The platform configuration file the hub gets: the `hub.extraFiles` entry mounted at
    `custom.aiinfn.platformConfigFile`, as rendered into the hub's Secret."""
    values = chart_values(objects)
    path = values["custom"]["aiinfn"]["platformConfigFile"]
    keys = [k for k, f in values["hub"]["extraFiles"].items() if f["mountPath"] == path]
    assert len(keys) == 1, f"no hub.extraFiles entry is mounted at {path}"
    secret = hub_secret(objects)
    text: str = (
        secret.get("stringData", {}).get(keys[0])
        or base64.b64decode(secret["data"][keys[0]]).decode()
    )
    return text


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_every_rendered_object_passes_strict_schema_validation(deployment: str) -> None:
    version = min_kube_version()
    objects = rendered(deployment)
    assert {"Deployment", "Secret", "NetworkPolicy", "PriorityClass"} <= {
        o["kind"] for o in objects
    }
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert problems == []


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_rendered_platform_configuration_passes_check_config(
    deployment: str, tmp_path: Path
) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(platform_document(rendered(deployment)))
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(str(path), out=out, err=err) == 0, err.getvalue()


def test_event_has_one_project_and_smaller_limits() -> None:
    site = yaml.safe_load(platform_document(rendered("site")))
    event = yaml.safe_load(platform_document(rendered("event")))
    assert list(event["projects"]) == ["hackathon"]
    assert max(event["resources"]["cpuChoices"]) < max(site["resources"]["cpuChoices"])
    assert (
        chart_values(rendered("event"))["cull"]["timeout"]
        < chart_values(rendered("site"))["cull"]["timeout"]
    )


def z2jh_get_config(values: dict[str, Any]) -> Any:
    """The chart's `get_config` (files/hub/z2jh.py): a dotted key into the values."""

    def get_config(key: str, default: Any = None) -> Any:
        node: Any = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    return get_config


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_hub_configuration_loads_from_rendered_values(deployment: str, tmp_path: Path) -> None:
    objects = rendered(deployment)
    values = chart_values(objects)
    aiinfn = values["custom"]["aiinfn"]
    # the files the hub pod would have mounted, at temporary paths
    (tmp_path / "platform.yaml").write_text(platform_document(objects))
    (tmp_path / "iam-client-secret").write_text("not-a-real-secret")
    (tmp_path / "crypt-key").write_text("a" * 64)
    aiinfn["platformConfigFile"] = str(tmp_path / "platform.yaml")
    aiinfn["iam"]["clientSecretFile"] = str(tmp_path / "iam-client-secret")
    aiinfn["cryptKeyFile"] = str(tmp_path / "crypt-key")
    release = DEPLOYMENTS[deployment][0]

    c = Config()
    # as the chart's jupyterhub_config.py leaves them before hub.extraConfig runs
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    configure_from_z2jh(
        c,
        z2jh_get_config(values),
        lambda name: f"{release}-default-priority" if name == "priority" else name,
        pod_env={"POD_NAMESPACE": DEPLOYMENTS[deployment][1]},
    )
    assert c.JupyterHub.spawner_class == "aiinfn"
    assert c.JupyterHub.authenticator_class == "iam"
    assert c.IAMAuthenticator.issuer == "https://iam.cloud.infn.it/"
    assert c.IAMAuthenticator.oauth_callback_url == f"{aiinfn['publicUrl']}/hub/oauth_callback"
    assert c.CryptKeeper["keys"] == ["a" * 64]  # `.keys` is the dict method
    assert c.AIInfnSpawner.namespace == DEPLOYMENTS[deployment][1]
    # notebooks get the chart's PriorityClass (value 0, above the Bunshin jobs' negative one)
    assert c.AIInfnSpawner.notebook_priority_class == f"{release}-default-priority"
    classes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PriorityClass"}
    platform = yaml.safe_load(platform_document(objects))
    assert classes[f"{release}-default-priority"]["value"] == 0
    assert platform["jobs"]["priorityClass"] not in classes
    (bunshin,) = [s for s in c.JupyterHub.services if s["name"] == "bunshin"]
    assert bunshin["url"] == aiinfn["bunshinUrl"]
    # run by the hub in its pod: it listens on the pod's addresses, not the Service's name
    service_env = {**bunshin["environment"], "JUPYTERHUB_SERVICE_URL": bunshin["url"]}
    assert bind_address(service_env) == ("0.0.0.0", urlparse(bunshin["url"]).port)


def test_unknown_custom_aiinfn_key_stops_the_hub() -> None:
    values = chart_values(rendered("site"))
    values["custom"]["aiinfn"]["iam"]["clientSecert"] = "/x"
    with pytest.raises(ConfigurationError, match=r"custom\.aiinfn\.iam\.clientSecert"):
        configure_from_z2jh(Config(), z2jh_get_config(values), None, pod_env={})


def test_no_secret_is_a_value() -> None:
    """Secrets come from the existing Secret `aiinfn-hub-secrets`, mounted as files."""
    for path in (VALUES, EVENT):
        text = path.read_text().lower()
        assert "apitoken:" not in text and "api_token:" not in text
        assert "clientsecret:" not in text
    values = chart_values(rendered("site"))
    (volume,) = [v for v in values["hub"]["extraVolumes"] if v["name"] == "aiinfn-secrets"]
    assert volume["secret"]["secretName"] == "aiinfn-hub-secrets"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("cull.timeout=soon", "/cull/timeout"),
        ("hub.nonsense=1", "nonsense"),
    ],
)
def test_the_chart_schema_refuses_a_bad_value(setting: str, complaint: str) -> None:
    result = helm_template(*DEPLOYMENTS["site"], "--set-string", setting)
    assert result.returncode != 0
    assert "schema" in result.stderr and complaint in result.stderr, result.stderr


def by_kind_and_name(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_servers_may_reach_the_bunshin_service(deployment: str) -> None:
    """The `bunshin` command in a server talks to the service in the hub pod on the port of
    `custom.aiinfn.bunshinUrl`: the servers' egress allows exactly the hub pods there (the
    chart's own rule opens 8081 only), and the hub's ingress takes it."""
    objects = rendered(deployment)
    release = DEPLOYMENTS[deployment][0]
    port = urlparse(chart_values(objects)["custom"]["aiinfn"]["bunshinUrl"]).port
    hub = by_kind_and_name(objects, "Deployment", "hub")
    hub_labels = hub["spec"]["template"]["metadata"]["labels"]
    servers = by_kind_and_name(objects, "NetworkPolicy", "singleuser")
    to_bunshin = [
        rule
        for rule in servers["spec"]["egress"]
        if {"port": port, "protocol": "TCP"} in rule.get("ports", [])
    ]
    assert len(to_bunshin) == 1, servers["spec"]["egress"]
    (peer,) = to_bunshin[0]["to"]
    assert set(peer) == {"podSelector"}  # the hub pods of this namespace, nothing else
    selector = peer["podSelector"]["matchLabels"]
    assert selector.items() <= hub_labels.items() and selector["component"] == "hub"
    # no other pod of the release carries these labels (the proxy, the user scheduler...)
    pods = [o for o in objects if o["kind"] == "Deployment" and o is not hub]
    assert pods and all(
        not selector.items() <= p["spec"]["template"]["metadata"]["labels"].items() for p in pods
    )
    # the chart's rule to the hub's API port is still there, for this release's hub
    (api,) = [r for r in servers["spec"]["egress"] if {"port": 8081} in r.get("ports", [])]
    assert api["to"][0]["podSelector"]["matchLabels"]["release"] == release
    # and the hub side accepts servers on that port
    hub_policy = by_kind_and_name(objects, "NetworkPolicy", "hub")
    server_labels = {"hub.jupyter.org/network-access-hub": "true"}
    assert any(
        {"port": port, "protocol": "TCP"} in rule.get("ports", [])
        and {"podSelector": {"matchLabels": server_labels}} in rule.get("from", [])
        for rule in hub_policy["spec"]["ingress"]
    )


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_the_juicefs_credentials_are_mounted_where_bunshin_reads_them(deployment: str) -> None:
    objects = rendered(deployment)
    platform = yaml.safe_load(platform_document(objects))
    folder = platform["jobs"]["offload"]["juicefs"]["credentialsDir"]
    spec = by_kind_and_name(objects, "Deployment", "hub")["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "hub"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    assert mount.get("readOnly") is True and "subPath" not in mount  # a folder, one file a key
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert "items" not in secret  # every key is a file: `<project>.meta-password`, ...
    assert secret["secretName"] == "aiinfn-juicefs-credentials"
    assert secret["secretName"] != "aiinfn-hub-secrets"  # Bunshin's own, not the hub's
    # the Secret's name is told to the operator next to the hub's own
    assert f"secret generic {secret['secretName']}" in VALUES.read_text()


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_the_deployed_platform_configuration_has_no_warning(
    deployment: str, tmp_path: Path
) -> None:
    """No risky choice ships: e.g. a pool lending jobs no accelerator (their quota 0)."""
    path = tmp_path / "platform.yaml"
    path.write_text(platform_document(rendered(deployment)))
    err = io.StringIO()
    assert check_config_command(str(path), out=io.StringIO(), err=err) == 0
    assert err.getvalue() == ""
