"""metric.attack_report: several attack runs of the tiny model in one report (every curve, every table), and one
clear error for each bad run directory."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from metric.attack_report import main
from metric.attacks.purify import Purifier
from metric.attacks.verifier import Verifier
from metric.model.checkpoint import build_model, read_checkpoint
from metric.pipelines.attack import run_attack
from metric.scoring.matchers import make_matcher
from tests.attacks.test_attack import compose_attack


@pytest.fixture(scope="module")
def attack_runs(tiny_triplet_run, other_model, tmp_path_factory, data_dir):
    """A patch run, a UAP run (tried on a second model too) and a PGD run of the tiny checkpoint, and their
    directories."""
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    root = tmp_path_factory.mktemp("attack_runs")
    settings = {
        "patch": [
            "attack=patch",
            "attack.assume_aligned=true",
            "attack.mask_scale=[0,1.0]",
            "attack.steps=3",
            "attack.eot_samples=1",
        ],
        "uap": ["attack=uap", "attack.eps=[0,8]", "attack.steps=3", f"attack.transfer_ckpt={other_model}"],
        "pgd": ["attack=pgd", "attack.eps=[0,4]", "attack.steps=2", "purify=median"],
    }
    summaries = {
        name: run_attack(compose_attack([f"ckpt={ckpt}", "max_pairs=20", *extra], root / name, data_dir))
        for name, extra in settings.items()
    }
    return root, summaries


def test_one_report_holds_every_run(attack_runs, tmp_path, capsys):
    root, summaries = attack_runs
    out = tmp_path / "report"
    assert main([f"glasses={root / 'patch'}", f"universal={root / 'uap'}", str(root / "pgd"), "--out", str(out)]) == 0
    markdown = (out / "attack_report.md").read_text()
    assert (out / "attack_report.png").stat().st_size > 0
    for heading in ("## patch", "## uap", "## pgd"):
        assert heading in markdown
    assert "| glasses | patch |" in markdown and "| universal | uap |" in markdown and "| pgd | pgd |" in markdown
    assert "| pgd | pgd | triplet_run" in markdown and "median 3" in markdown  # the purification is named per run
    patch_rows = [line for line in markdown.splitlines() if line.startswith("| glasses | glasses |")]
    assert len(patch_rows) == len(summaries["patch"]["rows"]) == 2
    assert patch_rows[0].split("|")[5].strip() == "0.0%"  # the empty mask turns no pair
    assert f"{100 * summaries['uap']['clean_eer']:.1f}%" in markdown
    transfer = summaries["uap"]["transfer"]  # both models' figures are in the report
    assert f"| universal | other.ckpt | {transfer['threshold']:.4f} |" in markdown
    uap_rows = [line.split("|") for line in markdown.splitlines() if line.startswith("| universal | impersonation |")]
    assert [row[6].strip() for row in uap_rows] == [
        f"{100 * r['transfer_success']:.1f}%" for r in summaries["uap"]["rows"]
    ]
    assert "wrote" in capsys.readouterr().out


def test_bad_run_directories_are_one_clear_error(attack_runs, tmp_path, capsys):
    root, _ = attack_runs
    not_attack = tmp_path / "train_run"
    not_attack.mkdir()
    (not_attack / "summary.json").write_text(json.dumps({"test_eer": 0.1}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{")
    old = tmp_path / "old"
    old.mkdir()
    summary = json.loads((root / "uap" / "summary.json").read_text())
    del summary["attackable_impostor_pairs"]
    (old / "summary.json").write_text(json.dumps(summary))
    cases = [
        ([str(tmp_path / "missing")], r"missing/summary.json: no such file"),
        ([str(not_attack)], r"train_run/summary.json: not the summary of a metric.attack run"),
        ([str(broken)], r"broken/summary.json: not valid JSON"),
        ([str(old)], r"old/summary.json: written by an older metric.attack"),
        ([f"a={root / 'uap'}", f"a={root / 'pgd'}"], r"the run label\(s\) a name more than one run"),
    ]
    for arguments, message in cases:
        assert main([*arguments, "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1, error
        assert re.search(message, error), error
    assert not (tmp_path / "out").exists()  # nothing is written for a bad report


def test_clean_eer_is_measured_through_the_purification(attack_runs, tiny_triplet_run):
    _, summaries = attack_runs
    assert summaries["pgd"]["purify"] == {"name": "median", "kernel": 3}
    assert 0 <= summaries["pgd"]["clean_eer"] <= 1 and 0 <= summaries["uap"]["clean_eer"] <= 1
    net, _ = build_model(read_checkpoint(tiny_triplet_run[1]["best_checkpoint"]))
    images = np.random.default_rng(0).integers(0, 256, (70, 32, 32, 3)).astype(np.uint8)  # more than one batch
    plain = Verifier(net.eval(), make_matcher("cosine"), 0.5).references(images)
    median = Verifier(net.eval(), make_matcher("cosine"), 0.5, Purifier("median"), batch=64).references(images)
    assert plain.shape == median.shape == (70, plain.shape[1])
    assert not torch.allclose(plain, median)  # every embedded image went through the median filter
