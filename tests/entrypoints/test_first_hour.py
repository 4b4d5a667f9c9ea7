"""Issue 33, what a new user hit in the first hour: typos refused in one line before torch is imported, read-only
commands that import no model library, run folders that hold the summary and a log of the console, progress off a
terminal, and times a person can read."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest

from metric.cli import check_appended_keys, did_you_mean
from metric.errors import ConfigError
from tests.conftest import REPO_ROOT

HYDRA_ENTRIES = ("train", "evaluate", "calibrate", "attack", "export", "raw_pixels")
ISO_8601 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


def run(*args: str, tmp_path, importtime: bool = False) -> subprocess.CompletedProcess:
    """`python [-X importtime] <args>` from the repository, its outputs under tmp_path."""
    env = {**os.environ, "METRIC_ROOT": str(tmp_path)}
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def imported(stderr: str, module: str) -> bool:
    """Whether `-X importtime` output shows the module imported, at any depth."""
    return any(
        line.startswith("import time:") and line.split("|")[-1].strip() == module for line in stderr.splitlines()
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize(
    "entry, argv, message",
    [
        (
            "train",
            ["datamodul=folder"],
            "error: datamodul is not a setting or a config group (did you mean datamodule?)",
        ),
        (
            "train",
            ["+datamodul=folder"],
            "error: +datamodul=folder: 'datamodul' is not a config group or setting (did you mean datamodule?)",
        ),
        (
            "train",
            ["optimizer.lrr=0.01"],
            "error: optimizer.lrr is not a setting of optimizer (did you mean lr?); optimizer takes: lr, weight_decay.",
        ),
        (
            "train",
            ["+experiment=triplt"],
            "error: experiment=triplt: no such option in the experiment group (did you mean "
            "triplet?); the options are: adapt, distill",
        ),
        (
            "evaluate",
            ["ckpt=x.ckpt", "protocl=pairs"],
            "error: protocl is not a setting or a config group (did you mean protocol?)",
        ),
        (
            "calibrate",
            ["matcher=cosin"],
            "error: matcher=cosin: no such option in the matcher group (did you mean cosine?)",
        ),
    ],
)
def test_a_typo_is_one_line_with_a_suggestion_before_torch_is_imported(entry, argv, message, tmp_path):
    result = run("-m", f"metric.{entry}", *argv, tmp_path=tmp_path, importtime=True)
    lines = error_lines(result.stderr)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not imported(result.stderr, "torch")


def test_appending_inside_a_group_stays_allowed():
    check_appended_keys(["+trainer.limit_train_batches=2", "++seed=3", "model.backbone=resnet18"])
    with pytest.raises(ConfigError, match="'seeed' is not a config group or setting"):
        check_appended_keys(["+seeed=3"])
    assert did_you_mean("modl", ["model", "module"]) == " (did you mean model?)"


@pytest.mark.parametrize("entry", [*HYDRA_ENTRIES, "gallery", "serve", "weights", "sweep_summary", "attack_report"])
def test_help_imports_no_model_library(entry, tmp_path):
    result = run("-m", f"metric.{entry}", "--help", tmp_path=tmp_path, importtime=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for module in ("torch", "timm", "pytorch_lightning"):
        assert not imported(result.stderr, module), f"metric.{entry} --help imports {module}"


@pytest.fixture
def gallery_db(tmp_path) -> str:
    """A gallery file with one identity and one API key, written through the store (no model needed)."""
    from bench.cli_start import make_gallery

    return make_gallery(tmp_path, "enroll", "door")


@pytest.mark.parametrize(
    "argv",
    [
        ["metric.gallery", "list"],
        ["metric.gallery", "info"],
        ["metric.serve", "audit"],
        ["metric.serve", "keys", "list"],
    ],
)
def test_read_only_commands_import_no_model_library_and_print_iso_times(argv, gallery_db, tmp_path):
    result = run("-m", *argv, "--gallery", gallery_db, tmp_path=tmp_path, importtime=True)
    assert result.returncode == 0, error_lines(result.stderr)
    for module in ("torch", "timm", "pytorch_lightning", "fastapi"):
        assert not imported(result.stderr, module), f"{' '.join(argv)} imports {module}"
    if argv[-1] in ("list", "audit"):
        assert re.search(ISO_8601, result.stdout), result.stdout
    if argv[-1] == "audit":  # an action taken on the command line has no acting key: shown as -, not None
        assert "key=-" in result.stdout and "None" not in result.stdout, result.stdout


def test_raw_pixels_writes_its_summary_and_the_log_holds_the_console(tmp_path):
    out = tmp_path / "run"
    result = run("-m", "metric.raw_pixels", "datamodule.train_identities=40", f"hydra.run.dir={out}", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert "test_eer" in summary
    log = (out / "raw_pixels.log").read_text()
    assert "Verification summary" in log and f"test_eer               : {summary['test_eer']:.4f}" in log


def test_a_training_run_logs_its_console_without_library_noise(tmp_path):
    out = tmp_path / "run"
    result = run(
        "-m", "metric.train", "debug=fast", "datamodule.train_identities=40", f"hydra.run.dir={out}", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    for noise in ("litlogger", "LeafSpec", "Total FLOPs", "WARNING:root:"):
        assert noise not in console, noise
    assert "model: net (EmbeddingNet" in console
    log = (out / "train.log").read_text()
    assert "Verification summary" in log and "GPU available" in log


def test_progress_off_a_terminal_is_a_line_with_rate_and_eta():
    from datamodules.progress import progress, progress_lines

    ticks = iter(range(0, 1000, 10))  # 10 s per item
    stream = io.StringIO()
    assert list(progress_lines(list(range(7)), "faces", "img", stream, every_s=25, clock=lambda: next(ticks))) == list(
        range(7)
    )
    lines = stream.getvalue().splitlines()
    assert lines[0] == "faces: 3/7 (43%), 0.1 img/s, ETA 40s"
    assert lines[-1] == "faces: 7/7 (100%), 0.1 img/s, done in 1m10s"
    assert list(progress(range(5), "short", stream=io.StringIO())) == list(range(5))  # short passes stay quiet


def test_a_key_appended_inside_a_group_that_its_class_refuses_is_one_line(tmp_path):
    result = run("-m", "metric.train", "+datamodule.rooot=x", "debug=fast", tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result.stderr)[-1].startswith(
        "error: datamodule.rooot is not a setting of datamodules.sources.synthetic.SyntheticFacesDataModule"
    )
