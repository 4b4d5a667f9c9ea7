"""A router from outside the service package is served beside the built-in routes, under the same API-key scopes:
through `create_app(service, routers=...)` and through `python -m metric.serve --router module:attribute`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metric.deploy.service.app import create_app
from metric.serve import build_app, parser
from metric.serve import main as serve_cli
from tests.deploy.test_service import enroll, png, service, verify
from tests.extension import toy_endpoint

TOY = "tests.extension.toy_endpoint:router"


@pytest.fixture
def toy_api(tmp_path: Path, tiny_triplet_run):
    """A client of a fresh service with the toy router added, and one key per scope."""
    svc = service(tmp_path, tiny_triplet_run[1]["best_checkpoint"])
    keys = {scope: svc.keys.create(scope)[0] for scope in ("verify", "enroll", "admin")}
    with TestClient(create_app(svc, routers=[toy_endpoint.router])) as client:
        yield client, svc, {scope: {"Authorization": f"Bearer {key}"} for scope, key in keys.items()}


def test_the_toy_endpoint_answers_and_reaches_the_service(toy_api):
    client, svc, key = toy_api
    assert enroll(client, key["enroll"], "alice", 1).status_code == 200
    for scope in ("enroll", "admin"):
        answer = client.get("/v1/toy/echo", params={"text": "hi"}, headers=key[scope])
        assert answer.status_code == 200, answer.text
        record = svc.keys.check(key[scope]["Authorization"][7:])
        assert answer.json() == {"echo": "hi", "key_id": record.key_id, "scope": scope, "identities": 1}


@pytest.mark.parametrize(
    "scope, status, code",
    [(None, 401, "unauthorized"), ("wrong", 401, "unauthorized"), ("verify", 403, "forbidden")],
)
def test_the_toy_endpoint_honours_the_key_scopes(toy_api, scope, status, code):
    client, _, key = toy_api
    headers = key.get(scope, {"Authorization": "Bearer mf_not_a_real_key"} if scope else {})
    answer = client.get("/v1/toy/echo", headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]


def test_the_built_in_routes_still_work_beside_it(toy_api):
    client, svc, key = toy_api
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "<html" in client.get("/").text.lower()
    assert enroll(client, key["enroll"], "alice", 1, 2).json()["images"] == 2
    result = verify(client, key["verify"], "alice", 1).json()
    assert result["decision"] in ("ACCEPT", "REJECT") and result["accepted"] == (result["score"] >= result["threshold"])
    found = client.post("/v1/identify", headers=key["verify"], files={"image": ("p.png", png(1), "image/png")})
    assert [m["identity"] for m in found.json()["matches"]] == ["alice"]
    assert [i["name"] for i in client.get("/v1/identities", headers=key["verify"]).json()["identities"]] == ["alice"]
    assert client.get("/v1/info", headers=key["verify"]).json()["identities"] == 1
    assert client.delete("/v1/identities/alice", headers=key["admin"]).status_code == 204
    assert client.get("/v1/toy/echo", headers=key["admin"]).json()["identities"] == 0
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/toy/echo", "/v1/verify", "/v1/identify", "/v1/identities", "/v1/info"} <= paths


def test_the_command_line_serves_a_router(tmp_path: Path, tiny_triplet_run):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    db = str(tmp_path / "people.db")
    assert parser().parse_args(["--gallery", db]).router == []
    args = parser().parse_args(["--gallery", db, "--ckpt", ckpt, "--router", TOY, "--router", TOY])
    assert args.router == [TOY, TOY]
    app = build_app(args)
    admin = app.state.service.keys.create("admin")[0]
    with TestClient(app) as client:
        answer = client.get("/v1/toy/echo", params={"text": "cli"}, headers={"X-API-Key": admin})
        assert answer.status_code == 200 and answer.json()["echo"] == "cli"
        assert client.get("/v1/toy/echo").status_code == 401
    app.state.service.gallery.close()


@pytest.mark.parametrize(
    "spec, says",
    [
        ("tests.extension.toy_endpoint", "package.module:attribute"),
        ("tests.extension.toy_endpoint:router:extra", "package.module:attribute"),
        ("tests.extension.nowhere:router", "no module"),
        ("tests.extension.toy_endpoint:missing", "no attribute"),
        ("tests.extension.toy_endpoint:not_a_router", "not a fastapi.APIRouter"),
    ],
)
def test_the_command_line_refuses_a_bad_router_in_one_line(tmp_path: Path, capsys, spec: str, says: str):
    gallery = tmp_path / "never_opened.db"
    assert serve_cli(["--gallery", str(gallery), "--router", TOY, "--router", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"error: router {spec!r}") and says in captured.err
    assert "Traceback" not in captured.err
    assert not gallery.exists()  # refused before the gallery and its model were opened
