"""The single place where CUDA availability is probed."""

from __future__ import annotations

import torch

#: ``True`` when a CUDA device is usable by torch in this process.
HAS_CUDA: bool = bool(torch.cuda.is_available())


def resolve_device(device, *, name: str = "device") -> torch.device:
    """Validate ``device`` and return a :class:`torch.device`.

    ``None`` means CPU. A CUDA device asked for on a machine without CUDA raises a
    ``ValueError`` naming the argument instead of failing deep inside torch.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{name}={device!r} is not a valid torch device; use 'cpu' or 'cuda'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{name}={device!r} asks for CUDA, but torch.cuda.is_available() is "
            f"False on this machine; use {name}='cpu' (or install a CUDA build of "
            "torch on a machine with a GPU)."
        )
    if dev.type == "cuda" and dev.index is not None and (
        dev.index >= torch.cuda.device_count()
    ):
        raise ValueError(
            f"{name}={device!r} names CUDA device {dev.index}, but this machine has "
            f"{torch.cuda.device_count()}."
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"{name}={device!r} asks for Apple's MPS, which this machine does not "
            f"have (torch.backends.mps.is_available() is False); use {name}='cpu'."
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"{name}={device!r}: skcollapse runs on 'cpu', 'cuda' or 'mps', not "
            f"{dev.type!r}."
        )
    return dev
