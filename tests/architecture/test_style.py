"""The whole tree is formatted by `ruff format` and passes `ruff check` (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def ruff() -> list[str]:
    """The ruff of this environment (a dev dependency)."""
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    return [found]


@pytest.mark.parametrize("command", [["format", "--check", "."], ["check", "."]], ids=["format", "check"])
def test_ruff_passes_on_the_whole_tree(command: list[str]) -> None:
    result = subprocess.run(ruff() + command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
