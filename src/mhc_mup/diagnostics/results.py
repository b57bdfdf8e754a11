"""Writing a sweep's results: ``results.json`` (the seed's nested layout plus config and fits),
``results.csv`` (tidy: width × diagnostic × metric), ``fits.csv``, ``chain.csv`` (the chain
decomposition) and ``verdict.json`` (the Theorem D checklist); for a comparison, one such folder
per parameterization plus ``corrections.csv``, ``chain.csv`` and ``verdict.json`` across them.
Every file is written to a temporary name in the same directory and renamed into place, so a reader
never sees half a file; all contents are computed before the first file is written.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mhc_mup._io import csv_text, json_safe, json_text, software_versions, write_bundle
from mhc_mup._schema import ListOf, MapOf, Optional, first_problem
from mhc_mup.diagnostics.corrections import CORRECTIONS_CSV_COLUMNS, FittedRun, corrections_rows
from mhc_mup.diagnostics.summaries import DIAGNOSTICS, SUMMARY_KEYS
from mhc_mup.diagnostics.verdict import Verdict, VerdictConfig, theorem_d
from mhc_mup.errors import ResultsError
from mhc_mup.mhc.parameterizations import OPTIMIZERS
from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import classify

if TYPE_CHECKING:
    from mhc_mup.diagnostics.sweep import SweepResult

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


CHAIN_FACTORS: tuple[tuple[str, str], ...] = (
    ("rms_jacobian", "‖D RMSNorm(x)‖₂"),
    ("scale_comb", "|s_C|"),
    ("w_comb", "‖W_comb‖₂"),
    ("sinkhorn_jacobian", "‖DS_K(Z)‖₂"),
    ("x_norm", "‖x‖"),
    ("bound", "product of the factors (the bound)"),
    ("measured", "‖DC(x)‖₂·‖x‖ (measured)"),
    ("tightness", "measured / bound"),
)


def results_document(result: SweepResult) -> dict:
    """The ``results.json`` document: config, software, per-width results in the seed's layout,
    fits keyed ``diagnostic.metric``, and timings."""
    widths, cfg = sorted(result.samples), result.config
    return json_safe(
        {
            "format": "mhc-mup/results/v1",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "config": cfg.to_dict(),
            "software": software_versions(),
            "parameterization": {
                "rules": cfg.parameterization.to_dict(),
                "evaluated": {
                    str(w): {
                        "init": dataclasses.asdict(cfg.parameterization.init(cfg.shape.n_s, w)),
                        "lr": {opt: cfg.parameterization.lr_multipliers(opt, cfg.shape.n_s, w) for opt in OPTIMIZERS},
                    }
                    for w in widths
                },
            },
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


def chain_rows(result: FittedRun, tolerance: float = 0.1) -> list[dict]:
    """The chain decomposition of ``‖DC(x)‖·‖x‖``: one row per factor, its mean at each width
    (columns ``d=<width>``), its exponent with interval and its reading (O(1) / grows / decays)."""
    widths = result.widths
    rows = []
    for factor, label in CHAIN_FACTORS:
        fit = result.fit("chain_decomposition", f"{factor}_mean")
        row: dict = {"parameterization": result.name, "factor": factor, "label": label}
        for w in widths:
            row[f"d={w}"] = result.summary(w)["chain_decomposition"][f"{factor}_mean"]
        row |= {
            "exponent": fit.exponent,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
            "reading": classify(fit, tolerance),
        }
        rows.append(row)
    return rows


def chain_columns(widths: list[int]) -> tuple[str, ...]:
    return (
        "parameterization",
        "factor",
        "label",
        *(f"d={w}" for w in widths),
        "exponent",
        "ci_low",
        "ci_high",
        "reading",
    )


def verdict_document(verdicts: dict[str, Verdict]) -> dict:
    return json_safe({"format": "mhc-mup/verdict/v1", "verdicts": {k: v.to_dict() for k, v in verdicts.items()}})


def result_texts(result: SweepResult, verdict: Verdict) -> dict[str, str]:
    """File name → contents for one sweep: results.json, results.csv, fits.csv, chain.csv, verdict.json."""
    widths = sorted(result.samples)
    return {
        "results.json": json_text(results_document(result)),
        "results.csv": csv_text(tidy_rows(result), RESULTS_CSV_COLUMNS),
        "fits.csv": csv_text(fit_rows(result), FITS_CSV_COLUMNS),
        "chain.csv": csv_text(chain_rows(result, verdict.config.tolerance), chain_columns(widths)),
        "verdict.json": json_text(verdict_document({verdict.parameterization: verdict})),
    }


def write_results(
    result: SweepResult, out_dir: Path, verdict_config: VerdictConfig | None = None, verdict: Verdict | None = None
) -> list[Path]:
    """Write results.json, results.csv, fits.csv, chain.csv and verdict.json into ``out_dir`` (``verdict``:
    the run's checklist if the caller has it already)."""
    return write_bundle(Path(out_dir), result_texts(result, verdict or theorem_d(result, verdict_config)))


def write_comparison(
    results: dict[str, SweepResult],
    out_dir: Path,
    verdict_config: VerdictConfig | None = None,
    verdicts: dict[str, Verdict] | None = None,
) -> list[Path]:
    """One folder per parameterization (as :func:`write_results`) and, across them, corrections.csv,
    chain.csv and verdict.json in ``out_dir`` (``verdicts``: the checklists if the caller has them already)."""
    vc = verdict_config or VerdictConfig()
    out_dir = Path(out_dir)
    verdicts = verdicts or {name: theorem_d(r, vc) for name, r in results.items()}
    texts = {name: result_texts(r, verdicts[name]) for name, r in results.items()}  # everything before writing
    widths = sorted(next(iter(results.values())).samples)
    top = {
        "corrections.csv": csv_text(corrections_rows(results, vc.tolerance), CORRECTIONS_CSV_COLUMNS),
        "chain.csv": csv_text(
            [row for r in results.values() for row in chain_rows(r, vc.tolerance)], chain_columns(widths)
        ),
        "verdict.json": json_text(verdict_document(verdicts)),
    }
    nested = {f"{name}/{file}": text for name, per in texts.items() for file, text in per.items()}
    return write_bundle(out_dir, nested | top)


# ── reading results back ─────────────────────────────────────────────────────────────────────────
RESULTS_FORMAT = "mhc-mup/results/v1"
VERDICT_FORMAT = "mhc-mup/verdict/v1"


_FIT_SHAPE = {"exponent": float, "ci_low": float, "ci_high": float, "prefactor": float, "r2": float,
              "boot_low": float, "boot_high": float, "ols_low": float, "ols_high": float, "n_widths": int,
              "n_boot": int, "confidence": float, "note": Optional(str)}  # fmt: skip
RESULTS_SHAPE = {
    "config": {"widths": ListOf(int), "n_s": int, "K": int, "seed": int, "parameterization": {"name": str}},
    "results": MapOf({d: MapOf(MapOf(float) if d == "quotient_jacobian" else float) for d in DIAGNOSTICS}),
    "fits": MapOf(_FIT_SHAPE),
}
"""What the readers of results.json use, by type (:func:`mhc_mup._schema.first_problem`)."""
_CHECK_SHAPE = {"metric": str, "estimate": float, "ci_low": float, "ci_high": float, "status": str}
VERDICT_SHAPE = {
    "verdicts": MapOf({
        "summary": str,
        "notes": ListOf(str),
        "conditions": ListOf({"number": int, "name": str, "status": str, "sentence": str,
                              "checks": ListOf(_CHECK_SHAPE)}),
    }),
}  # fmt: skip
"""What the readers of verdict.json use, by type."""


def _read_json(path: Path, fmt: str, shape: dict) -> dict:
    if not path.is_file():
        raise ResultsError(f"'{path}' not found" if not path.exists() else f"'{path}' is not a file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ResultsError(f"'{path}' is not valid JSON{where}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ResultsError(f"'{path}' has format {got!r}, expected {fmt!r}")
    if problem := first_problem(doc, shape):
        raise ResultsError(f"'{path}': {problem}")
    return doc


@dataclass
class LoadedRun:
    """One sweep read back from its ``results.json``: the same table interface as a fresh
    :class:`~mhc_mup.diagnostics.sweep.SweepResult` (summaries and fits), without the per-sample values."""

    document: dict
    path: Path

    @property
    def widths(self) -> list[int]:
        return sorted(int(w) for w in self.document["results"])

    @property
    def name(self) -> str:
        return self.document["config"]["parameterization"]["name"]

    @property
    def description(self) -> str:
        return self.document["config"]["parameterization"].get("description", "")

    @property
    def config(self) -> dict:
        return self.document["config"]

    def summary(self, width: int) -> dict[str, dict]:
        return self.document["results"][str(width)]

    def fit(self, diagnostic: str, key: str) -> PowerLawFit:
        d = self.document["fits"][f"{diagnostic}.{key}"]
        nan = float("nan")
        return PowerLawFit(**{k: (nan if v is None else v) for k, v in d.items()})  # type: ignore[arg-type]  # JSON


def load_run(path: Path) -> LoadedRun:
    """Read ``results.json`` (or a folder holding one); :class:`ResultsError` names what is wrong."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    doc = _read_json(file, RESULTS_FORMAT, RESULTS_SHAPE)
    try:
        run = LoadedRun(doc, file)
        for w in run.widths:
            for diag in DIAGNOSTICS:
                run.summary(w)[diag]
        for diag in ("dynamic_sensitivity", "chain_decomposition", "logit_update"):
            for sk in SUMMARY_KEYS[diag]:
                run.fit(diag, sk.key)
        run.name  # noqa: B018
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"'{file}' is missing {exc} (written by another version?)") from None
    return run


def load_results_folder(path: Path) -> tuple[dict[str, LoadedRun], dict[str, dict], bool]:
    """A ``run`` or ``compare`` output folder: ``({name: run}, {name: verdict}, is_comparison)``.

    A ``run`` folder holds results.json and verdict.json; a ``compare`` folder holds verdict.json
    and one sub-folder per parameterization."""
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"'{path}' is not a results folder" if path.exists() else f"'{path}' not found")
    verdict_doc = _read_json(path / "verdict.json", VERDICT_FORMAT, VERDICT_SHAPE)
    verdicts = verdict_doc.get("verdicts")
    if not isinstance(verdicts, dict) or not verdicts:
        raise ResultsError(f"'{path / 'verdict.json'}' holds no verdicts")
    comparison = not (path / "results.json").exists()
    runs = (
        {name: load_run(path / name / "results.json") for name in verdicts}
        if comparison
        else {(run := load_run(path / "results.json")).name: run}
    )
    missing = [n for n in runs if n not in verdicts]
    if missing:
        raise ResultsError(f"'{path / 'verdict.json'}' has no verdict for {missing[0]!r}")
    return runs, {n: verdicts[n] for n in runs}, comparison
