"""The HTTP service: every endpoint, every error code (400, 401, 403, 404, 413, 422, 503), revoked keys, another model
refused, the liveness stage, the audit log, a second server on the same gallery, and SIGKILL mid-enrollment."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from metric.deploy.gallery.store import GalleryStore
from metric.deploy.service.app import create_app
from metric.deploy.service.state import Service, ServiceConfig
from metric.deploy.service.uploads import UploadLimits
from metric.errors import ConfigError
from metric.model.checkpoint import CHECKPOINT_KEY
from metric.serve import main as serve_cli
from tests.conftest import REPO_ROOT


def png(seed: int, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def ckpt(tiny_triplet_run) -> str:
    return tiny_triplet_run[1]["best_checkpoint"]


def service(tmp_path: Path, ckpt: str, **settings) -> Service:
    return Service(ServiceConfig(tmp_path / "people.db", ckpt=ckpt, **settings))


@pytest.fixture
def api(tmp_path, ckpt):
    """A client of a fresh service, with one key per scope."""
    svc = service(tmp_path, ckpt)
    keys = {scope: svc.keys.create(scope)[0] for scope in ("verify", "enroll", "admin")}
    with TestClient(create_app(svc)) as client:
        yield client, svc, {scope: {"Authorization": f"Bearer {key}"} for scope, key in keys.items()}


def enroll(client, headers, name: str, *seeds: int, **params):
    files = [("images", (f"{seed}.png", png(seed), "image/png")) for seed in seeds]
    return client.post(f"/v1/identities/{name}/images", headers=headers, files=files, params=params)


def verify(client, headers, name: str, seed: int):
    return client.post(
        "/v1/verify", headers=headers, data={"identity": name}, files={"image": ("probe.png", png(seed), "image/png")}
    )


def test_every_endpoint_answers(api):
    client, svc, key = api
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "<html" in client.get("/").text.lower()
    assert client.get("/openapi.json").json()["info"]["title"] and client.get("/docs").status_code == 404  # no CDN
    assert enroll(client, key["enroll"], "alice", 1, 2).json() == {
        **client.get("/v1/identities/alice", headers=key["verify"]).json(),
        "images": 2,
    }
    assert enroll(client, key["enroll"], "bob", 3).status_code == 200
    assert enroll(client, key["admin"], "alice", 4, replace="true").json()["images"] == 1
    result = verify(client, key["verify"], "alice", 4).json()
    assert result["decision"] in ("ACCEPT", "REJECT") and result["liveness"] is None and result["face"] is None
    assert result["accepted"] == (result["score"] >= result["threshold"])
    assert result["score"] == pytest.approx(svc.gallery.verify("alice", svc.decode(png(4), "p.png")).score, abs=1e-6)
    found = client.post(
        "/v1/identify",
        headers={"X-API-Key": key["verify"]["Authorization"][7:]},
        data={"top_k": "2"},
        files={"image": ("p.png", png(4), "image/png")},
    ).json()
    assert [m["identity"] for m in found["matches"]][:1] == ["alice"] and len(found["matches"]) == 2
    assert found["identity"] == ("alice" if found["known"] else "unknown")
    assert [i["name"] for i in client.get("/v1/identities", headers=key["verify"]).json()["identities"]] == [
        "alice",
        "bob",
    ]
    info = client.get("/v1/info", headers=key["verify"]).json()
    assert info["identities"] == 2 and info["format_version"] == 1 and info["front_end"] and info["matcher"] == "cosine"
    assert "checkpoint" not in info and client.get("/v1/info", headers=key["admin"]).json()["checkpoint"]
    assert client.delete("/v1/identities/bob", headers=key["admin"]).status_code == 204
    assert client.get("/v1/identities/bob", headers=key["verify"]).status_code == 404
    actions = [entry["action"] for entry in svc.audit.recent()]
    assert actions == ["remove", "identify", "verify", "enroll", "enroll", "enroll"]
    logged = svc.audit.recent()[2]["detail"]
    assert set(logged) == {"score", "threshold", "accepted", "liveness"}  # the decision, never the probe


@pytest.mark.parametrize(
    "scope, call, status",
    [
        (None, "verify", 401),
        ("wrong", "verify", 401),
        ("verify", "enroll", 403),
        ("enroll", "remove", 403),
        ("enroll", "verify", 200),
        ("admin", "remove", 204),
    ],
)
def test_keys_and_scopes(api, scope, call, status):
    client, _, key = api
    enroll(client, key["admin"], "alice", 1)
    headers = key.get(scope, {"Authorization": "Bearer mf_not_a_real_key"} if scope else {})
    response = {
        "verify": lambda: verify(client, headers, "alice", 2),
        "enroll": lambda: enroll(client, headers, "carol", 5),
        "remove": lambda: client.delete("/v1/identities/alice", headers=headers),
    }[call]()
    assert response.status_code == status
    if status >= 400:
        error = response.json()["error"]
        assert error["code"] == {401: "unauthorized", 403: "forbidden"}[status] and error["message"]


def test_a_revoked_key_is_refused(api):
    client, svc, key = api
    record = svc.keys.list()[0]  # the verify key
    assert client.get("/v1/identities", headers=key["verify"]).status_code == 200
    assert serve_cli(["keys", "revoke", "--gallery", str(svc.config.gallery), record.key_id]) == 0
    response = client.get("/v1/identities", headers=key["verify"])
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_bad_uploads_get_400_and_413(tmp_path, ckpt):
    limits = UploadLimits(max_request_bytes=40_000, max_files=2, max_pixels=64 * 64)
    svc = service(tmp_path, ckpt, limits=limits)
    headers = {"Authorization": f"Bearer {svc.keys.create('admin')[0]}"}
    client = TestClient(create_app(svc))

    def upload(name: str, data: bytes):
        return client.post("/v1/identities/x/images", headers=headers, files=[("images", (name, data, "image/png"))])

    cases = {
        "not_an_image": upload("a.png", b"just text"),
        "corrupt_image": upload("a.png", png(1)[:60]),
        "too_many_pixels": upload("big.png", png(1, size=96)),
        "too_many_files": enroll(client, headers, "x", 1, 2, 3),
    }
    assert {code: (r.status_code, r.json()["error"]["code"]) for code, r in cases.items()} == {
        "not_an_image": (400, "not_an_image"),
        "corrupt_image": (400, "corrupt_image"),
        "too_many_pixels": (413, "too_many_pixels"),
        "too_many_files": (413, "too_many_files"),
    }
    huge = upload("a.png", b"\0" * 50_000)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
    missing = client.post("/v1/verify", headers=headers, files={"image": ("p.png", png(1), "image/png")})
    assert missing.status_code == 400 and "identity" in missing.json()["error"]["message"]
    assert verify(client, headers, "nobody", 1).status_code == 404
    assert (
        client.post(
            "/v1/identities/%20x/images", headers=headers, files=[("images", ("a.png", png(1), "image/png"))]
        ).status_code
        == 400
    )
    assert "/" not in cases["not_an_image"].json()["error"]["message"].split("'")[1]  # the client's name, no path
    assert svc.gallery.store.list() == []  # nothing half-enrolled


def test_a_full_queue_answers_503_with_retry_after(tmp_path, ckpt):
    svc = service(tmp_path, ckpt, workers=1, queue=0)
    headers = {"Authorization": f"Bearer {svc.keys.create('admin')[0]}"}
    client = TestClient(create_app(svc))
    enroll(client, headers, "alice", 1)
    started, release = threading.Event(), threading.Event()
    real_verify = svc.gallery.verify

    def slow_verify(*args):
        started.set()
        release.wait(10)
        return real_verify(*args)

    svc.gallery.verify = slow_verify
    first = threading.Thread(target=lambda: verify(client, headers, "alice", 2))
    first.start()
    assert started.wait(10)
    busy = verify(client, headers, "alice", 3)
    release.set()
    first.join()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "busy"
    assert verify(client, headers, "alice", 3).status_code == 200  # the slot is free again


def test_another_model_is_refused_at_start(tmp_path, ckpt, tiny_liveness_run):
    svc = service(tmp_path, ckpt)
    svc.gallery.close()
    other = tmp_path / "other.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    name = next(k for k in checkpoint["state_dict"] if k.startswith("net."))
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name] + 1  # other weights, same architecture
    torch.save(checkpoint, other)
    with pytest.raises(ConfigError, match="fingerprint mismatch"):
        service(tmp_path, str(other))
    liveness = tiny_liveness_run[1]["best_checkpoint"]
    with pytest.raises(ConfigError, match="is a liveness"):
        service(tmp_path, liveness)
    assert CHECKPOINT_KEY in checkpoint


def test_the_liveness_stage_is_reported_and_a_spoof_is_refused(tmp_path, ckpt, tiny_liveness_run):
    checkpoint = torch.load(tiny_liveness_run[1]["best_checkpoint"], map_location="cpu", weights_only=True)
    checkpoint[CHECKPOINT_KEY]["threshold"]["threshold"] = 2.0  # every image is a spoof for this gate
    gate = tmp_path / "all_spoof.ckpt"
    torch.save(checkpoint, gate)
    svc = service(tmp_path, ckpt)
    headers = {"Authorization": f"Bearer {svc.keys.create('admin')[0]}"}
    client = TestClient(create_app(svc))
    enroll(client, headers, "alice", 1)
    svc.gallery.close()
    svc = service(tmp_path, ckpt, liveness=str(gate))
    client = TestClient(create_app(svc))
    refused = enroll(client, headers, "bob", 2)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "presentation_attack"
    result = verify(client, headers, "alice", 1).json()
    assert result["decision"] == "REJECT (presentation attack)" and result["score"] is None
    assert result["liveness"]["decision"] == "SPOOF" and result["liveness"]["threshold"] == 2.0
    found = client.post("/v1/identify", headers=headers, files={"image": ("p.png", png(1), "image/png")}).json()
    assert found["matches"] == [] and found["identity"] == "rejected: presentation attack"
    assert client.get("/v1/info", headers=headers).json()["liveness"].startswith(str(gate.resolve()))


# real server processes ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, ckpt: str | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "metric.serve", "--gallery", str(db), "--port", str(port)]
    process = subprocess.Popen(
        command + (["--ckpt", ckpt] if ckpt else []),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the server did not become ready in 120 s")


def new_key(db: Path, scope: str = "admin") -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "metric.serve", "keys", "create", "--gallery", str(db), "--scope", scope],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}


def test_sigkill_mid_enrollment_leaves_a_valid_gallery_and_a_second_server_shares_it(tmp_path, ckpt):
    db = tmp_path / "people.db"
    server, url = start_server(db, ckpt)
    other = None
    try:
        headers = new_key(db)
        other, other_url = start_server(db)  # a second process on the same file: it works (SQLite WAL)
        confirmed: list[str] = []
        stop = threading.Event()

        def enroll_many():
            with httpx.Client(timeout=30) as client:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    files = [("images", (f"{i}a.png", png(i))), ("images", (f"{i}b.png", png(i + 50_000)))]
                    try:
                        response = client.post(f"{url}/v1/identities/p{i}/images", headers=headers, files=files)
                    except httpx.HTTPError:
                        return
                    if response.status_code == 200:
                        confirmed.append(f"p{i}")

        worker = threading.Thread(target=enroll_many)
        worker.start()
        while len(confirmed) < 15:
            time.sleep(0.05)
        seen = httpx.post(
            f"{other_url}/v1/identify",
            headers=headers,
            files={"image": ("p.png", png(0))},
            data={"top_k": "1"},
            timeout=30,
        ).json()
        assert seen["matches"], "the second server sees what the first enrolled"
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        worker.join()
        store = GalleryStore(db)
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = {name: count for name, count, _ in store.list()}
        assert set(confirmed) <= set(counts) and all(count == 2 for count in counts.values())
        assert len(counts) - len(confirmed) <= 1  # at most the one whose answer the kill cut off
        store.close()
        server, url = start_server(db)  # restarts on the same file
        answer = httpx.post(
            f"{url}/v1/verify",
            headers=headers,
            data={"identity": confirmed[0]},
            files={"image": ("p.png", png(0))},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["decision"] in ("ACCEPT", "REJECT")
    finally:
        for process in (server, other):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_keys_cli_prints_the_key_last_and_the_server_cli_refuses_bad_input(tmp_path, ckpt, capsys):
    svc = service(tmp_path, ckpt)
    svc.gallery.close()
    db = str(tmp_path / "people.db")
    assert serve_cli(["keys", "create", "--gallery", db, "--scope", "enroll", "--label", "door"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("mf_") and key not in (tmp_path / "people.db").read_bytes().decode("latin-1")
    assert serve_cli(["keys", "list", "--gallery", db]) == 0 and "enroll\tactive" in capsys.readouterr().out
    assert serve_cli(["keys", "revoke", "--gallery", db, "nope"]) == 2
    assert "no active API key" in capsys.readouterr().err
    assert serve_cli(["--gallery", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert serve_cli(["audit", "--gallery", db]) == 0 and "key_create" in capsys.readouterr().out


def test_the_batcher_coalesces_concurrent_calls_and_keeps_each_result(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from metric.deploy.service.batching import EmbedBatcher

    sizes = []

    def embed(images):
        sizes.append(len(images))
        if (images == 255).all():
            raise ValueError("bad batch")
        return images.reshape(len(images), -1)[:, :3].astype(np.float32)

    batcher = EmbedBatcher(embed, max_batch=8, wait_s=0.05)
    inputs = [np.full((1, 2, 2, 1), i, np.uint8) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(batcher, inputs))
    assert [float(r[0, 0]) for r in results] == list(range(8))  # each caller gets its own rows back
    assert max(sizes) > 1  # and some calls shared a forward pass
    with pytest.raises(ValueError, match="bad batch"):
        batcher(np.full((1, 2, 2, 1), 255, np.uint8))
