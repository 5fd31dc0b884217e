"""Frozen dataclasses registered as JAX pytrees (after jax-md's ``dataclasses``).

Fields marked ``static`` (strings, booleans, anything that decides shapes or code paths)
are pytree metadata: changing them makes ``jit`` retrace, changing a numeric leaf does not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

__all__ = ["pytree_dataclass", "static_field", "replace"]


def static_field(**kwargs: Any) -> Any:
    metadata = dict(kwargs.pop("metadata", {}))
    metadata["static"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def pytree_dataclass(cls: type) -> type:
    """Make ``cls`` a frozen dataclass and register it as a pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if not f.metadata.get("static", False)]
    meta = [f.name for f in fields if f.metadata.get("static", False)]
    jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)
    return cls


replace = dataclasses.replace
