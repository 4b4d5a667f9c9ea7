"""A soak test of the HTTP service: a bounded mix of every kind of call, hostile ones included, against one server for
a fixed time, with one SIGKILL and restart in the middle; then the invariants.

The server (`python -m metric.serve`, a model made on the spot as in bench/serve_load.py: face=none, 32x32, random
PNG uploads) gets, from --clients concurrent clients, until --minutes have passed:
- verify and identify of enrolled people; enrollment of new people (an enroll key); deletion (an admin key), each
  followed at once by an identify with the deleted person's own photo, which must not return them;
- key revocation: a verify key made with the keys CLI is used (200), revoked, and used again (401);
- hostile uploads: a thin image (40x100000; this model has no face front end, so it is resized: never a 5xx), a
  decompression bomb (a 36-megapixel PNG header in a few KB: 413),
  a body that stalls (408 after --body-timeout) and one sent without a key (401 before the body is read);
- at the midpoint, SIGKILL of the server, and a restart on the same gallery.
The invariants, checked at the end on the gallery file (the server stopped):
- no acknowledged enrollment lost, with its image count; no acknowledged deletion undone; no deleted identity
  returned by a request made after the deletion was acknowledged;
- no 500; memory (the server's resident set) within --rss-bound-mb; PRAGMA integrity_check ok.
Run: python bench/serve_soak.py [--minutes 10] [--clients 6] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import REPO, free_port, log_tail, make_checkpoint, make_pngs, wait_ready  # noqa: E402


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def bomb_png(side: int = 6000) -> bytes:
    """A PNG whose header declares side x side pixels (36 Mpx, over the 25 Mpx limit) in a few KB: refused from the
    header (413) before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (side // 8 + 1) * 64, 9)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class Server:
    """The server process, restartable on the same gallery; its resident memory sampled each second."""

    def __init__(self, db: Path, ckpt: Path, folder: Path, body_timeout: float):
        self.db, self.ckpt, self.folder, self.body_timeout = db, ckpt, folder, body_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.rss_mb: list[float] = []

    def start(self) -> None:
        self.starts += 1
        self.log = self.folder / f"server{self.starts}.log"
        command = [
            sys.executable,
            "-m",
            "metric.serve",
            "--gallery",
            str(self.db),
            "--ckpt",
            str(self.ckpt),
            "--port",
            str(self.port),
            "--workers",
            "4",
            "--queue",
            "16",
            "--body-timeout",
            str(self.body_timeout),
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.url, self.process, self.log)

    def rss(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, AttributeError):
            return None
        return None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def keys_cli(db: Path, *arguments: str) -> list[str]:
    """The lines `python -m metric.serve keys ...` prints."""
    result = subprocess.run(
        [sys.executable, "-m", "metric.serve", "keys", *arguments, "--gallery", str(db)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"keys {' '.join(arguments)} failed: {result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()


def new_key(db: Path, scope: str) -> tuple[str, str]:
    """(key, id) of a new key made with the CLI: "created key <id> ...", then the key on the last line."""
    lines = keys_cli(db, "create", "--scope", scope, "--label", "soak")
    return lines[-1].strip(), lines[0].split()[2]


class Soak:
    """The clients' shared record: what was acknowledged, what went wrong, how long each call took."""

    def __init__(self, server: Server, keys: dict[str, str], photos: list[bytes]):
        self.server, self.keys, self.photos = server, keys, photos
        self.enrolled: dict[str, tuple[int, int]] = {}  # name -> (image count, photo index), acknowledged
        self.deleted: dict[str, float] = {}  # acknowledged deletions: name -> when the acknowledgement arrived
        self.unknown: set[str] = set()  # writes whose answer was lost (the server was killed): outcome unknown
        self.statuses: Counter = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.violations: list[str] = []
        self.counter = 0
        self.down = asyncio.Event()  # set while the server is being killed and restarted

    def headers(self, scope: str) -> dict:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    async def call(
        self, client: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs
    ) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = await client.request(method, self.server.url + path, **kwargs)
        except httpx.TransportError:
            self.statuses[(kind, "transport")] += 1
            return None
        self.latency[kind].append(time.perf_counter() - start)
        self.statuses[(kind, response.status_code)] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.violations.append(f"{kind} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def send_probe(self, client, kind: str, path: str, photo: bytes, **fields: str) -> httpx.Response | None:
        """POST one image (field `image`) and the form `fields` with a verify key, timed and counted as `kind`."""
        files = {"image": (f"{kind}.png", photo, "image/png")}
        headers = self.headers("verify")
        return await self.call(client, kind, "POST", path, headers=headers, files=files, data=fields or None)

    async def enroll(self, client) -> None:
        self.counter += 1
        name, index, count = f"person{self.counter}", random.randrange(len(self.photos)), random.choice((1, 2))
        files = [
            ("images", (f"{name}-{i}.png", self.photos[(index + i) % len(self.photos)], "image/png"))
            for i in range(count)
        ]
        response = await self.call(
            client, "enroll", "POST", f"/v1/identities/{name}/images", headers=self.headers("enroll"), files=files
        )
        if response is None:
            self.unknown.add(name)
        elif response.status_code == 200:
            self.enrolled[name] = (count, index)

    async def delete(self, client) -> None:
        live = [n for n in self.enrolled if n not in self.deleted and n not in self.unknown]
        if not live:
            return
        name = random.choice(live)
        response = await self.call(client, "delete", "DELETE", f"/v1/identities/{name}", headers=self.headers("admin"))
        if response is None:
            self.unknown.add(name)
            return
        if response.status_code != 204:
            return
        self.deleted[name] = time.monotonic()
        photo = self.photos[self.enrolled[name][1]]
        found = await self.send_probe(client, "identify", "/v1/identify", photo, top_k="5")
        if (
            found is not None
            and found.status_code == 200
            and any(m["identity"] == name for m in found.json()["matches"])
        ):
            self.violations.append(f"{name} was returned by identify after its deletion was acknowledged")

    async def verify(self, client) -> None:
        live = [n for n in self.enrolled if n not in self.deleted and n not in self.unknown]
        if not live:
            return
        name = random.choice(live)
        await self.send_probe(client, "verify", "/v1/verify", random.choice(self.photos), identity=name)

    async def identify(self, client) -> None:
        sent = time.monotonic()
        response = await self.send_probe(client, "identify", "/v1/identify", random.choice(self.photos))
        if response is not None and response.status_code == 200:
            stale = [
                m["identity"]
                for m in response.json()["matches"]
                if self.deleted.get(m["identity"], float("inf")) < sent
            ]
            if stale:  # deleted, and acknowledged so, before this request was sent
                self.violations.append(f"identify returned {stale}, deleted before the request was sent")

    async def hostile(self, client, thin: bytes, bomb: bytes) -> None:
        kind = random.choice(("thin", "bomb"))
        data = thin if kind == "thin" else bomb
        response = await self.send_probe(client, kind, "/v1/identify", data)
        # a bomb is refused from its header; a thin image is resized like any other when the model has no face
        # front end (face=none, as here), else refused with 400 (tests/deploy/test_faces_deploy.py): never a 5xx
        if kind == "bomb" and response is not None and response.status_code != 413:
            self.violations.append(f"a decompression bomb got {response.status_code}, not 413")

    async def slow_body(self, with_key: bool) -> None:
        """A 10 MB body of which 1 MB is sent before stalling: 401 at once without a key, 408 with one."""
        kind = "slow_body_keyed" if with_key else "slow_body_no_key"
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        except OSError:
            self.statuses[(kind, "transport")] += 1
            return
        auth = f"Authorization: Bearer {self.keys['verify']}\r\n" if with_key else ""
        writer.write(
            (
                f"POST /v1/identify HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/octet-stream\r\n"
                f"Content-Length: {10 * 2**20}\r\n\r\n"
            ).encode()
            + b"\0" * 2**20
        )
        try:
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), self.server.body_timeout + 20)
            status = int(status_line.split()[1]) if status_line else "closed"
        except (TimeoutError, OSError, IndexError, ValueError):
            status = "transport"
        writer.close()
        self.latency[kind].append(time.perf_counter() - start)
        self.statuses[(kind, status)] += 1
        if status not in (401 if not with_key else 408, "transport", "closed", 503):
            self.violations.append(f"a stalled body {'with' if with_key else 'without'} a key got {status}")


async def client_loop(soak: Soak, stop_at: float, thin: bytes, bomb: bytes) -> None:
    weights = {"verify": 40, "identify": 20, "enroll": 20, "delete": 8, "hostile": 4, "slow": 2}
    kinds, chances = list(weights), list(weights.values())
    async with httpx.AsyncClient(timeout=60.0, trust_env=False) as client:
        while time.monotonic() < stop_at:
            if soak.down.is_set():
                await asyncio.sleep(0.2)
                continue
            kind = random.choices(kinds, chances)[0]
            if kind == "hostile":
                await soak.hostile(client, thin, bomb)
            elif kind == "slow":
                await soak.slow_body(with_key=random.random() < 0.5)
            else:
                await getattr(soak, kind)(client)


async def sample_memory(server: Server, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        value = server.rss()
        if value is not None:
            server.rss_mb.append(value)
        await asyncio.sleep(1.0)


async def revocation(soak: Soak, db: Path) -> dict:
    """A verify key made, used, revoked and used again."""
    key, key_id = await asyncio.to_thread(new_key, db, "verify")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        before = (await client.get(soak.server.url + "/v1/info", headers=headers)).status_code
        await asyncio.to_thread(keys_cli, db, "revoke", key_id)
        after = (await client.get(soak.server.url + "/v1/info", headers=headers)).status_code
    if (before, after) != (200, 401):
        soak.violations.append(f"key revocation: {before} before, {after} after (want 200, 401)")
    return {"before": before, "after": after}


async def stalled_upload(server: Server, key: str | None, sent_mb: float) -> str:
    """A 10 MB body of which `sent_mb` is sent, then nothing: the status the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    writer.write(
        (
            f"POST /v1/identify HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/octet-stream\r\n"
            f"Content-Length: {10 * 2**20}\r\n\r\n"
        ).encode()
    )
    try:
        for _ in range(int(sent_mb * 4)):
            writer.write(b"\0" * 2**18)
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), server.body_timeout + 30)
        return line.split()[1].decode() if line else "closed"
    except (TimeoutError, OSError, IndexError):
        return "reset"
    finally:
        writer.close()


async def pressure_phases(soak: Soak, args) -> dict:
    """Issue 30's two memory probes, before the mix: 60 clients stalling 9.5 MB into 10 MB bodies (with a valid key),
    /healthz asked meanwhile; then 16 concurrent identify calls with 5000x5000 JPEGs. Resident memory of the
    server: before, at the peak of each, and 3 s after."""
    server = soak.server
    out = {"idle_mb": round(server.rss(), 1)}
    peaks: list[float] = []
    out["stalled_60"] = await stalled_uploads_phase(soak, peaks)
    out["jpeg_16x25mpx"] = await big_jpegs_phase(soak, peaks)
    return out


async def watch_rss(server: Server, peaks: list[float], until: asyncio.Event) -> None:
    """The server's resident memory into `peaks` every 0.2 s until `until` is set."""
    while not until.is_set():
        peaks.append(server.rss() or 0.0)
        await asyncio.sleep(0.2)


async def stalled_uploads_phase(soak: Soak, peaks: list[float]) -> dict:
    """60 clients stalling 9.5 MB into 10 MB bodies, /healthz asked meanwhile: the statuses and the memory peak."""
    server = soak.server
    done = asyncio.Event()
    watcher = asyncio.ensure_future(watch_rss(server, peaks, done))
    stalls = [asyncio.ensure_future(stalled_upload(server, soak.keys["verify"], 9.5)) for _ in range(60)]
    await asyncio.sleep(2.0)
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        try:
            health = (await client.get(server.url + "/healthz")).status_code
        except httpx.TransportError:
            health = "no answer"
    statuses = Counter(await asyncio.gather(*stalls))
    done.set()
    await watcher
    await asyncio.sleep(3.0)
    return {
        "statuses": dict(statuses),
        "healthz_during": health,
        "peak_mb": round(max(peaks), 1),
        "after_mb": round(server.rss(), 1),
    }


async def big_jpegs_phase(soak: Soak, peaks: list[float]) -> dict:
    """16 concurrent identify calls with 5000x5000 JPEGs: the statuses and the memory peak."""
    server = soak.server
    big = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).resize((5000, 5000)).save(
        big, "JPEG", quality=80
    )
    peaks.clear()
    done = asyncio.Event()
    watcher = asyncio.ensure_future(watch_rss(server, peaks, done))
    async with httpx.AsyncClient(timeout=120.0, trust_env=False) as client:
        answers = await asyncio.gather(
            *[
                client.post(
                    server.url + "/v1/identify",
                    headers=soak.headers("verify"),
                    files={"image": ("big.jpg", big.getvalue(), "image/jpeg")},
                )
                for _ in range(16)
            ],
            return_exceptions=True,
        )
    done.set()
    await watcher
    await asyncio.sleep(3.0)
    return {
        "jpeg_kb": round(len(big.getvalue()) / 1024),
        "statuses": dict(Counter(getattr(a, "status_code", type(a).__name__) for a in answers)),
        "peak_mb": round(max(peaks), 1),
        "after_mb": round(server.rss(), 1),
    }


async def run(args, folder: Path) -> dict:
    random.seed(args.seed)
    ckpt, db = folder / "model.ckpt", folder / "people.db"
    make_checkpoint(ckpt, "resnet10t", 64)
    server = Server(db, ckpt, folder, args.body_timeout)
    server.start()
    keys = {scope: new_key(db, scope)[0] for scope in ("verify", "enroll", "admin")}
    soak = Soak(server, keys, make_pngs(64, args.seed))
    thin = png_bytes(Image.new("RGB", (40, 100_000), (128, 128, 128)))
    bomb = bomb_png()
    pressure = await pressure_phases(soak, args)
    idle_mb = server.rss()
    start = time.monotonic()
    stop_at = start + 60 * args.minutes
    memory = asyncio.ensure_future(sample_memory(server, stop_at))
    clients = [asyncio.ensure_future(client_loop(soak, stop_at, thin, bomb)) for _ in range(args.clients)]
    revocations = [await revocation(soak, db)]
    await asyncio.sleep(max(0.0, start + 30 * args.minutes - time.monotonic()))
    server.kill()  # mid-load: requests in flight lose their answers (their writes' outcomes are then unknown)
    killed_at = round(time.monotonic() - start, 1)
    soak.down.set()
    await asyncio.to_thread(server.start)
    soak.down.clear()
    revocations.append(await revocation(soak, db))
    await asyncio.gather(*clients)
    memory.cancel()
    await asyncio.sleep(2.0)
    final_mb = server.rss()
    server.stop()
    return {
        **finish(soak, db, idle_mb, final_mb, killed_at, revocations, time.monotonic() - start, args),
        "pressure": pressure,
    }


def finish(soak: Soak, db: Path, idle_mb, final_mb, killed_at, revocations, seconds: float, args) -> dict:
    connection = sqlite3.connect(db)
    integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    stored = dict(connection.execute("SELECT name, image_count FROM identities"))
    connection.close()
    for name, (count, _) in soak.enrolled.items():
        if name in soak.deleted or name in soak.unknown:
            continue
        if stored.get(name) != count:
            soak.violations.append(f"acknowledged enrollment {name} ({count} images) is {stored.get(name)} in the file")
    for name in set(soak.deleted) - soak.unknown:
        if name in stored:
            soak.violations.append(f"acknowledged deletion of {name} undone")
    if integrity != "ok":
        soak.violations.append(f"integrity_check: {integrity}")
    peak = max(soak.server.rss_mb or [0.0])
    if peak > args.rss_bound_mb:
        soak.violations.append(f"peak memory {peak:.0f} MB over the bound of {args.rss_bound_mb} MB")
    requests = sum(soak.statuses.values())
    percentiles = {
        kind: {
            "n": len(v),
            "p50_ms": round(1000 * float(np.percentile(v, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(v, 99)), 1),
        }
        for kind, v in sorted(soak.latency.items())
        if v
    }
    return {
        "seconds": round(seconds, 1),
        "clients": args.clients,
        "requests": requests,
        "statuses": {f"{kind} {status}": n for (kind, status), n in sorted(soak.statuses.items(), key=str)},
        "latency": percentiles,
        "enrolled_acknowledged": len(soak.enrolled),
        "deleted_acknowledged": len(soak.deleted),
        "outcome_unknown": len(soak.unknown),
        "identities_in_file": len(stored),
        "sigkill_at_s": killed_at,
        "revocations": revocations,
        "memory_mb": {
            "idle": round(idle_mb or 0, 1),
            "peak": round(peak, 1),
            "final": round(final_mb or 0, 1),
            "bound": args.rss_bound_mb,
        },
        "integrity_check": integrity,
        "violations": soak.violations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--body-timeout", type=float, default=5.0, help="the server's --body-timeout")
    parser.add_argument("--rss-bound-mb", type=float, default=1500.0, help="the server's resident memory bound")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_soak_") as folder:
        try:
            result = asyncio.run(run(args, Path(folder)))
        except SystemExit:
            for log in sorted(Path(folder).glob("server*.log")):
                print(f"--- {log.name}\n{log_tail(log)}", file=sys.stderr)
            raise
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if result["violations"]:
        raise SystemExit(f"{len(result['violations'])} invariant(s) broken: {result['violations'][:5]}")


if __name__ == "__main__":
    main()
