"""The import contracts of pyproject.toml ([tool.importlinter]) as a test: a broken contract
fails here with import-linter's report of the imports that break it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_are_kept():
    result = subprocess.run([sys.executable, "-c", LINT_IMPORTS], cwd=ROOT, capture_output=True, text=True)
    report = result.stdout
    broken = report[report.find("Broken contracts"):] if "Broken contracts" in report else ""
    assert result.returncode == 0, f"{broken}{result.stderr}" or report
