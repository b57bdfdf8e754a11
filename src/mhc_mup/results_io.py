"""Writing a sweep's results: ``results.json`` (the seed's nested layout plus config and fits),
``results.csv`` (tidy: width × diagnostic × metric) and ``fits.csv``. Every file is written to a
temporary name in the same directory and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .diagnostics import DIAGNOSTICS, SUMMARY_KEYS
from .sweep import SweepResult

RESULTS_CSV_COLUMNS = ("width", "diagnostic", "metric", "value", "n_samples")
FITS_CSV_COLUMNS = (
    "diagnostic",
    "metric",
    "exponent",
    "ci_low",
    "ci_high",
    "prefactor",
    "r2",
    "boot_low",
    "boot_high",
    "ols_low",
    "ols_high",
    "n_widths",
    "confidence",
    "note",
)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _clean(value):
    """JSON-safe: NaN/inf → None, numpy scalars → Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def software_versions() -> dict[str, str]:
    return {
        "mhc_mup": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def results_document(result: SweepResult) -> dict:
    """The ``results.json`` document: config, software, per-width results in the seed's layout,
    fits keyed ``diagnostic.metric``, and timings."""
    widths = sorted(result.samples)
    return _clean(
        {
            "format": "mhc-mup/results/v1",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "config": result.config.to_dict(),
            "software": software_versions(),
            "results": {str(w): result.summary(w) for w in widths},
            "fits": {f"{diag}.{key}": fit.to_dict() for (diag, key), fit in result.fits.items()},
            "timing_seconds": result.seconds,
        }
    )


def tidy_rows(result: SweepResult) -> list[dict]:
    """One row per width × diagnostic × metric. The width-independent quotient Jacobian has an
    empty width and metrics named ``K=<k>/<key>``."""
    summaries = {w: result.summary(w) for w in sorted(result.samples)}
    rows: list[dict] = []
    for diag in DIAGNOSTICS:
        n = result.n_samples(diag)
        if diag == "quotient_jacobian":
            for k, per_k in next(iter(summaries.values()))[diag].items():
                rows += [
                    {"width": "", "diagnostic": diag, "metric": f"{k}/{key}", "value": v, "n_samples": n}
                    for key, v in per_k.items()
                ]
            continue
        for w, summary in summaries.items():
            rows += [
                {"width": w, "diagnostic": diag, "metric": sk.key, "value": summary[diag][sk.key], "n_samples": n}
                for sk in SUMMARY_KEYS[diag]
            ]
    return rows


def fit_rows(result: SweepResult) -> list[dict]:
    rows = []
    for (diag, key), fit in result.fits.items():
        d = fit.to_dict()
        rows.append({"diagnostic": diag, "metric": key, **{c: d[c] for c in FITS_CSV_COLUMNS[2:]}})
    return rows


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {c: ("" if isinstance(row[c], float) and not math.isfinite(row[c]) else row[c]) for c in columns}
        )
    return buf.getvalue()


def write_results(result: SweepResult, out_dir: Path) -> list[Path]:
    """Write results.json, results.csv and fits.csv into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "results.json": json.dumps(results_document(result), indent=2, allow_nan=False) + "\n",
        "results.csv": _csv_text(tidy_rows(result), RESULTS_CSV_COLUMNS),
        "fits.csv": _csv_text(fit_rows(result), FITS_CSV_COLUMNS),
    }
    paths = []
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
        paths.append(out_dir / name)
    return paths
