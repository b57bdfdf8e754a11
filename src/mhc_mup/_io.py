"""Writing files safely and in formats pandas reads: atomic writes, JSON-safe values, CSV text, versions,
and the ``str`` enum whose members print and serialise as their bare value.

Every file the package writes goes through :func:`atomic_write_bytes`: a temporary name in the same
directory, then a rename, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import enum
import gzip
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mhc_mup import __version__

__all__ = [
    "StrEnum",
    "atomic_write_bytes",
    "atomic_write_text",
    "csv_text",
    "gzip_text",
    "json_safe",
    "json_text",
    "shortest_float32",
    "software_versions",
    "write_bundle",
]


class _StrEnumFallback(str, enum.Enum):
    """``enum.StrEnum`` for Python 3.10: ``str()``, f-strings and ``format`` give the bare value (``"O(1)"``,
    not ``"Reading.O1"``); json, csv and pandas see a ``str`` and write the value too."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)


if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - exercised on Python 3.10
    StrEnum = _StrEnumFallback


def gzip_text(text: str) -> bytes:
    """``text`` (UTF-8) gzip-compressed with no timestamp in the header: the same text, the same bytes."""
    return gzip.compress(text.encode("utf-8"), mtime=0)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(value: Any) -> Any:
    """``value`` made JSON-safe, recursively: NaN/inf → None, numpy scalars → Python numbers, tuples → lists,
    dict keys → strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def shortest_float32(values: Sequence[float]) -> list[float]:
    """``values`` (n floats) as the shortest decimals that read back as the same float32, when every finite one is
    a float32 (what a float32 tensor's ``tolist`` gives): about half the characters in JSON, and ``np.float32`` of
    each one read is the value given. Otherwise (a float64 loss) ``values`` unchanged, as a list."""
    exact = np.asarray(values, dtype=np.float64)
    single = exact.astype(np.float32)
    finite = np.isfinite(exact)
    if not np.array_equal(single[finite].astype(np.float64), exact[finite]):
        return list(values)
    return [float(s) for s in single.astype(str)]  # numpy writes a float32 as its shortest round-trip decimal


def software_versions() -> dict[str, str]:
    import torch  # here: the writers of plain files need no torch

    return {
        "mhc_mup": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def csv_text(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """CSV of ``rows`` with ``columns`` in that order: keys outside them are left out, a missing key or a
    non-finite float is an empty cell (pandas reads it as NaN)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_cell(row.get(c, "")) for c in columns})
    return buf.getvalue()


def _csv_cell(value: object) -> object:
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def json_text(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_bundle(out_dir: str | Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write a set of output files into ``out_dir`` (created if needed), each atomically; ``files`` maps a
    path relative to ``out_dir`` (``"figures/gates.png"``) to its text (UTF-8) or bytes. Render everything
    before calling: a failure mid-way leaves each file either old or new, never half-written."""
    folder = Path(out_dir)
    paths = []
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, content.encode("utf-8") if isinstance(content, str) else content)
        paths.append(path)
    return paths
