"""Checks for single values of the platform configuration, worded for administrators.

Each check raises ``ValueError`` with ``expected ... (got ...)`` text; the formatter in
``errors.py`` puts the path of the key in front. The grammars follow what Kubernetes itself
accepts (label syntax, extended resource names, quantities), so a configuration that passes here
does not fail later when the spawner puts these values into a pod.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from ..kubemodel.quantity import parse_quantity

# a DNS label: what Kubernetes accepts as a namespace or Service name; our names end up in
# labels, volume names and URLs, so they keep to it
_SLUG = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
# the "name" part of a qualified name (label keys, resource names) and a label value
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# a loose OCI reference: [registry[:port]/]path[:tag][@digest], path components lowercase
_HOST_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
_REGISTRY = rf"{_HOST_LABEL}(\.{_HOST_LABEL})*(:[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(
    rf"({_REGISTRY}/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*(:{_TAG})?(@{_DIGEST})?"
)
# Kubernetes treats names without a domain (cpu, memory, ...) and the kubernetes.io namespace
# as native resources: a device plugin can never advertise them
_NATIVE_RESOURCE_NAMESPACE = "kubernetes.io/"
_QUOTA_PREFIX = "requests."
_MAX_NAME = 63
_MAX_PREFIX = 253


def shown(value: Any) -> str:
    """``value`` as an administrator wrote it in YAML: strings quoted, ``true``, ``null``."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def check_slug(value: str) -> str:
    """A short identifier (accelerator, image or project name) safe in labels and URLs."""
    if not _SLUG.fullmatch(value):
        raise ValueError(
            "expected a lowercase name of letters, digits and '-', starting and ending with a "
            f'letter or digit, at most 63 characters, like "a100-1g-10gb" (got {shown(value)})'
        )
    return value


def _qualified_name_ok(value: str) -> bool:
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or len(prefix) > _MAX_PREFIX or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= _MAX_NAME and bool(_QUALIFIED_NAME.fullmatch(name))


def check_label_key(key: str) -> str:
    """A label key as Kubernetes accepts it: ``[dns-subdomain/]name``."""
    if not _qualified_name_ok(key):
        raise ValueError(
            'expected a Kubernetes label key like "nvidia.com/gpu.product": an optional DNS '
            "subdomain and '/', then at most 63 letters, digits, '-', '_' or '.' "
            f"(got {shown(key)})"
        )
    return key


def check_label_value(value: str) -> str:
    """A label value as Kubernetes accepts it (may be empty)."""
    if len(value) > _MAX_NAME or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            'expected a Kubernetes label value like "NVIDIA-A100-SXM4-80GB": at most 63 '
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
            f"(got {shown(value)})"
        )
    return value


def check_extended_resource(value: str) -> str:
    """An extended resource name as Kubernetes validates it in a pod's limits.

    It must be a qualified name with a domain (``nvidia.com/gpu``), outside the
    ``kubernetes.io`` namespace, not starting with ``requests.``, and ``requests.<name>`` must
    still be a qualified name (that is how a ResourceQuota refers to it).
    """
    if (
        "/" not in value
        or _NATIVE_RESOURCE_NAMESPACE in value
        or value.startswith(_QUOTA_PREFIX)
        or not _qualified_name_ok(value)
        or not _qualified_name_ok(_QUOTA_PREFIX + value)
    ):
        raise ValueError(
            "expected an extended resource name like \"nvidia.com/gpu\": a domain, '/' and a "
            f"name, not cpu, memory or a kubernetes.io resource (got {shown(value)})"
        )
    return value


def check_image_reference(value: str) -> str:
    """An OCI image reference, checked loosely: no whitespace, lowercase repository path."""
    if not _IMAGE.fullmatch(value):
        raise ValueError(
            'expected an OCI image reference like "harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11" '
            f"(registry, lowercase path, optional :tag and @digest; got {shown(value)})"
        )
    return value


def parse_memory(value: str | int) -> int:
    """Bytes in a Kubernetes memory or storage quantity: ``8Gi``, ``500M``, ``1e9``, ``1073741824``.

    The grammar is Kubernetes' own (``aiinfn_hub.kubemodel.quantity``); on top of it a size must
    be a positive whole number of bytes, so sub-byte suffixes (``m``, ``u``, ``n``) and signs make
    no sense here and are rejected.
    """
    expected = 'expected a size like "8Gi", "512Mi", "16G" or a number of bytes'
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{expected} (got {shown(value)})")
    try:
        quantity = parse_quantity(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{expected} (got {shown(value)})") from None
    if quantity <= 0:
        raise ValueError(f"expected a positive size (got {shown(value)})")
    if quantity.denominator != 1:
        raise ValueError(f"expected a whole number of bytes (got {shown(value)})")
    return int(quantity)


def _size(value: Any) -> str:
    parse_memory(value)
    return str(value)


def _cores(value: float) -> float:
    # Kubernetes counts CPU in millicores; finer values would be rounded silently
    if abs(value * 1000 - round(value * 1000)) > 1e-6:
        raise ValueError(f"expected CPU cores in steps of 0.001 (got {shown(value)})")
    return value


Slug = Annotated[str, AfterValidator(check_slug)]
LabelKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]
ExtendedResource = Annotated[str, AfterValidator(check_extended_resource)]
ImageReference = Annotated[str, AfterValidator(check_image_reference)]
# kept as written ("8Gi") for forms and manifests; compare sizes with parse_memory
Size = Annotated[str, BeforeValidator(_size)]
Cores = Annotated[float, AfterValidator(_cores)]
