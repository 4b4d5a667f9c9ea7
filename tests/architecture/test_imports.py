"""Imports flow one way: import-linter's contracts in pyproject.toml hold, and they do catch a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LAYERED = "a lower package never imports a higher one BROKEN"
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages under `root`, with the contracts of this project's pyproject.toml."""
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_packages_keep_their_contracts():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module,line,broken",
    [
        ("metric/model/heads.py", "import metric.deploy.verifier", LAYERED),
        ("datamodules/base.py", "import metric.scoring.embed", LAYERED),
        ("metric/modules/embedding.py", "import metric.pipelines.fit", LAYERED),
        ("metric/deploy/verifier.py", "import metric.serve", LAYERED),
        ("metric/metrics/verification.py", "import metric.scoring.pairs", LAYERED),
        ("metric/metrics/verification.py", "import torch", "Metrics are pure (arrays in, numbers out) BROKEN"),
        (
            "datamodules/split.py",
            "import datamodules.base",
            "No import cycles between the modules of any package BROKEN",
        ),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    """The same contracts on a copy of the code with one bad import added: lint-imports must fail, naming it."""
    for package in ("metric", "datamodules"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
