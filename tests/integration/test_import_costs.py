"""What a command imports before it needs to: configuring a sweep and reading its results back import no torch,
and building a report imports no matplotlib (its figures are drawn where they are rendered)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
{imports}
loaded = sorted(m for m in ("torch", "matplotlib") if m in sys.modules)
print(",".join(loaded))
"""


def imported_heavy_modules(imports: str) -> list[str]:
    command = [sys.executable, "-c", CHECK.format(imports=imports)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_configuring_and_reporting_import_neither_torch_nor_matplotlib():
    imports = """
import mhc_mup.cli.diagnose
import mhc_mup.diagnostics.report
from mhc_mup.diagnostics.config import SweepConfig
SweepConfig(widths=(64, 128)).validate()
"""
    assert imported_heavy_modules(imports) == []


def test_report_command_imports_no_torch(tmp_path):
    from mhc_mup.cli import main

    out = tmp_path / "run"
    small = ["--widths", "32,64", "--samples", "4", "--quotient-samples", "4", "--quotient-K", "1,5"]
    assert main(["run", *small, "--state-tokens", "4", "--bootstrap", "50", "--quiet", "--out", str(out)]) == 0
    command = f"from mhc_mup.cli import main\nassert main(['report', {str(out)!r}, '--quiet']) == 0"
    assert imported_heavy_modules(command) == ["matplotlib"]  # drawn in-process here (MHC_MUP_FIGURE_WORKERS=0)


@pytest.mark.parametrize("device", ["cuda:99", "tpu"])
def test_a_device_other_than_cpu_is_checked_with_torch(device):
    from mhc_mup._device import check_device
    from mhc_mup.errors import ConfigError

    with pytest.raises(ConfigError, match=device.split(":")[0]):
        check_device(device)
