"""Issue 30, the hostile review of the service: each defect's test (D1 and D11 are in test_gallery.py; D2, D7 and D9
with a face front end are in test_faces_deploy.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from urllib.parse import quote

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from metric.deploy.service.app import create_app
from metric.deploy.service.state import Service, ServiceConfig
from metric.errors import ConfigError
from metric.gallery import main as gallery_cli
from metric.model.checkpoint import CHECKPOINT_KEY
from tests.deploy.test_service import png


def enroll(client, headers, name: str, *seeds: int, **params):
    """POST images for `name`, percent-encoded as a client library sends it (a slash stays a slash)."""
    files = [("images", (f"{seed}.png", png(seed), "image/png")) for seed in seeds]
    return client.post(f"/v1/identities/{quote(name, safe='/')}/images", headers=headers, files=files, params=params)


@pytest.fixture
def ckpt(tiny_triplet_run) -> str:
    return tiny_triplet_run[1]["best_checkpoint"]


@pytest.fixture
def api(tmp_path, ckpt):
    svc = Service(ServiceConfig(tmp_path / "people.db", ckpt=ckpt))
    keys = {scope: svc.keys.create(scope)[0] for scope in ("verify", "enroll", "admin")}
    with TestClient(create_app(svc)) as client:
        yield client, svc, {scope: {"Authorization": f"Bearer {key}"} for scope, key in keys.items()}


def test_d4_an_enroll_key_creates_identities_only(api):
    client, svc, key = api
    assert enroll(client, key["enroll"], "alice", 1).status_code == 200
    before = svc.gallery.store.template("alice").copy()
    for params in ({}, {"replace": "true"}):  # appending an impostor's images, or replacing the template
        answer = enroll(client, key["enroll"], "alice", 9, **params)
        assert answer.status_code == 403 and "admin" in answer.json()["error"]["message"], params
    assert np.array_equal(svc.gallery.store.template("alice"), before)
    assert client.get("/v1/identities/alice", headers=key["verify"]).json()["images"] == 1
    assert enroll(client, key["admin"], "alice", 2).json()["images"] == 2  # an admin may add
    from metric.deploy.gallery.store import IdentityExists

    with pytest.raises(IdentityExists):  # the check and the write are one transaction: no race between two creators
        svc.gallery.store.enroll_many([("alice", np.ones(8, np.float32), 1)], create_only=True)


@pytest.mark.parametrize(
    "name", ["alice\u200b", "\u202ealice", "al\x85ice", "alice\x7f", "a/b", "\ufffd", " alice", "alice ", "al  ice"]
)
def test_d8_confusable_and_lossy_names_get_a_400_quoting_the_rule(api, name, tmp_path, capsys):
    client, svc, key = api
    answer = enroll(client, key["enroll"], name, 1)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_name"
    assert "NFC" in answer.json()["error"]["message"]
    # the same rule on the command line: one line, exit 2
    image = tmp_path / "face.png"
    image.write_bytes(png(1))
    assert gallery_cli(["enroll", "--gallery", str(svc.config.gallery), "--identity", name, str(image)]) == 2
    assert "NFC" in capsys.readouterr().err
    assert svc.gallery.store.info().identities == 0


def test_d8_names_are_stored_in_nfc_and_found_either_way(api):
    client, svc, key = api
    decomposed, composed = "Zoe\u0308", "Zo\u00eb"
    assert enroll(client, key["enroll"], decomposed, 1).json()["name"] == composed
    assert enroll(client, key["enroll"], composed, 2).status_code == 403  # the same person, not a second one
    assert client.get(f"/v1/identities/{decomposed}", headers=key["verify"]).json()["name"] == composed
    from metric.deploy.gallery.store import identity_name

    assert identity_name("J. O'Neil-Smith") == "J. O'Neil-Smith" and identity_name("李雷") == "李雷"


def test_d5_a_recalibrated_checkpoint_is_refused_unless_accepted_and_then_recorded(tmp_path, ckpt):
    db = tmp_path / "people.db"
    Service(ServiceConfig(db, ckpt=ckpt)).gallery.close()
    recalibrated = tmp_path / "recalibrated.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    for calibration in checkpoint[CHECKPOINT_KEY]["calibrations"].values():
        calibration["threshold"] = float(calibration["threshold"]) + 0.05
    torch.save(checkpoint, recalibrated)
    with pytest.raises(ConfigError, match="--accept-new-threshold"):
        Service(ServiceConfig(db, ckpt=str(recalibrated)))
    svc = Service(ServiceConfig(db, ckpt=str(recalibrated), accept_new_threshold=True))
    admin = svc.keys.create("admin")[0]
    with TestClient(create_app(svc)) as client:
        info = client.get("/v1/info", headers={"Authorization": f"Bearer {admin}"}).json()
    assert info["threshold"] == svc.gallery.verifier.threshold == float(svc.gallery.store.meta["threshold"])
    entry = svc.audit.recent()[-1]
    assert entry["action"] == "threshold" and entry["detail"]["to"]["threshold"] == repr(info["threshold"])
    svc.gallery.close()
    Service(ServiceConfig(db, ckpt=str(recalibrated))).gallery.close()  # now the recorded one: no flag needed


def test_d10_private_files_docs_off_and_one_transaction_for_a_write_and_its_audit_row(api, tmp_path):
    client, svc, key = api
    assert stat.S_IMODE(svc.config.gallery.stat().st_mode) == 0o600
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    with TestClient(create_app(Service(ServiceConfig(tmp_path / "docs.db", ckpt=svc.config.ckpt, docs=True)))) as c:
        assert c.get("/docs").status_code == 200
    # an audit row that cannot be written takes the enrollment back with it
    svc.gallery.store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'full'); END")
    with pytest.raises(sqlite3.DatabaseError):
        enroll(client, key["enroll"], "carol", 1)
    assert svc.gallery.store.entry("carol") is None


def test_d12_an_upload_is_read_exactly_as_the_command_line_reads_the_file(api, tmp_path, capsys):
    """A face=none checkpoint (32x32) and an ORL-sized upload (112x92): the service resizes it as the CLI does."""
    client, svc, key = api
    files = []
    for seed in (1, 2):
        pixels = np.random.default_rng(seed).integers(0, 256, (112, 92, 3), dtype=np.uint8)
        path = tmp_path / f"big{seed}.png"
        Image.fromarray(pixels).save(path)
        files.append(path)
    assert enroll(client, key["enroll"], "alice", 1).status_code == 200
    scores = []
    for path in files:
        answer = client.post(
            "/v1/verify",
            headers=key["verify"],
            data={"identity": "alice"},
            files={"image": (path.name, path.read_bytes(), "image/png")},
        )
        assert answer.status_code == 200, answer.text
        scores.append(answer.json()["score"])
    svc.gallery.close()
    for path, score in zip(files, scores):
        gallery_cli(["verify", "--gallery", str(svc.config.gallery), "--identity", "alice", str(path)])
        printed = capsys.readouterr().out
        assert f"score {score:.4f}" in printed


def run_asgi(app, path: str, headers: dict, chunks: list, stall: asyncio.Event | None = None):
    """One request through an ASGI app: (status, headers, number of receive() calls made)."""
    calls, sent = [0], []

    async def receive():
        calls[0] += 1
        if calls[0] <= len(chunks):
            return {
                "type": "http.request",
                "body": chunks[calls[0] - 1],
                "more_body": calls[0] < len(chunks) or stall is not None,
            }
        await (stall.wait() if stall is not None else asyncio.sleep(3600))
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return receive, send, scope, sent, calls


def test_d3_no_body_is_read_without_a_key_a_stalled_body_times_out_and_uploads_are_bounded(api):
    from metric.deploy.service.body_limit import BodyLimit

    client, svc, key = api
    reached = []

    async def app(scope, receive, send):
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limit = BodyLimit(
        app, max_bytes=1000, key_valid=lambda k: svc.keys.check(k) is not None, timeout_s=0.2, max_uploads=1
    )

    async def scenario():
        # no key: 401 before any body is read
        receive, send, scope, sent, calls = run_asgi(limit, "/v1/verify", {}, [b"x" * 500])
        await limit(scope, receive, send)
        assert sent[0]["status"] == 401 and calls[0] == 0
        # a body that stalls: 408, and the slot is freed
        receive, send, scope, sent, calls = run_asgi(
            limit, "/v1/verify", key["verify"], [b"x" * 500], stall=asyncio.Event()
        )
        await limit(scope, receive, send)
        assert sent[0]["status"] == 408 and limit.uploads == 0
        # one upload in flight (max_uploads=1): the next gets 503 with Retry-After at once
        receive, send, scope, _, _ = run_asgi(limit, "/v1/verify", key["verify"], [b"x" * 100], stall=asyncio.Event())
        task = asyncio.ensure_future(limit(scope, receive, send))  # stalls until its 0.2 s timeout
        await asyncio.sleep(0.05)
        receive, send, scope, sent, calls = run_asgi(limit, "/v1/verify", key["verify"], [b"y"])
        await limit(scope, receive, send)
        assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
        await task
        # a complete body with a key reaches the app whole
        receive, send, scope, sent, calls = run_asgi(limit, "/v1/verify", key["verify"], [b"ab", b"cd"])
        await limit(scope, receive, send)
        assert sent[0]["status"] == 200 and reached[-1] == b"abcd"

    asyncio.run(scenario())
    assert client.post("/v1/verify", data={"identity": "x"}, files={"image": ("p.png", png(1))}).status_code == 401


def test_d6_a_large_jpeg_is_decoded_at_a_reduced_scale_and_alike_by_the_cli_and_the_service(tmp_path):
    """A 5000x5000 JPEG: decoded by its DCT at half scale (2500x2500, a quarter of the pixels), the same pixels
    whether the command line reads the file or the service decodes the upload."""
    from datamodules.images import DRAFT_SIDE, open_image
    from metric.deploy.service.uploads import UploadLimits, decode_upload

    path = tmp_path / "big.jpg"
    small = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    Image.fromarray(small).resize((4000, 5000)).save(path, quality=85)
    service_pixels = decode_upload(path.read_bytes(), "big.jpg", 3, UploadLimits())
    cli_pixels = np.asarray(open_image(path, 3))
    assert service_pixels.shape == cli_pixels.shape == (2500, 2000, 3) and max(service_pixels.shape) >= DRAFT_SIDE
    assert np.array_equal(service_pixels, cli_pixels)
    png = tmp_path / "big.png"  # other formats have no reduced decode: full size
    Image.fromarray(small).resize((2400, 3000)).save(png)
    assert np.asarray(open_image(png, 3)).shape == (3000, 2400, 3)
