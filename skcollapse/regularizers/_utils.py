"""Helpers shared by the built-in regularizers: table selection and validation.

Every built-in regularizer works on any dict of table name -> ``(batch, dim)``
tensor (CF: ``"user"``, ``"item"``; CTR: one key per field and embedding set).
Two constructor parameters are common to all of them:

``tables``
    ``None`` (every table of the batch) or a name / list of names; a name that
    is not in the batch raises a ``ValueError`` listing the batch's tables.
``table_weights``
    ``None`` or a dict name -> float multiplying that table's term (per-side
    weights, e.g. LogDet's user/item weights in re-implementations); tables not
    in the dict get 1.0.
"""

from __future__ import annotations

import math
import numbers

import torch


def check_real(
    value, name: str, *, low=None, high=None, strict_low=False, allow_none=False
):
    """Validate a real scalar constructor parameter and return it as float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if low is not None and (v <= low if strict_low else v < low):
        op = ">" if strict_low else ">="
        raise ValueError(f"{name} must be {op} {low}, got {value!r}.")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}.")
    return v


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def check_tables_param(tables):
    """Validate ``tables`` (None, a str or a sequence of str); return tuple or None."""
    if tables is None:
        return None
    if isinstance(tables, str):
        return (tables,)
    try:
        names = tuple(tables)
    except TypeError as exc:
        raise TypeError(
            f"tables must be None, a table name or a list of names, got {tables!r}."
        ) from exc
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"tables must be None or a non-empty list of table names, got {tables!r}."
        )
    return names


def check_table_weights(table_weights):
    """Validate ``table_weights`` (None or dict name -> finite float >= 0)."""
    if table_weights is None:
        return None
    if not isinstance(table_weights, dict):
        raise TypeError(
            f"table_weights must be None or a dict name -> float, got {table_weights!r}."
        )
    out = {}
    for key, val in table_weights.items():
        if not isinstance(key, str):
            raise TypeError(f"table_weights keys must be table names, got {key!r}.")
        out[key] = check_real(val, f"table_weights[{key!r}]", low=0.0)
    return out


def check_batch_tensor(name: str, x) -> torch.Tensor:
    """Check one batch entry is a floating ``(batch, dim)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"embeddings[{name!r}] must be a torch tensor, got {type(x).__name__}."
        )
    if x.dim() != 2:
        raise ValueError(
            f"embeddings[{name!r}] must be 2-D (batch, dim), got shape "
            f"{tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"embeddings[{name!r}] must be a floating tensor, got dtype {x.dtype}."
        )
    if x.shape[1] == 0:
        raise ValueError(f"embeddings[{name!r}] has zero columns.")
    return x


def select_tables(embeddings: dict, tables) -> list:
    """Names of the batch tables a regularizer acts on, in the batch's order.

    Validates the selected entries (2-D floating tensors) and raises a
    ``ValueError`` naming the available tables when ``tables`` asks for a table
    the batch does not have.
    """
    names = check_tables_param(tables)
    if names is None:
        names = tuple(embeddings)
    else:
        missing = [n for n in names if n not in embeddings]
        if missing:
            raise ValueError(
                f"tables={list(names)!r} names {missing!r}, which the batch does not "
                f"have; the batch's tables are {sorted(embeddings)!r}."
            )
    for n in names:
        check_batch_tensor(n, embeddings[n])
    return list(names)


def weight_of(table_weights, name: str) -> float:
    if table_weights is None:
        return 1.0
    return table_weights.get(name, 1.0)


def ids_of(context, name: str):
    """Row ids of table ``name`` in the batch, from ``context[name + "_ids"]``."""
    if context is None:
        return None
    return context.get(f"{name}_ids")


def table_dims(info) -> dict:
    """Read ``info["tables"]`` (dict name -> dim, or pairs) into a dict; {} if absent."""
    if info is None:
        return {}
    tables = info.get("tables")
    if tables is None:
        return {}
    if isinstance(tables, dict):
        items = tables.items()
    else:
        items = tables
    out = {}
    for item in items:
        try:
            name, dim = item
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"info['tables'] must map table names to dimensions, got {tables!r}."
            ) from exc
        out[str(name)] = int(dim)
    return out
