"""The production command ``aiinfn-hub`` never imports development code; ``aiinfn-dev`` has it.

Run through the installed console scripts (scripts/setup installs the project editable into
.venv, which makes both), each in a fresh process so ``sys.modules`` is the command's own.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "platform.yaml"
BIN = Path(sys.executable).parent  # .venv/bin: the interpreter and the console scripts

# imports the production CLI (running it when given arguments) and prints the dev modules loaded
LOADED_DEV_MODULES = """
import contextlib, io, json, sys
from aiinfn_hub import cli
code = None
if sys.argv[1:]:
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(sys.argv[1:])
dev = sorted(m for m in sys.modules if m == "aiinfn_hub.dev" or m.startswith("aiinfn_hub.dev."))
print(json.dumps({"code": code, "dev": dev}))
"""


def console_script(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{path} is missing: run scripts/setup (or pip install -e .)"
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [(), ("check-config", str(EXAMPLE)), ("docs-config",)])
def test_the_production_cli_loads_no_dev_module(args: tuple[str, ...]) -> None:
    done = run(sys.executable, "-c", LOADED_DEV_MODULES, *args)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dev"] == []
    assert result["code"] == (0 if args else None)


def test_the_production_cli_has_no_dev_import_even_a_lazy_one() -> None:
    tree = ast.parse((ROOT / "aiinfn_hub" / "cli.py").read_text())
    imported = [  # "from .dev import x" as ".dev.x", "import aiinfn_hub.dev" as it is
        f"{'.' * node.level}{node.module or ''}.{alias.name}"
        if isinstance(node, ast.ImportFrom)
        else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert imported
    assert [name for name in imported if ".dev." in f".{name}."] == []


@pytest.mark.parametrize("command", ["dev", "emulator"])
def test_a_moved_command_says_where_it_went_and_exits_2(command: str) -> None:
    done = run(console_script("aiinfn-hub"), command, "--port", "0")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"`aiinfn-dev {command}`" in line and "dev extra" in line


def test_the_production_help_lists_only_production_commands() -> None:
    done = run(console_script("aiinfn-hub"), "--help")
    assert done.returncode == 0, done.stderr
    assert "check-config" in done.stdout and "render-kueue" in done.stdout
    assert "docs-config" in done.stdout
    assert "emulator" not in done.stdout and " dev " not in done.stdout


def test_the_dev_cli_lists_dev_and_emulator() -> None:
    done = run(console_script("aiinfn-dev"), "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: aiinfn-dev ")
    commands = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")}
    assert {"dev", "emulator"} <= commands
    assert "check-config" not in done.stdout
