"""The layering holds itself: what `.importlinter` cannot say is checked here.

`lint-imports` (in scripts/test) checks the arrows between the packages it names; these tests
make sure it names every package (a new one cannot slip outside the contracts) and that no
module outside the Kubernetes I/O layer handles the client's raw ``ApiException``.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiinfn_hub"


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def _product_modules() -> set[str]:
    """Top-level modules and packages of aiinfn_hub, development code aside."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    return {f"aiinfn_hub.{n}" for n in names} - {"aiinfn_hub.dev"}


def test_every_product_package_has_a_place_in_the_layers() -> None:
    layers = _contracts()["importlinter:contract:layers"]["layers"]
    named = {m.strip() for line in layers.splitlines() for m in line.split("|") if m.strip()}
    assert _product_modules() <= named, sorted(_product_modules() - named)
    assert (PACKAGE / "bunshin" / "__init__.py").exists()  # namespace packages are not analysed


def test_every_product_package_is_kept_from_dev_code_and_the_sync_client() -> None:
    contracts = _contracts()
    for name in ("importlinter:contract:no-dev", "importlinter:contract:no-sync-kubernetes"):
        sources = set(contracts[name]["source_modules"].split())
        assert _product_modules() <= sources, (name, sorted(_product_modules() - sources))


def _names_api_exception(node: ast.expr | None) -> bool:
    if node is None:
        return False
    return any(
        (isinstance(n, ast.Attribute) and n.attr == "ApiException")
        or (isinstance(n, ast.Name) and n.id == "ApiException")
        for n in ast.walk(node)
    )


def test_only_the_kubernetes_layer_catches_the_clients_raw_errors() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).parts
        if relative[0] in ("kube", "dev"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and _names_api_exception(node.type):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "catch kube.rest.KubeError (kube_call wraps typed calls): " + ", ".join(
        offenders
    )
