"""The platform configuration: one strict YAML document, validated by ``PlatformConfig``.

It declares what the platform offers: the accelerator catalogue, the images, the CPU and memory
choices and the research projects with their limits. The same mapping sits under the hub's Helm
values, so keys are camelCase; Python code uses the snake_case attribute names. Unknown keys are
errors at every level, and every error names the path of the bad key as written in the YAML::

    accelerators[2].resource: expected an extended resource name like "nvidia.com/gpu" ...

Modules: ``values`` (single-value checks and Kubernetes grammars), ``models`` (the sections),
``errors`` (turning validation errors into those lines), ``loading`` (YAML in, model out),
``provider`` (the one shared, reloading view of the platform file that every consumer asks).
Adding a section is one :class:`ConfigSection` subclass and one field on ``PlatformConfig``.
"""

from .base import ConfigSection
from .errors import PlatformConfigError, format_errors, format_loc
from .loading import load_platform_config, validate_platform_config
from .models import (
    Accelerator,
    Image,
    PlatformConfig,
    Project,
    ProjectLimits,
    ProjectStorage,
    Resources,
    Toleration,
)
from .provider import ConfigProvider, config_provider
from .values import check_extended_resource, check_label_key, check_label_value, parse_memory

__all__ = [
    "Accelerator",
    "ConfigProvider",
    "ConfigSection",
    "Image",
    "PlatformConfig",
    "PlatformConfigError",
    "Project",
    "ProjectLimits",
    "ProjectStorage",
    "Resources",
    "Toleration",
    "check_extended_resource",
    "check_label_key",
    "check_label_value",
    "config_provider",
    "format_errors",
    "format_loc",
    "load_platform_config",
    "parse_memory",
    "validate_platform_config",
]
