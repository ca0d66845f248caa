"""docs/configuration.md: made from the code by pure functions, kept current by a test.

The committed file must be what ``aiinfn-hub docs-config`` gives today; every platform
configuration key and every configurable traitlet of aiinfn_hub is in it; the text is the same
on every machine.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import types
from collections.abc import Callable as Function
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import AfterValidator, Field
from pydantic.fields import FieldInfo
from traitlets import Bool, Callable, Instance, List, Set, Unicode, default
from traitlets.config import Configurable

import aiinfn_hub
from aiinfn_hub.auth.authenticator import IAMAuthenticator
from aiinfn_hub.cli import main
from aiinfn_hub.config import ConfigSection
from aiinfn_hub.config.values import check_label_key, check_slug
from aiinfn_hub.config_docs import (
    CHECKED_VALUES,
    COMPUTED,
    CONFIGURABLE_CLASSES,
    DOCS_FILE,
    anchor,
    class_markdown,
    config_sections,
    configuration_reference,
    own_config_traits,
    section_markdown,
    write_command,
)
from aiinfn_hub.spawner.spawner import AIInfnSpawner

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / DOCS_FILE
BIN = Path(sys.executable).parent  # .venv/bin: the console scripts


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it (a new process: a few seconds)."""
    script = BIN / "aiinfn-hub"
    assert script.is_file(), f"{script} is missing: run scripts/setup (or pip install -e .)"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Function[..., subprocess.CompletedProcess[str]]:
    """The command's own entry point in this process (``aiinfn_hub.cli.main``): the same
    answers as the console script without starting Python again."""

    def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


# -- the committed file ---------------------------------------------------------------------
def test_the_committed_reference_is_what_the_code_gives() -> None:
    assert COMMITTED.is_file(), f"{DOCS_FILE} is missing: run `{write_command()}`"
    assert COMMITTED.read_text(encoding="utf-8") == configuration_reference(), (
        f"{DOCS_FILE} is out of date with the descriptions and help texts: run "
        f"`{write_command()}` and commit it"
    )


def test_check_passes_on_the_committed_file() -> None:
    done = run_cli("docs-config", "--check", DOCS_FILE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_check_fails_on_a_stale_file_and_says_how_to_remake_it(
    tmp_path: Path, cli: Function[..., subprocess.CompletedProcess[str]]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(
        configuration_reference().replace("Seconds to wait", "Minutes to wait", 1),
        encoding="utf-8",
    )
    done = cli("docs-config", "--check", str(stale))
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "out of date" in line and write_command(str(stale)) in line


def test_check_fails_on_a_missing_file(
    tmp_path: Path, cli: Function[..., subprocess.CompletedProcess[str]]
) -> None:
    done = cli("docs-config", "--check", str(tmp_path / "nowhere.md"))
    assert done.returncode == 1
    assert "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_write_makes_a_file_that_check_accepts_and_print_gives_the_same(
    tmp_path: Path, cli: Function[..., subprocess.CompletedProcess[str]]
) -> None:
    target = tmp_path / "configuration.md"
    assert cli("docs-config", "--write", str(target)).returncode == 0
    assert target.read_text(encoding="utf-8") == configuration_reference()
    assert cli("docs-config", "--check", str(target)).returncode == 0
    printed = cli("docs-config", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == configuration_reference()


def test_the_reference_has_nothing_of_this_machine_or_this_process() -> None:
    text = configuration_reference()
    assert text == configuration_reference()
    assert "0x" not in text  # reprs of objects and functions
    for local in {str(ROOT), str(Path.home()), sys.prefix, os.getcwd()}:
        assert local not in text
    assert "<function" not in text and "typing." not in text and "Annotated" not in text


# -- the platform configuration -------------------------------------------------------------
def test_every_section_and_key_of_the_platform_configuration_is_documented() -> None:
    text = configuration_reference()
    sections = list(config_sections())
    paths = [s.path for s in sections]
    assert len(paths) == len(set(paths))
    assert {"", "accelerators[]", "projects.<name>.limits", "jobs.offload.juicefs"} <= set(paths)
    for section in sections:
        assert f'<a id="{anchor(section.path)}"></a>' in text
        rendered = section_markdown(section)
        for name, field in section.model.model_fields.items():
            assert field.description, f"{section.path}.{name} has no description"
            assert f"| `{field.alias or name}` |" in rendered


def test_every_link_to_a_section_has_its_anchor() -> None:
    text = configuration_reference()
    anchors = {anchor(s.path) for s in config_sections()}
    linked = {part.split(")", 1)[0] for part in text.split("](#platform")[1:]}
    assert linked
    assert {f"platform{rest}" for rest in linked} <= anchors


def _validators(annotation: Any, metadata: list[Any]) -> Iterator[Any]:
    for item in metadata:
        if isinstance(item, FieldInfo):
            yield from _validators(None, list(item.metadata))
        elif getattr(item, "func", None) is not None:
            yield item.func
    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        yield from _validators(args[0], list(args[1:]))
    elif get_origin(annotation) in (list, dict, Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _validators(arg, [])


def test_every_value_check_of_the_configuration_has_plain_words() -> None:
    found = {
        func.__name__
        for section in config_sections()
        for field in section.model.model_fields.values()
        for func in _validators(field.annotation, list(field.metadata))
    }
    assert found, "no checked values found: the walk is broken"
    assert found <= set(CHECKED_VALUES), f"give these checks words: {found - set(CHECKED_VALUES)}"


class _Inner(ConfigSection):
    """An inner section.

    Its second paragraph is not shown."""

    mode: Literal["a", "b"] = Field("a", description="The mode, e.g. `b`.")


class _Outer(ConfigSection):
    """The ``outer`` section of :class:`_Outer`."""

    items: Annotated[list[_Inner], Field(min_length=1)] = Field(description="Items | more.")
    by_name: dict[Annotated[str, AfterValidator(check_slug)], _Inner] = Field(
        default_factory=dict, description="By name."
    )
    maybe: _Inner | None = Field(None, description="Optional section.")
    inner: _Inner = Field(default_factory=_Inner, description="Always there.")
    keys: list[Annotated[str, AfterValidator(check_label_key)]] = Field(
        default_factory=lambda: ["x", "y"], description="Label keys."
    )
    count: int = Field(3, ge=1, le=10, description="A count.")
    size: float | None = Field(None, gt=0, description="A size.")
    title: str = Field(min_length=1, description="A title.")


def test_sections_are_listed_depth_first_in_declaration_order() -> None:
    assert [(s.path, s.model) for s in config_sections(_Outer)] == [
        ("", _Outer),
        ("items[]", _Inner),
        ("byName.<name>", _Inner),
        ("maybe", _Inner),
        ("inner", _Inner),
    ]


def test_a_section_table_says_types_defaults_and_descriptions_in_plain_words() -> None:
    [top, *_] = config_sections(_Outer)
    rows = {
        line.split(" | ")[0].strip("| `"): line.split(" | ")[1:]
        for line in section_markdown(top).splitlines()
        if line.startswith("| `")
    }
    assert rows["items"] == [
        "list of mappings ([`items[]`](#platform-items)), at least 1 item",
        "required",
        "Items \\| more. |",
    ]
    assert rows["byName"][:2] == [
        "mapping of short names to mappings ([`byName.<name>`](#platform-byName-name))",
        "`{}`",
    ]
    assert rows["maybe"][:2] == ["mapping ([`maybe`](#platform-maybe))", "not set"]
    assert rows["inner"][:2] == ["mapping ([`inner`](#platform-inner))", "its keys' defaults"]
    assert rows["keys"][:2] == ["list of label keys", '`["x", "y"]`']
    assert rows["count"][:2] == ["integer ≥ 1 and ≤ 10", "`3`"]
    assert rows["size"][:2] == ["number > 0", "not set"]
    assert rows["title"][:2] == ["non-empty string", "required"]
    assert "The `outer` section of `_Outer`." in section_markdown(top)


def test_a_nested_section_shows_its_path_and_only_its_docstrings_first_paragraph() -> None:
    inner = next(s for s in config_sections(_Outer) if s.path == "items[]")
    text = section_markdown(inner)
    assert text.startswith('<a id="platform-items"></a>\n\n### `items[]`\n\nAn inner section.\n')
    assert "second paragraph" not in text
    assert '| `mode` | one of `"a"`, `"b"` | `"a"` | The mode, e.g. `b`. |' in text


# -- traitlets --------------------------------------------------------------------------------
def _product_modules() -> Iterator[types.ModuleType]:
    """Every module of aiinfn_hub but the development code and ``__main__`` scripts."""
    for info in pkgutil.walk_packages(aiinfn_hub.__path__, "aiinfn_hub."):
        if info.name.startswith("aiinfn_hub.dev") or info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_configurable_class_of_ours_with_settings_is_documented() -> None:
    found = set()
    for module in _product_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and issubclass(cls, Configurable)
                and own_config_traits(cls)
            ):
                found.add(cls)
    listed = [cls for cls, _ in CONFIGURABLE_CLASSES]
    assert len(listed) == len(set(listed))
    assert found == set(listed), "list them in config_docs.CONFIGURABLE_CLASSES"


def test_every_setting_of_our_classes_has_help_and_a_heading() -> None:
    text = configuration_reference()
    for cls, _ in CONFIGURABLE_CLASSES:
        traits = own_config_traits(cls)
        assert traits
        for name, trait in traits:
            assert (trait.help or "").strip(), f"{cls.__name__}.{name} has no help"
            assert f"#### `c.{cls.__name__}.{name}`\n" in text


def test_defaults_computed_at_start_up_are_said_so_and_fixed_ones_shown() -> None:
    text = class_markdown(IAMAuthenticator, "")
    # reads the platform file: computed
    assert (
        f"#### `c.IAMAuthenticator.storage_token_audience`\n\nType: string. Default: {COMPUTED}."
    ) in text
    # a constant @default of an inherited setting
    assert (
        "| `c.IAMAuthenticator.scope` | list of strings | "
        "`['openid', 'profile', 'email', 'offline_access', 'wlcg.groups']` |"
    ) in text
    assert "| `c.IAMAuthenticator.allowed_groups` | set of strings | computed at start-up |" in text
    assert "Type: set of strings. Default: `set()`." in text  # rebind_users
    spawner = class_markdown(AIInfnSpawner, "")
    assert "#### `c.AIInfnSpawner.inventory_timeout`\n\nType: number. Default: `10.0`." in spawner


class _Base(Configurable):
    name = Unicode("base", help="The name.").tag(config=True)


class _Example(_Base):
    """An example class.

    Not shown."""

    zeta = Unicode(
        "z",
        help="""First declared.

        Second paragraph, indented in the source.""",
    ).tag(config=True)
    alpha = List(Unicode(), ["a"], help="A list.").tag(config=True)
    tags = Set(Unicode(), help="A set.").tag(config=True)
    hook = Callable(lambda: None, help="A callable.").tag(config=True)
    thing = Instance(Path, args=("/somewhere",), help="An object.").tag(config=True)
    flag = Bool(False, help="Not a setting: no config tag.")
    derived = Unicode("", help="From the name.").tag(config=True)

    @default("derived")
    def _derived_default(self) -> str:
        return self.name + "!"

    @default("name")
    def _name_default(self) -> str:
        return "example"


def test_a_class_section_lists_own_settings_in_declaration_order_with_plain_types() -> None:
    text = class_markdown(_Example, "Where it is set.")
    assert text.startswith(
        "### `_Example`\n\n`test_config_docs._Example`, a subclass of `test_config_docs._Base`. "
        "An example class.\n\nWhere it is set.\n"
    )
    headings = [line for line in text.splitlines() if line.startswith("#### `c.")]
    assert headings == [
        f"#### `c._Example.{name}`"
        for name in ("zeta", "alpha", "tags", "hook", "thing", "derived")
    ]
    assert "First declared.\n\nSecond paragraph, indented in the source.\n" in text
    assert "Type: list of strings. Default: `['a']`." in text
    assert "Type: set of strings. Default: `set()`." in text
    # a function or an object has no stable text (its repr carries an address)
    assert f"Type: callable. Default: {COMPUTED}." in text
    assert f"Type: Instance. Default: {COMPUTED}." in text
    assert f"`c._Example.derived`\n\nType: string. Default: {COMPUTED}." in text
    assert "flag" not in text and "Not shown" not in text
    assert "| `c._Example.name` | string | `'example'` |" in text
    assert "0x" not in text
