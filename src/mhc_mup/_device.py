"""Which torch device a command runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mhc_mup.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["check_device", "device_label", "resolve_device"]


def resolve_device(device: str, *, absent_ok: bool = False) -> torch.device:
    """``torch.device`` for ``device``, or :class:`ConfigError` if it is unknown or absent here (``absent_ok``: a
    CUDA device on a machine without CUDA is taken as named, to plan for the machine it will run on)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            if absent_ok:
                return dev
            raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {device!r} (use cpu, cuda or cuda:N)")
    return dev


def check_device(device: str) -> None:
    """:class:`ConfigError` unless ``device`` can run here. ``"cpu"`` is checked without importing torch, so a
    configuration can be validated before a command pays for that import."""
    if device != "cpu":
        resolve_device(device)


def device_label(dev: torch.device) -> str:
    """How a run record names the device it ran on: ``cuda:0 (NVIDIA H200)``, with the GPU's name where CUDA is
    here, else the device alone (``cpu``; a CUDA device planned for on a machine without one)."""
    import torch

    if dev.type != "cuda":
        return "cpu"
    return f"{dev} ({torch.cuda.get_device_name(dev)})" if torch.cuda.is_available() else str(dev)
