"""Bad configuration stops before training with one message naming the key and the fix."""

import os
import subprocess
import sys

import pytest

from metric.errors import ConfigError
from metric.train import build
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.backbone=resnet1800", r"model\.backbone='resnet1800' is not a timm model.*resnet18"),
        ("model.embedding_dim=0", r"model\.embedding_dim=0 must be a positive integer"),
        ("miner.type_of_triplets=sometimes", r"miner\.type_of_triplets='sometimes'.*semihard"),
        ("datamodule.batch_identities=50", r"P x K = 50 x 3 does not fit.*batch_identities"),
        ("model.weights=/nonexistent/w.pth", r"model\.weights='/nonexistent/w\.pth': no such file"),
        ("matcher=logistic", r"matcher=logistic needs a model trained with a logistic-distance head"),
        ("experiment=siamese module.impostors=easy", r"module\.impostors='easy' is not one of random, hard"),
    ],
)
def test_bad_values_are_named(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg(*override.split()))


def run_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "METRIC_ROOT": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "metric.train", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_cli_prints_one_message_and_no_traceback(tmp_path):
    result = run_cli("+experiment=triplet", "model.embedding_dim=-4", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        "error: model.embedding_dim=-4 must be a positive integer, e.g. 128."
    ]
    assert lines[-1].startswith("error:")


def test_cli_unknown_miner_lists_the_choices(tmp_path):
    result = run_cli("+experiment=triplet", "miner=sometimes", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Could not find 'miner/sometimes'" in result.stderr
    assert "semihard" in result.stderr
