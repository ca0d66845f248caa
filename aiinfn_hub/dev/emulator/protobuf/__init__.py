"""Kubernetes' protobuf request bodies, decoded with the schemas a Go client carries."""

from __future__ import annotations

from functools import cache

from .decode import MEDIA_TYPE, Decoder, ProtobufError, UnknownKind
from .schemas import SchemaRegistry

__all__ = ["MEDIA_TYPE", "Decoder", "ProtobufError", "UnknownKind", "decoder"]


@cache
def decoder() -> Decoder:
    """The process's decoder: schemas read once, from the first Go client found."""
    return Decoder(SchemaRegistry())
