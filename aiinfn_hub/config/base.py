"""The base of every configuration section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigSection(BaseModel):
    """Base of every section: camelCase keys, unknown keys rejected, no type coercion.

    ``strict`` keeps YAML's types honest: ``cpuChoices: ["2"]`` or a label value written as
    ``true`` is an error here rather than a surprise in a pod manifest. Instances are frozen so
    the loaded configuration can be shared by every request of the hub.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )
