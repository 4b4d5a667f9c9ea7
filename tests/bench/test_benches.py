"""Every script in bench/ still runs end to end, at a tiny size (the figures in docs/benchmarks.md come from full runs).

Slow (about 2.5 minutes on 2 cores: each script starts its own interpreter): run with `pytest -m slow tests/bench`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ORL, REPO_ROOT, require_weights

TINY_RUNS = {
    "cache_load.py": ["--images", "400", "--rounds", "1"],
    "cli_start.py": ["--rounds", "1"],
    "face_frontend.py": ["--images", "12", "--rounds", "1"],
    "face_pipeline.py": ["--images", "6", "--rounds", "1"],
    "landmarks_pasted.py": ["--images", "6"],
    "detection_rate.py": [str(ORL / "s1"), "--out", "OUT"],
    "dlib_chip_template.py": ["--photos", str(ORL / "s1"), "--count", "3"],
    "export_throughput.py": [
        "--rounds",
        "1",
        "--seconds",
        "0.2",
        "--backbone",
        "mobilenetv3_small_100",
        "--size",
        "150",
        "--teacher",
        "dlib",
    ],
    "paste_faces.py": [str(ORL), "OUT"],
    "gallery_orl.py": ["--ckpt", "tests/model/fixtures/siamese_test_efficientnet.ckpt", "--faces", str(ORL)],
    "gallery_search.py": ["--count", "5000", "--dim", "32", "--repeats", "1"],
    "metrics_scale.py": ["--scores", "20000", "--bins", "4096", "--rounds", "1"],
    "train_throughput.py": ["--steps", "2", "--warmup", "1", "--rounds", "1"],
    "serve_load.py": ["--concurrency", "1", "2", "--duration", "1", "--enroll", "10", "--out", "OUT"],
    "serve_soak.py": ["--minutes", "1", "--clients", "4", "--out", "OUT"],  # issue 30: the 1-minute soak
}


def test_every_bench_script_is_covered():
    assert sorted(p.name for p in (REPO_ROOT / "bench").glob("*.py")) == sorted(TINY_RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_bench_runs(script, tmp_path):
    if script == "gallery_orl.py" and not ORL.is_dir():
        pytest.skip(f"ORL faces not found at {ORL}")
    if (
        script
        in (
            "face_frontend.py",
            "face_pipeline.py",
            "paste_faces.py",
            "detection_rate.py",
            "dlib_chip_template.py",
            "landmarks_pasted.py",
        )
        and not ORL.is_dir()
    ):
        pytest.skip(f"ORL faces not found at {ORL}")
    if script in ("face_pipeline.py", "landmarks_pasted.py"):
        require_weights("mobilefacenet", "mtcnn")
    arguments = [str(tmp_path / "pasted") if a == "OUT" else a for a in TINY_RUNS[script]]
    if script in ("face_frontend.py", "face_pipeline.py", "landmarks_pasted.py"):
        arguments += ["--photos", str(ORL)]
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip(), "a bench prints its figures"
