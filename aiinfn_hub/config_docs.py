"""The configuration reference (``docs/configuration.md``), built from the code that reads it.

Two kinds of settings exist: the platform configuration file (strict pydantic sections of
:mod:`aiinfn_hub.config`, each field with a ``description``) and the traitlets of our
JupyterHub classes (each with a ``help``). :func:`configuration_reference` turns both into one
Markdown document; ``aiinfn-hub docs-config`` prints it, writes it or checks that the committed
file is current. Everything here is pure: the same code gives the same bytes on every machine
(declaration order, no memory addresses, no paths of this machine).
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from traitlets import TraitType
from traitlets.config import Configurable
from traitlets.traitlets import DefaultHandler

from .auth.authenticator import IAMAuthenticator
from .config import PlatformConfig
from .envkernels.spec_manager import EnvironmentKernelSpecManager
from .services.web import ServiceAuth
from .spawner.spawner import AIInfnSpawner

DOCS_FILE = "docs/configuration.md"  # relative to the repository's root


def write_command(path: str = DOCS_FILE) -> str:
    """The command that makes the reference again at ``path``."""
    return f"aiinfn-hub docs-config --write {path}"


# Where each configurable class of ours is set. A test checks that every traitlets class of
# aiinfn_hub with a config=True trait of its own is listed here.
CONFIGURABLE_CLASSES: tuple[tuple[type[Configurable], str], ...] = (
    (
        IAMAuthenticator,
        "In the hub's configuration (`jupyterhub_config.py`), selected with "
        '`c.JupyterHub.authenticator_class = "iam"`.',
    ),
    (
        AIInfnSpawner,
        "In the hub's configuration (`jupyterhub_config.py`), selected with "
        '`c.JupyterHub.spawner_class = "aiinfn"`.',
    ),
    (
        ServiceAuth,
        "The hub login of the platform's services (e.g. Bunshin), in the service's own process: "
        "the hub's `jupyterhub_config.py` does not reach it.",
    ),
    (
        EnvironmentKernelSpecManager,
        "In the single-user image's Jupyter server configuration "
        "(`images/singleuser/jupyter_server_config.json`), selected with "
        "`ServerApp.kernel_spec_manager_class`: the managed environments as kernels.",
    ),
)


@dataclass(frozen=True)
class Noun:
    """A type in plain words, singular and plural (``list of <plural>``)."""

    one: str
    many: str


# the single-value checks of aiinfn_hub.config (by the name of their validator function)
CHECKED_VALUES: dict[str, Noun] = {
    "check_slug": Noun("short name", "short names"),
    "check_label_key": Noun("label key", "label keys"),
    "check_label_value": Noun("label value", "label values"),
    "_toleration_key": Noun("label key (or empty)", "label keys"),
    "check_extended_resource": Noun("extended resource name", "extended resource names"),
    "check_image_reference": Noun("image reference", "image references"),
    "_size": Noun("quantity (e.g. `8Gi`)", "quantities (e.g. `8Gi`)"),
    "_cores": Noun("number of CPU cores", "numbers of CPU cores"),
    "_absolute_path": Noun("absolute path", "absolute paths"),
    "_relative_dir": Noun("relative folder", "relative folders"),
    "_dns_subdomain": Noun("Kubernetes name", "Kubernetes names"),
    "_cvmfs_repository": Noun("CVMFS repository", "CVMFS repositories"),
    "_bucket_name": Noun("bucket name", "bucket names"),
    "_metadata_url": Noun("JuiceFS metadata URL", "JuiceFS metadata URLs"),
    "_juicefs_folder": Noun("JuiceFS folder", "JuiceFS folders"),
}

PLAIN_TYPES: dict[type, Noun] = {
    str: Noun("string", "strings"),
    int: Noun("integer", "integers"),
    float: Noun("number", "numbers"),
    bool: Noun("boolean", "booleans"),
}

TRAIT_TYPES: dict[str, Noun] = {
    "Unicode": Noun("string", "strings"),
    "Bytes": Noun("bytes", "bytes"),
    "Int": Noun("integer", "integers"),
    "Integer": Noun("integer", "integers"),
    "Float": Noun("number", "numbers"),
    "Bool": Noun("boolean", "booleans"),
    "Dict": Noun("dictionary", "dictionaries"),
    "Any": Noun("any value", "any values"),
    "Callable": Noun("callable", "callables"),
}


# -- the platform configuration -------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    """One mapping of the platform configuration: its YAML path and its model."""

    path: str  # e.g. "storage.buckets", "accelerators[]", "projects.<name>.limits"
    model: type[BaseModel]


def anchor(path: str) -> str:
    """The HTML anchor of a section: ``platform-`` and the path's words joined by dashes."""
    words = re.findall(r"[A-Za-z0-9]+", path)
    return "-".join(["platform", *words]) if words else "platform"


def config_sections(model: type[BaseModel] = PlatformConfig, path: str = "") -> Iterator[Section]:
    """Every section under ``model`` (itself first), depth first in declaration order."""
    yield Section(path, model)
    for name, field in model.model_fields.items():
        key = field.alias or name
        for suffix, sub in _nested_models(field.annotation):
            yield from config_sections(sub, f"{path}.{key}{suffix}" if path else f"{key}{suffix}")


def _nested_models(annotation: Any, suffix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield suffix, annotation
        return
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is list:
        yield from _nested_models(args[0], suffix + "[]")
    elif origin is dict:
        yield from _nested_models(args[1], suffix + ".<name>")
    elif origin is Annotated:
        yield from _nested_models(args[0], suffix)
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _nested_models(arg, suffix)


def field_type(field: FieldInfo, path: str) -> str:
    """A field's type in plain words, e.g. ``integer ≥ 1`` or ``list of image references``."""
    return _words(field.annotation, list(field.metadata), path).one


def _words(annotation: Any, metadata: list[Any], path: str) -> Noun:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        extra: list[Any] = []
        for item in args[1:]:
            extra.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return _words(args[0], [*extra, *metadata], path)
    if origin in (Union, types.UnionType):
        # None is "not set", which the default says; the type is what may be written
        present = [arg for arg in args if arg is not type(None)]
        if len(present) == 1:
            return _words(present[0], metadata, path)
        nouns = [_words(arg, [], path) for arg in present]
        return Noun(" or ".join(n.one for n in nouns), " or ".join(n.many for n in nouns))
    if origin is Literal:
        shown = ", ".join(f"`{json.dumps(value)}`" for value in args)
        return _constrained(Noun(f"one of {shown}", f"values among {shown}"), metadata)
    if origin is list:
        item = _words(args[0], [], f"{path}[]")
        return _constrained(Noun(f"list of {item.many}", f"lists of {item.many}"), metadata)
    if origin is dict:
        key = _words(args[0], [], path)
        value = _words(args[1], [], f"{path}.<name>")
        text = f"mapping of {key.many} to {value.many}"
        return _constrained(Noun(text, text.replace("mapping", "mappings", 1)), metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        link = f"[`{path}`](#{anchor(path)})"
        return Noun(f"mapping ({link})", f"mappings ({link})")
    noun = PLAIN_TYPES.get(annotation, Noun(getattr(annotation, "__name__", str(annotation)), ""))
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None and func.__name__ in CHECKED_VALUES:
            noun = CHECKED_VALUES[func.__name__]
    return _constrained(noun, metadata)


def _constrained(noun: Noun, metadata: list[Any]) -> Noun:
    """``noun`` with its bounds: ``integer ≥ 1``, ``list of …, at least 1``."""
    notes: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            notes.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            notes.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            notes.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            notes.append(f"≤ {item.le}")
    one, many = noun.one, noun.many
    if notes:
        one, many = f"{one} {' and '.join(notes)}", f"{many} {' and '.join(notes)}"
    for item in metadata:
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            if noun.one == "string" and item.min_length == 1:
                one, many = "non-empty string", "non-empty strings"
            else:
                one, many = _length(one, many, noun, f"at least {item.min_length}")
        elif isinstance(item, annotated_types.MaxLen):
            one, many = _length(one, many, noun, f"at most {item.max_length}")
    return Noun(one, many)


def _length(one: str, many: str, noun: Noun, bound: str) -> tuple[str, str]:
    """``string of at most 200 characters``; ``list of …, at least 1 item``."""
    if noun.one == "string":
        return f"{one} of {bound} characters", f"{many} of {bound} characters each"
    unit = "item" if bound.endswith(" 1") else "items"
    return f"{one}, {bound} {unit}", f"{many}, {bound} {unit} each"


def field_default(field: FieldInfo) -> str:
    """A field's default as it would be written in the YAML, or ``required``/``not set``."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    return f"`{_json(value)}`"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, dict))


def _table_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def rst_to_markdown(text: str) -> str:
    """Docstring markup as Markdown: ``x`` and :class:`x` become `x`."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line, in Markdown."""
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return rst_to_markdown(" ".join(paragraph.split()))


def section_markdown(section: Section) -> str:
    """One section of the platform configuration: heading, what it is, a table of its keys."""
    title = f"`{section.path}`" if section.path else "The top level"
    lines = [
        f'<a id="{anchor(section.path)}"></a>',
        "",
        f"### {title}",
        "",
    ]
    intro = first_paragraph(section.model.__doc__)
    if intro:
        lines += [intro, ""]
    lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in section.model.model_fields.items():
        key = field.alias or name
        path = f"{section.path}.{key}" if section.path else key
        cells = [
            f"`{key}`",
            field_type(field, path),
            field_default(field),
            field.description or "",
        ]
        lines.append("| " + " | ".join(_table_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def platform_config_markdown(model: type[BaseModel] = PlatformConfig) -> str:
    """The platform configuration's part of the reference: every section, nested ones after."""
    intro = (
        "## The platform configuration file\n\n"
        "One YAML document, given to the hub as `c.AIInfnSpawner.platform_config_file` and "
        "`c.IAMAuthenticator.platform_config_file` and to the Bunshin service: the accelerator "
        "catalogue, images, CPU and memory choices, projects, storage and batch jobs. Keys are "
        "camelCase; an unknown key is an error. Check a file with "
        "`aiinfn-hub check-config FILE`; `examples/platform.yaml` is a complete example.\n\n"
        "Paths: `a.b` is key `b` of mapping `a`, `a[]` an item of list `a`, `a.<name>` any "
        "key of mapping `a`. A default of `not set` means the key may be left out (or "
        "`null`).\n"
    )
    return intro + "".join("\n" + section_markdown(s) for s in config_sections(model))


# -- traitlets --------------------------------------------------------------------------------
def own_config_traits(cls: type[Configurable]) -> list[tuple[str, TraitType[Any, Any]]]:
    """The ``config=True`` traits a class declares itself, in declaration order."""
    own = cls.class_own_traits(config=True)
    return [(name, own[name]) for name in vars(cls) if name in own]


def default_handlers(cls: type[Configurable]) -> dict[str, DefaultHandler]:
    """The ``@default`` methods a class declares itself, by trait name."""
    return {
        value.trait_name: value for value in vars(cls).values() if isinstance(value, DefaultHandler)
    }


def trait_type(trait: TraitType[Any, Any]) -> str:
    """A trait's type in plain words, e.g. ``set of strings``."""
    return _trait_noun(trait).one


def _trait_noun(trait: TraitType[Any, Any]) -> Noun:
    kind = type(trait).__name__
    if kind in ("List", "Set", "Tuple"):
        item = getattr(trait, "_trait", None)
        items = _trait_noun(item).many if isinstance(item, TraitType) else "values"
        word = {"List": "list", "Set": "set", "Tuple": "tuple"}[kind]
        return Noun(f"{word} of {items}", f"{word}s of {items}")
    if kind == "Union":
        nouns = [_trait_noun(sub) for sub in getattr(trait, "trait_types", [])]
        return Noun(" or ".join(n.one for n in nouns), " or ".join(n.many for n in nouns))
    values = getattr(trait, "values", None)
    if kind in ("Enum", "CaselessStrEnum", "UseEnum") and isinstance(values, Sequence):
        shown = ", ".join(f"`{value!r}`" for value in values)
        return Noun(f"one of {shown}", f"values among {shown}")
    noun = TRAIT_TYPES.get(kind, Noun(kind, kind))
    if getattr(trait, "allow_none", False):
        return Noun(f"{noun.one} or `None`", f"{noun.many} or `None`")
    return noun


COMPUTED = "computed at start-up"


def python_value(value: Any) -> str | None:
    """``value`` as written in ``jupyterhub_config.py``, or None when it has no stable text."""
    if isinstance(value, set | frozenset):
        if not value:
            return "set()"
        return "{" + ", ".join(sorted(repr(item) for item in value)) + "}"
    if isinstance(value, dict):
        pairs = [(python_value(k), python_value(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(pairs, key=str)) + "}"
    if isinstance(value, list | tuple):
        parts = [python_value(item) for item in value]
        if any(part is None for part in parts):
            return None
        joined = ", ".join(part for part in parts if part is not None)
        if isinstance(value, list):
            return f"[{joined}]"
        return f"({joined},)" if len(parts) == 1 else f"({joined})"
    if value is None or isinstance(value, str | int | float | bool):
        return repr(value)
    return None  # objects, callables: their repr would carry a memory address


def _fixed_default(handler: DefaultHandler) -> str | None:
    """What a ``@default`` method returns when it reads nothing of the instance (a constant),
    else None: it is called with an object that has no attributes, so any dynamic default
    (one that reads other settings or the platform file) fails at its first look and is
    shown as computed."""
    try:
        value = handler.func(_NO_INSTANCE)
    except Exception:
        return None
    return python_value(value)


class _NoInstance:
    __slots__ = ()


_NO_INSTANCE = _NoInstance()


def trait_default(cls: type[Configurable], name: str, trait: TraitType[Any, Any]) -> str:
    """A trait's default in Python syntax, or a sentence when it is computed."""
    handler = default_handlers(cls).get(name)
    if handler is not None:
        fixed = _fixed_default(handler)
        return f"`{fixed}`" if fixed is not None else COMPUTED
    try:  # containers' defaults are made per instance (their default_value is Undefined)
        value = trait.default()
    except Exception:
        return COMPUTED
    shown = python_value(value)
    return f"`{shown}`" if shown is not None else COMPUTED


def help_markdown(text: str) -> str:
    """A ``help`` text as Markdown paragraphs (indentation of the source removed)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def changed_inherited_defaults(cls: type[Configurable]) -> list[tuple[str, str, str]]:
    """``(name, type, default)`` of inherited settings whose default this class changes."""
    own = dict(own_config_traits(cls))
    traits = cls.class_traits(config=True)
    rows = []
    for name in sorted(default_handlers(cls)):
        if name in own or name not in traits:
            continue
        rows.append((name, trait_type(traits[name]), trait_default(cls, name, traits[name])))
    return rows


def class_markdown(cls: type[Configurable], where: str) -> str:
    """One configurable class: where it is set, each own setting, changed inherited defaults."""
    bases = ", ".join(f"`{base.__module__}.{base.__name__}`" for base in cls.__bases__)
    lines = [
        f"### `{cls.__name__}`",
        "",
        f"`{cls.__module__}.{cls.__name__}`, a subclass of {bases}. "
        + first_paragraph(cls.__doc__),
        "",
        where,
    ]
    for name, trait in own_config_traits(cls):
        lines += [
            "",
            f"#### `c.{cls.__name__}.{name}`",
            "",
            f"Type: {trait_type(trait)}. Default: {trait_default(cls, name, trait)}.",
            "",
            help_markdown(trait.help),
        ]
    inherited = changed_inherited_defaults(cls)
    if inherited:
        lines += [
            "",
            f"#### Inherited settings with another default in `{cls.__name__}`",
            "",
            "What they do is documented by the class that declares them.",
            "",
            "| Setting | Type | Default here |",
            "|---|---|---|",
        ]
        lines += [
            f"| `c.{cls.__name__}.{name}` | {_table_cell(kind)} | {_table_cell(default)} |"
            for name, kind, default in inherited
        ]
    return "\n".join(lines) + "\n"


def traitlets_markdown(
    classes: Sequence[tuple[type[Configurable], str]] = CONFIGURABLE_CLASSES,
) -> str:
    """The traitlets' part of the reference: one section per class, in the order given."""
    intro = (
        "## Settings of the JupyterHub classes\n\n"
        "Traitlets, set in Python as `c.Class.setting = value` (for the hub, in "
        "`jupyterhub_config.py`). Only the settings these classes add are described here, "
        "and the inherited ones whose default they change; the rest are those of JupyterHub, "
        "OAuthenticator and KubeSpawner.\n"
    )
    return intro + "".join("\n" + class_markdown(cls, where) for cls, where in classes)


def configuration_reference(
    model: type[BaseModel] = PlatformConfig,
    classes: Sequence[tuple[type[Configurable], str]] = CONFIGURABLE_CLASSES,
) -> str:
    """The whole ``docs/configuration.md``."""
    head = (
        "# Configuration reference\n\n"
        f"<!-- Generated from the code by `{write_command()}`: do not edit by hand. -->\n\n"
        "Two kinds of settings: [the platform configuration file](#the-platform-configuration-"
        "file) (what the platform offers: accelerators, images, projects, storage, jobs) and "
        "[the settings of the JupyterHub classes](#settings-of-the-jupyterhub-classes) (how "
        "the hub logs users in and starts their servers).\n\n"
    )
    return head + platform_config_markdown(model) + "\n" + traitlets_markdown(classes)
