"""Who may import whom: the page does not import the API's module (both call the service),
the shared service scaffolding knows no particular service, and only the Kubernetes I/O
package touches kubernetes_asyncio's ``ApiException``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aiinfn_hub"


def imported(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            names.add(target)
            names |= {f"{target}.{alias.name}" for alias in node.names}
    return names


def test_the_pages_do_not_import_the_app_nor_the_api() -> None:
    names = imported(PACKAGE / "bunshin" / "pages.py")
    assert not names & {"aiinfn_hub.bunshin.app", "aiinfn_hub.bunshin.api"}, names


def test_the_service_knows_nothing_of_http() -> None:
    names = imported(PACKAGE / "bunshin" / "service.py")
    assert not [n for n in names if n.startswith(("tornado", "jupyterhub"))], names


def test_the_shared_service_scaffolding_imports_no_particular_service() -> None:
    forbidden = ("bunshin", "spawner", "auth", "storage", "platform.storage")
    for path in (PACKAGE / "services").glob("*.py"):
        names = imported(path)
        bad = [n for n in names if n.startswith(tuple(f"aiinfn_hub.{f}" for f in forbidden))]
        assert not bad, (path.name, bad)


def test_only_the_kubernetes_package_catches_api_exceptions() -> None:
    for folder in ("bunshin", "services"):
        for path in (PACKAGE / folder).glob("*.py"):
            assert "ApiException" not in path.read_text(), path
