"""The base install stays light: importing kinema or its CLI pulls in no media or ML stack."""

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_importing_kinema_and_the_cli_is_lazy():
    for statement in ("import kinema", "import kinema.cli.main", "import kinema.media"):
        loaded = _modules_after(statement)
        assert not {"av", "torch", "numpy.random", "cv2", "transformers"} & loaded, statement
