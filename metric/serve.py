"""`python -m metric.serve`: the HTTP verification service; `keys` manages its API keys and `audit` shows its log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from datamodules.images import BadImage
from metric.cli import run_command
from metric.deploy.sqlite import stored_time
from metric.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

ROUTER_HELP = (
    "also serve the routes of this fastapi.APIRouter, e.g. mypackage.routes:router (repeatable); its routes take the "
    "API-key scopes from metric.deploy.service.scopes.require_scope"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.serve", description=__doc__.splitlines()[0])
    p.add_argument("--gallery", required=True, help="the gallery database (created with --ckpt if missing)")
    p.add_argument("--ckpt", help="checkpoint: required to create the gallery, else checked against it")
    p.add_argument(
        "--liveness",
        metavar="CKPT",
        help="a liveness checkpoint gating every image (recorded as the "
        "gallery's guard); without it, the guard the gallery records",
    )
    p.add_argument("--no-detect", action="store_true", help="uploads are already aligned face crops")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=8, help="threads that decode and read faces")
    p.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker; more get 503")
    p.add_argument(
        "--batch",
        type=int,
        default=8,
        help="embed up to this many concurrent images in one forward pass (1: each on its own)",
    )
    p.add_argument("--max-request-mb", type=float, default=10.0, help="largest request body (413 above)")
    p.add_argument("--max-files", type=int, default=10, help="most images per enrollment request (413 above)")
    p.add_argument("--max-pixels", type=int, default=25_000_000, help="largest decoded image (413 above)")
    p.add_argument("--max-decodes", type=int, default=2, help="images decoded at once (decoded pixels dwarf the bytes)")
    p.add_argument(
        "--body-timeout", type=float, default=10.0, help="seconds a request body may stall between chunks (408 after)"
    )
    p.add_argument(
        "--max-uploads",
        type=int,
        default=16,
        help="request bodies received at once; more get 503 (memory held by bodies: at most this x --max-request-mb)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="URL",
        help="allow browser calls from this origin (repeatable); CORS is off without it",
    )
    p.add_argument(
        "--docs",
        action="store_true",
        help="serve /docs and /redoc (their scripts load from a CDN); /openapi.json is always served",
    )
    p.add_argument("--router", action="append", default=[], metavar="MODULE:ATTRIBUTE", help=ROUTER_HELP)
    p.add_argument(
        "--accept-new-threshold",
        action="store_true",
        help="start although the checkpoint's calibrated threshold or matcher differs from the gallery's "
        "record: adopt it (recorded in the gallery and the audit log)",
    )
    return p


def keys_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.serve keys", description="API keys of a gallery's service")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="print a new key once (last line); only its hash is stored")
    create.add_argument("--gallery", required=True)
    create.add_argument("--scope", required=True, choices=("verify", "enroll", "admin"))
    create.add_argument("--label", help="who or what the key is for")
    sub.add_parser("list").add_argument("--gallery", required=True)
    revoke = sub.add_parser("revoke")
    revoke.add_argument("--gallery", required=True)
    revoke.add_argument("key_id", help="the id `keys list` shows")
    return p


def audit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m metric.serve audit", description="the service's audit log, newest first"
    )
    p.add_argument("--gallery", required=True)
    p.add_argument("--limit", type=int, default=50)
    return p


def audit_lines(entries: list[dict]) -> list[str]:
    """The audit log as lines for the command line, each stamped in ISO-8601."""
    return [
        f"{stored_time(e['at'])}  {e['action']:10} {e.get('identity') or '-':20} {e['outcome']:10} "
        f"key={e.get('key_id') or '-'}  {json.dumps(e.get('detail'))}"
        for e in entries
    ]


def run_keys(args: argparse.Namespace) -> int:
    from metric.deploy.gallery.store import GalleryStore
    from metric.deploy.service.audit import AuditLog
    from metric.deploy.service.keys import KeyStore

    store = GalleryStore(args.gallery)
    keys, audit = KeyStore(store.db, store.lock), AuditLog(store.db, store.lock)
    if args.action == "create":
        key, record = keys.create(args.scope, args.label)
        audit.record("key_create", None, None, "ok", {"key_id": record.key_id, "scope": record.scope})
        print(f"created key {record.key_id} with scope {record.scope}; it is shown once, only its hash is stored:")
        print(key)
    elif args.action == "list":
        for record in keys.list():
            state = f"revoked {stored_time(record.revoked_at)}" if record.revoked else "active"
            print(
                f"{record.key_id}\t{record.scope}\t{state}\tcreated "
                f"{stored_time(record.created_at)}\t{record.label or ''}"
            )
    else:
        keys.revoke(args.key_id)
        audit.record("key_revoke", None, None, "ok", {"key_id": args.key_id})
        print(f"revoked {args.key_id}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from metric.deploy.gallery.store import GalleryStore
    from metric.deploy.service.audit import AuditLog

    store = GalleryStore(args.gallery)
    print("\n".join(audit_lines(AuditLog(store.db, store.lock).recent(args.limit))))
    return 0


def build_app(args: argparse.Namespace) -> FastAPI:
    """The application the server command line asks for; the --router routers are imported first (a bad one stops
    the start before the model loads)."""
    from metric.deploy.service.app import create_app
    from metric.deploy.service.extensions import load_router
    from metric.deploy.service.state import Service, ServiceConfig
    from metric.deploy.service.uploads import UploadLimits

    routers = [load_router(spec) for spec in args.router]
    limits = UploadLimits(
        max_request_bytes=int(args.max_request_mb * 2**20),
        max_files=args.max_files,
        max_pixels=args.max_pixels,
        body_timeout_s=args.body_timeout,
        max_uploads=args.max_uploads,
        max_decodes=args.max_decodes,
    )
    service = Service(
        ServiceConfig(
            Path(args.gallery),
            args.ckpt,
            args.liveness,
            not args.no_detect,
            args.workers,
            args.queue,
            args.batch,
            limits,
            tuple(args.cors_origin),
            args.docs,
            args.accept_new_threshold,
        )
    )
    return create_app(service, routers)


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    app = build_app(args)
    docs = "/docs" if args.docs else "/openapi.json"
    print(
        f"serving {args.gallery} on http://{args.host}:{args.port} (API description at {docs}, the web page at /)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


class CommandParser:
    """The three command lines of metric.serve: the server, `keys ...` and `audit ...`."""

    def parse_args(self, argv: list[str]) -> argparse.Namespace:
        if argv[:1] == ["keys"]:
            return keys_parser().parse_args(argv[1:])
        if argv[:1] == ["audit"]:
            return audit_parser().parse_args(argv[1:])
        return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one of the three command lines; bad input exits 2 with one line, never a trace."""
    argv = sys.argv[1:] if argv is None else argv
    args = CommandParser().parse_args(argv)
    command = {"keys": run_keys, "audit": run_audit}.get(argv[0] if argv else "", run_server)
    return run_command(lambda: command(args), errors=(ConfigError, BadImage))


if __name__ == "__main__":
    sys.exit(main())
