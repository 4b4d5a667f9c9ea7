"""The HTTP verification service under load: verify requests/s and p50/p95/p99 latency per client concurrency while
one client enrolls identities, against the Python API called directly in one process, then the gallery's integrity.

Side by side in one run, on a model made on the spot (an untrained EmbeddingNet, 32x32 RGB, a stored threshold:
accuracy is irrelevant here, decisions are not checked) and random PNG uploads (seeded, encoded in memory):
1. `python -m metric.serve` starts as a subprocess on 127.0.0.1 (--workers, --queue); an admin key comes from the
   keys CLI; --targets identities are enrolled for verify to target.
2. direct baseline: `Gallery.open` on a copy of that gallery, then `decode_upload` (as the service decodes each
   upload) + `gallery.verify` in a loop in this process; half of --duration before the load, half after it.
3. per --concurrency C: C httpx clients loop on POST /v1/verify for --duration seconds (or --max-requests in all),
   while ONE other client enrolls identities (one per request, 1-2 images). The --enroll identities are spread
   evenly over the levels and paced evenly within each, so every level offers the same enrollment rate (one client
   waits for each answer, so at high concurrency it falls behind); what a level's enroller has not finished when
   its verify clients stop, it finishes alone (the "tail", outside the verify figures). A 503 is the service's
   deliberate back-pressure: counted apart, and both clients wait its
   Retry-After (the enroller then retries; nothing was written).
4. the server is stopped; the gallery file is checked: every confirmed (HTTP 200) enrollment present with its image
   count, nothing present that was not confirmed (except enrollments whose outcome is unknown: a lost response or a
   5xx may follow a write), PRAGMA integrity_check.
Targets at the peak-throughput concurrency: service/direct >= 0.8, p99 < 200 ms, no errors besides 503s.
--torch-threads (default 1) sets torch's intra-op threads in the server (OMP_NUM_THREADS) and in the baseline alike.
The CPU columns split the machine's busy time into the server, this client, and other processes (% of one core).
With --ckpt <bundle> --photos <folder of face photos>, a real model (a calibrated bundle with its face front end) is
served instead and the uploads are those photos: the figures then include detection and alignment.
Run: python bench/serve_load.py [--concurrency 1 2 4 8 16 32] [--duration 15] [--enroll 1000] [--out load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from metric.deploy.gallery import Gallery
from metric.deploy.gallery.store import GalleryStore
from metric.deploy.service.uploads import UploadLimits, decode_upload
from metric.metrics.calibration import Calibration
from metric.model.checkpoint import CHECKPOINT_KEY, checkpoint_record, store_calibration, write_checkpoint
from metric.model.nets import EmbeddingNet

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
MAX_BUSY_RETRIES = 120  # an enrollment refused with 503 this many times in a row is given up (and counted)
TARGETS = {"ratio": 0.8, "p99_ms": 200.0}
WARMUP = 20  # verify calls that warm the server up before the levels (they are in its audit log)


# the model and the uploads --------------------------------------------------------------------------------------
def make_checkpoint(path: Path, backbone: str, dim: int) -> None:
    """An untrained EmbeddingNet in the checkpoint format, with a cosine threshold stored as if calibrated."""
    torch.manual_seed(0)
    net = EmbeddingNet(backbone, dim, in_chans=3).eval()
    preprocess = {"image_size": [SIZE, SIZE], "channels": 3, "face": {"name": "none"}}
    write_checkpoint(
        path,
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            CHECKPOINT_KEY: checkpoint_record(net, None, preprocess, "cosine"),
        },
    )
    store_calibration(
        path,
        Calibration(
            matcher="cosine",
            threshold=0.5,
            target_far=0.001,
            calibrated_far=0.001,
            val_far=0.0,
            val_frr=0.0,
            val_genuine_pairs=0,
            val_impostor_pairs=0,
            warning="untrained bench model: not calibrated",
        ).to_dict(),
        make_default=True,
    )


def photo_uploads(folder: str, count: int) -> list[bytes]:
    """The bytes of `count` photos spread over a folder tree (--photos: real faces for a real bundle)."""
    from datamodules.images import IMAGE_SUFFIXES

    found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SystemExit(f"--photos {folder}: no images found")
    return [p.read_bytes() for p in found[:: max(1, len(found) // count)][:count]]


def make_pngs(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


# the server -----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def start_server(
    db: Path, ckpt: Path, port: int, workers: int, queue: int, threads: int, log: Path, batch: int = 1
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "metric.serve",
        "--gallery",
        str(db),
        "--ckpt",
        str(ckpt),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--queue",
        str(queue),
        "--batch",
        str(batch),
    ]
    env = dict(os.environ)
    if threads:  # torch's intra-op threads in the server, as torch.set_num_threads sets them here
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 180.0) -> float:
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=2.0, trust_env=False) as client:
        while time.perf_counter() - start < timeout:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with code {server.returncode}:\n{log_tail(log)}")
            try:
                if client.get("/readyz").status_code == 200:
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s:\n{log_tail(log)}")


def start_key(db: Path) -> subprocess.Popen:
    """`python -m metric.serve keys create --scope admin`, started beside the server (both take seconds to import)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metric.serve",
            "keys",
            "create",
            "--gallery",
            str(db),
            "--scope",
            "admin",
            "--label",
            "serve_load bench",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_key(keys: subprocess.Popen) -> str:
    """The key: the last line the keys CLI prints."""
    out, err = keys.communicate(timeout=180)
    if keys.returncode != 0 or not out.strip():
        raise SystemExit(f"keys create failed ({keys.returncode}): {err[-2000:]}")
    return out.strip().splitlines()[-1].strip()


def stop_server(server: subprocess.Popen, timeout: float = 30.0) -> str:
    if server.poll() is not None:
        return f"had already exited with code {server.returncode}"
    server.terminate()
    try:
        code = server.wait(timeout)
        return f"stopped by SIGTERM, exit code {code}" + (
            " (uvicorn re-raises the signal after its graceful shutdown)" if code == -15 else ""
        )
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return f"did not stop within {timeout:.0f} s of SIGTERM: killed"


# CPU accounting: the server, this process, and everything else on the machine -----------------------------------
class CpuMeter:
    """Busy CPU seconds of the server process, of this process and of the whole machine (Linux /proc; elsewhere
    nothing is reported)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def snapshot(self) -> tuple[float, float, float, float] | None:
        try:
            fields = open("/proc/stat").readline().split()[1:]
            values = [int(v) for v in fields[:8]]
            machine = (sum(values) - values[3] - values[4]) / self.tick  # everything but idle and iowait
            stat = open(f"/proc/{self.server_pid}/stat").read()
            parts = stat[stat.rindex(")") + 2 :].split()
            server = (int(parts[11]) + int(parts[12])) / self.tick  # utime + stime
        except (OSError, ValueError, IndexError):
            return None
        times = os.times()
        return time.perf_counter(), server, times.user + times.system, machine

    @staticmethod
    def shares(before, after) -> dict | None:
        """% of one core used by the server, this client and other processes between two snapshots."""
        if before is None or after is None:
            return None
        wall = after[0] - before[0]
        server, client, machine = (after[i] - before[i] for i in (1, 2, 3))
        return {
            "server": 100 * server / wall,
            "client": 100 * client / wall,
            "other": 100 * max(machine - server - client, 0.0) / wall,
        }


# the load -------------------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """One kind of request at one level: latencies of successes (s), 503s, other HTTP errors, exceptions."""

    latencies: list[float] = field(default_factory=list)
    busy: int = 0
    http: Counter = field(default_factory=Counter)
    exceptions: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.http.values()) + sum(self.exceptions.values())

    def percentiles(self, first: int | None = None) -> list[float]:
        """p50, p95, p99 in ms of the successes (of the first `first` only, when given)."""
        latencies = self.latencies[:first]
        if not latencies:
            return [float("nan")] * 3
        return [float(v) * 1000 for v in np.percentile(latencies, [50, 95, 99])]

    def error_text(self) -> str:
        kinds = [f"{code}x{n}" for code, n in sorted(self.http.items(), key=str)]
        kinds += [f"{name}x{n}" for name, n in sorted(self.exceptions.items())]
        return ", ".join(kinds) or "-"

    def to_dict(self, first: int | None = None) -> dict:
        p50, p95, p99 = self.percentiles(first)
        return {
            "ok": len(self.latencies),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "busy_503": self.busy,
            "http_errors": {str(k): v for k, v in self.http.items()},
            "exceptions": dict(self.exceptions),
        }


def retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("retry-after", 1)), 0.0)
    except ValueError:
        return 1.0


def client_for(url: str, key: str, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout, trust_env=False)


async def verify_loop(
    client: httpx.AsyncClient,
    offset: int,
    stop_at: float,
    budget: list[int],
    targets: list[str],
    pngs: list[bytes],
    tally: Tally,
) -> None:
    """POST /v1/verify until stop_at or the shared budget is spent; a 503 waits its Retry-After (within the time)."""
    i = offset
    while time.perf_counter() < stop_at and budget[0] > 0:
        budget[0] -= 1
        i += 1
        start = time.perf_counter()
        try:
            response = await client.post(
                "/v1/verify",
                data={"identity": targets[i % len(targets)]},
                files={"image": ("probe.png", pngs[i % len(pngs)], "image/png")},
            )
            elapsed = time.perf_counter() - start
            if response.status_code == 200:
                if "decision" in response.json():
                    tally.latencies.append(elapsed)
                else:
                    tally.http["200 without a decision"] += 1
            elif response.status_code == 503:
                tally.busy += 1
                await asyncio.sleep(min(retry_after(response), max(stop_at - time.perf_counter(), 0.0)))
            else:
                tally.http[response.status_code] += 1
        except Exception as error:  # every failure is counted by its type, the load goes on
            tally.exceptions[type(error).__name__] += 1


class Enroller:
    """The one enrollment client: identities enr-00000, ... with 1-2 images each, and every request's outcome:
    confirmed (200 with the right image count), refused (a 4xx: nothing written) or unknown (an exception or a
    5xx other than 503: the write may have happened)."""

    def __init__(self, count: int, pngs: list[bytes], seed: int):
        rng = np.random.default_rng(seed)
        self.plan = [
            (f"enr-{i:05d}", [pngs[int(j)] for j in rng.integers(0, len(pngs), 1 + int(rng.random() < 0.5))])
            for i in range(count)
        ]
        self.next = 0
        self.outcomes: dict[str, tuple[str, int]] = {}  # name -> (outcome, images sent)

    async def run(self, client: httpx.AsyncClient, quota: int, start: float, seconds: float, tally: Tally) -> None:
        """`quota` enrollments paced evenly over `seconds` from `start`, back to back when behind."""
        interval = seconds / quota if quota else 0.0
        for i in range(quota):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.enroll(client, *self.plan[self.next], tally)
            self.next += 1

    async def enroll(self, client: httpx.AsyncClient, name: str, images: list[bytes], tally: Tally) -> None:
        files = [("images", (f"{name}-{j}.png", data, "image/png")) for j, data in enumerate(images)]
        for _ in range(MAX_BUSY_RETRIES):
            start = time.perf_counter()
            try:
                response = await client.post(f"/v1/identities/{name}/images", files=files)
                images_stored = response.json().get("images") if response.status_code == 200 else None
            except Exception as error:  # the request may have been served: the outcome is unknown
                tally.exceptions[type(error).__name__] += 1
                self.outcomes[name] = ("unknown", len(images))
                return
            if response.status_code == 503:
                tally.busy += 1
                await asyncio.sleep(retry_after(response))
                continue
            if response.status_code == 200 and images_stored == len(images):
                tally.latencies.append(time.perf_counter() - start)
                self.outcomes[name] = ("confirmed", len(images))
            elif response.status_code == 200:
                tally.http["200 with a wrong image count"] += 1
                self.outcomes[name] = ("unknown", len(images))
            else:
                tally.http[response.status_code] += 1
                self.outcomes[name] = ("unknown" if response.status_code >= 500 else "refused", len(images))
            return
        tally.http[f"gave up after {MAX_BUSY_RETRIES} 503s"] += 1
        self.outcomes[name] = ("refused", len(images))


async def prepare(url: str, key: str, targets: list[str], pngs: list[bytes], warmup: int, timeout: float) -> None:
    """Enroll the verify targets (2 images each) and warm the server up with a few verify calls."""
    async with client_for(url, key, timeout) as client:
        offset = 0
        for name in targets:
            for _ in range(len(pngs)):  # real photos: one with no face, or with two, is refused (400); take the next
                files = [("images", (f"{name}-{j}.png", pngs[(offset + j) % len(pngs)], "image/png")) for j in range(2)]
                offset += 2
                response = await client.post(f"/v1/identities/{name}/images", files=files)
                if response.status_code != 400:
                    break
            if response.status_code != 200:
                raise SystemExit(f"enrolling target {name} failed: {response.status_code} {response.text[:500]}")
        for i in range(warmup):
            response = await client.post(
                "/v1/verify",
                data={"identity": targets[i % len(targets)]},
                files={"image": ("probe.png", pngs[i % len(pngs)], "image/png")},
            )
            if response.status_code != 200:
                raise SystemExit(f"warm-up verify failed: {response.status_code} {response.text[:500]}")


async def run_level(
    url: str,
    key: str,
    concurrency: int,
    args,
    targets: list[str],
    pngs: list[bytes],
    enroller: Enroller,
    quota: int,
    meter: CpuMeter,
) -> dict:
    verify, enroll = Tally(), Tally()
    budget = [args.max_requests]
    clients = [client_for(url, key, args.timeout) for _ in range(concurrency + 1)]
    try:
        before = meter.snapshot()
        start = time.perf_counter()
        stop_at = start + args.duration
        enrolling = asyncio.create_task(enroller.run(clients[-1], quota, start, args.duration, enroll))
        await asyncio.gather(
            *(verify_loop(c, 7919 * n, stop_at, budget, targets, pngs, verify) for n, c in enumerate(clients[:-1]))
        )
        verify_seconds = time.perf_counter() - start
        cpu = meter.shares(before, meter.snapshot())
        done_in_time = len(enroll.latencies)
        await enrolling
        tail = max(time.perf_counter() - start - verify_seconds, 0.0)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    p50, p95, p99 = verify.percentiles()
    return {
        "concurrency": concurrency,
        "seconds": verify_seconds,
        "verify_per_s": len(verify.latencies) / verify_seconds,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "verify": verify.to_dict(),
        "enroll": enroll.to_dict(first=done_in_time),  # latencies under the verify load only, not the tail's
        "enroll_quota": quota,
        "enrolled_during_verify": done_in_time,
        "enroll_tail_s": tail,
        "cpu": cpu,
    }


# the direct baseline --------------------------------------------------------------------------------------------
def direct_verify(
    gallery: Gallery, targets: list[str], pngs: list[bytes], seconds: float, warmup: int
) -> tuple[int, float]:
    """decode_upload (as the service decodes an upload) + Gallery.verify, back to back in this thread."""
    channels, limits = int(gallery.verifier.preprocess["channels"]), UploadLimits()

    def call(i: int) -> None:
        probe = decode_upload(pngs[i % len(pngs)], "probe.png", channels, limits)
        gallery.verify(targets[i % len(targets)], probe)

    for i in range(warmup):
        call(i)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(done)
        done += 1
    return done, time.perf_counter() - start


def copy_gallery(source: Path, target: Path) -> None:
    """A consistent copy of a gallery another process has open (WAL): SQLite's backup API."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# integrity ------------------------------------------------------------------------------------------------------
def check_integrity(db: Path, targets: list[str], enroller: Enroller) -> dict:
    store = GalleryStore(db)
    try:
        with store.lock:
            integrity = store.db.execute("PRAGMA integrity_check").fetchone()[0]
            audit = dict(store.db.execute("SELECT action, COUNT(*) FROM audit GROUP BY action").fetchall())
        present = {name: count for name, count, _ in store.list()}
    finally:
        store.close()
    expected = {name: 2 for name in targets}
    expected.update({name: n for name, (outcome, n) in enroller.outcomes.items() if outcome == "confirmed"})
    unknown = {name for name, (outcome, _) in enroller.outcomes.items() if outcome == "unknown"}
    missing = sorted(set(expected) - set(present))
    wrong_count = sorted(name for name in expected if name in present and present[name] != expected[name])
    unconfirmed = set(present) - set(expected)
    return {
        "integrity_check": integrity,
        "present": len(present),
        "confirmed": len(expected) - len(targets),
        "targets": len(targets),
        "missing": missing,
        "wrong_count": wrong_count,
        "present_unknown_outcome": sorted(unconfirmed & unknown),
        "present_never_confirmed": sorted(unconfirmed - unknown),
        "unknown_outcomes": len(unknown),
        "not_attempted": len(enroller.plan) - len(enroller.outcomes),
        "audit_rows": audit,
    }


# the report -----------------------------------------------------------------------------------------------------
def cpu_text(cpu: dict | None) -> str:
    return f"{cpu['server']:4.0f}/{cpu['client']:3.0f}/{cpu['other']:3.0f}" if cpu else "n/a"


def print_levels(levels: list[dict], peak: dict) -> None:
    print(
        f"{'clients':>7} {'verify/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'503s':>5} {'errors':>6} "
        f"{'enrolled':>9} {'enr p50/p99 ms':>14} {'enr 503s':>8} {'tail s':>6} {'cpu srv/cli/oth %':>17}"
    )
    for level in levels:
        v, e = level["verify"], level["enroll"]
        errors = sum(v["http_errors"].values()) + sum(v["exceptions"].values())
        errors += sum(e["http_errors"].values()) + sum(e["exceptions"].values())
        mark = "  <- peak" if level is peak else ""
        print(
            f"{level['concurrency']:7d} {level['verify_per_s']:9.1f} {level['p50_ms']:7.1f} {level['p95_ms']:7.1f} "
            f"{level['p99_ms']:7.1f} {v['busy_503']:5d} {errors:6d} "
            f"{level['enrolled_during_verify']:4d}/{level['enroll_quota']:<4d} "
            f"{e['p50_ms']:6.1f}/{e['p99_ms']:<7.1f} {e['busy_503']:8d} {level['enroll_tail_s']:6.1f} "
            f"{cpu_text(level['cpu']):>17}{mark}"
        )
    print(
        "enrolled: during the verify load / the level's share (the rest alone afterwards, 'tail s'); enr p50/p99: "
        "under the verify load; 503s: deliberate back-pressure, not errors; cpu: % of one core used by the server / "
        "this client / other processes"
    )
    for level in levels:
        text = Tally(http=Counter(level["verify"]["http_errors"]), exceptions=Counter(level["verify"]["exceptions"]))
        enroll = Tally(http=Counter(level["enroll"]["http_errors"]), exceptions=Counter(level["enroll"]["exceptions"]))
        if text.errors or enroll.errors:
            print(
                f"  errors at {level['concurrency']} clients: verify {text.error_text()}; enroll {enroll.error_text()}"
            )


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 16, 32],
        help="verify clients at each level (one enrollment client runs beside them)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds of verify load per level; the direct "
        "baseline runs this long too (half before the "
        "load, half after)",
    )
    parser.add_argument("--max-requests", type=int, default=100_000, help="verify requests per level, at most")
    parser.add_argument(
        "--enroll", type=int, default=1000, help="identities enrolled during the load, spread evenly over the levels"
    )
    parser.add_argument("--workers", type=int, default=8, help="the server's --workers")
    parser.add_argument("--queue", type=int, default=8, help="the server's --queue")
    parser.add_argument("--batch", type=int, default=8, help="the server's --batch (micro-batched forward passes)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads in the server (OMP_NUM_THREADS) and in the direct baseline; "
        "0: torch's default (one per core)",
    )
    parser.add_argument("--targets", type=int, default=8, help="identities enrolled first, for verify to target")
    parser.add_argument("--images", type=int, default=300, help="distinct random PNG uploads")
    parser.add_argument(
        "--ckpt", help="a checkpoint or calibrated bundle to serve (default: an untrained model made here)"
    )
    parser.add_argument(
        "--photos", help="upload these photos (a folder tree; with a face front end: real faces) instead of random PNGs"
    )
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--dim", type=int, default=64, help="embedding size of the untrained model")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write every figure to this JSON file")
    return parser


def parse_args() -> argparse.Namespace:
    """The command line, checked (one line and exit 2 when a value cannot work)."""
    parser = bench_parser()
    args = parser.parse_args()
    if min(args.concurrency) < 1 or args.duration <= 0 or args.enroll < 0 or args.max_requests < 1:
        parser.error("--concurrency values and --max-requests must be >= 1, --duration > 0 and --enroll >= 0")
    if args.torch_threads < 0:
        parser.error("--torch-threads must be >= 0")
    return args


@dataclass
class Workload:
    """What every level offers: the uploads, the verify targets, the enrollments and each level's share of them."""

    pngs: list[bytes]
    targets: list[str]
    enroller: Enroller
    quotas: list[int]
    load_before: tuple[float, float, float] | None


@dataclass
class Measured:
    """What one run measured: the levels, the direct baseline before and after them, the server and the gallery."""

    levels: list[dict]
    first: tuple[int, float]
    second: tuple[int, float]
    stopped: str
    integrity: dict
    server_errors: list[str]


def make_workload(args: argparse.Namespace) -> Workload:
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    pngs = photo_uploads(args.photos, args.images) if args.photos else make_pngs(args.images, args.seed)
    targets = [f"target-{i:02d}" for i in range(args.targets)]
    enroller = Enroller(args.enroll, pngs, args.seed + 1)
    share, extra = divmod(args.enroll, len(args.concurrency))
    quotas = [share + (i < extra) for i in range(len(args.concurrency))]
    return Workload(pngs, targets, enroller, quotas, load_before)


def print_setup(args: argparse.Namespace, work: Workload, ready: float) -> None:
    model = (
        f"the bundle {args.ckpt} (decisions are not checked)"
        if args.ckpt
        else f"{args.backbone} EmbeddingNet, {args.dim}-d, UNTRAINED (speed only: accuracy is irrelevant, "
        "decisions are not checked)"
    )
    uploads = f"photos from {args.photos}" if args.photos else f"{SIZE}x{SIZE} RGB PNG uploads"
    print(
        f"serve_load: {model}; {uploads} ({len(work.pngs)} distinct, "
        f"~{np.mean([len(p) for p in work.pngs]) / 1024:.1f} KiB)"
    )
    print(
        f"server: --workers {args.workers} --queue {args.queue} --batch {args.batch} on 127.0.0.1 "
        f"(ready in {ready:.1f} s); {os.cpu_count()} CPUs; "
        f"torch intra-op threads {args.torch_threads or 'default'} in the server, "
        f"{torch.get_num_threads()} in the direct baseline; load average "
        f"{' '.join(f'{v:.2f}' for v in work.load_before) if work.load_before else 'n/a'}"
    )
    print(
        f"load: {args.duration:g} s per level; 1 enrollment client beside the verify clients, "
        f"{args.enroll} identities spread over the levels ({work.quotas[0]} per level, paced evenly)"
    )


def load_levels(
    args: argparse.Namespace, work: Workload, url: str, key: str, server: subprocess.Popen, direct: Gallery
) -> tuple[list[dict], tuple[int, float], tuple[int, float]]:
    """The levels of verify load, between the two halves of the direct baseline."""
    half = args.duration / 2
    first = direct_verify(direct, work.targets, work.pngs, half, warmup=10)
    meter = CpuMeter(server.pid)
    levels = []
    for concurrency, quota in zip(args.concurrency, work.quotas):
        levels.append(
            asyncio.run(run_level(url, key, concurrency, args, work.targets, work.pngs, work.enroller, quota, meter))
        )
    second = direct_verify(direct, work.targets, work.pngs, half, warmup=2)
    return levels, first, second


def measure(args: argparse.Namespace, work: Workload) -> Measured:
    """Start the server on a new gallery, run the baseline and the levels, stop it and check the gallery file."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt, db, log = tmp / "bench.ckpt", tmp / "bench.db", tmp / "server.log"
        if args.ckpt:
            ckpt = Path(args.ckpt).resolve()
        else:
            make_checkpoint(ckpt, args.backbone, args.dim)
        Gallery.open(db, ckpt=ckpt).close()  # created here, so that the keys CLI can start beside the server
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(db, ckpt, port, args.workers, args.queue, args.torch_threads, log, args.batch)
        keys = start_key(db)
        try:
            ready = wait_ready(url, server, log)
            key = read_key(keys)
            asyncio.run(prepare(url, key, work.targets, work.pngs, warmup=WARMUP, timeout=args.timeout))
            copy_gallery(db, tmp / "direct.db")
            direct = Gallery.open(tmp / "direct.db", ckpt=ckpt)
            print_setup(args, work, ready)
            levels, first, second = load_levels(args, work, url, key, server, direct)
            direct.close()
            stopped = stop_server(server)
        finally:
            for process in (server, keys):
                if process.poll() is None:
                    process.kill()
                    process.wait()
        integrity = check_integrity(db, work.targets, work.enroller)
        server_errors = [
            line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line or "ERROR" in line
        ]
    return Measured(levels, first, second, stopped, integrity, server_errors)


def summarize(run: Measured) -> dict:
    """The figures the targets are judged on: the direct rate, the peak level, the knee, errors and 503s."""
    levels, first, second = run.levels, run.first, run.second
    direct_rate = (first[0] + second[0]) / (first[1] + second[1])
    peak = max(levels, key=lambda level: level["verify_per_s"])
    knee = min(
        (level for level in levels if level["verify_per_s"] >= 0.95 * peak["verify_per_s"]),
        key=lambda level: level["concurrency"],
    )
    ratio = peak["verify_per_s"] / direct_rate
    errors = sum(
        sum(level[kind]["http_errors"].values()) + sum(level[kind]["exceptions"].values())
        for level in levels
        for kind in ("verify", "enroll")
    )
    busy = sum(level[kind]["busy_503"] for level in levels for kind in ("verify", "enroll"))
    met = {"ratio": ratio >= TARGETS["ratio"], "p99": peak["p99_ms"] < TARGETS["p99_ms"], "errors": errors == 0}
    return {
        "direct_rate": direct_rate,
        "peak": peak,
        "knee": knee,
        "ratio": ratio,
        "errors": errors,
        "busy": busy,
        "met": met,
    }


def print_figures(run: Measured, figures: dict) -> None:
    peak, knee, ratio, met = figures["peak"], figures["knee"], figures["ratio"], figures["met"]
    first, second = run.first, run.second
    print()
    print_levels(run.levels, peak)
    print(
        f"direct Python API (decode_upload + Gallery.verify in one calling thread of this process, torch "
        f"{torch.get_num_threads()} intra-op threads): {figures['direct_rate']:.1f} calls/s "
        f"({first[0] / first[1]:.1f} before the load, {second[0] / second[1]:.1f} after)"
    )
    print(
        f"peak: {peak['concurrency']} clients, {peak['verify_per_s']:.1f} verify/s = {ratio:.2f}x direct, "
        f"p99 {peak['p99_ms']:.1f} ms; within 5% of the peak from {knee['concurrency']} clients "
        f"({knee['verify_per_s']:.1f}/s, p99 {knee['p99_ms']:.1f} ms)"
    )
    print(
        f"targets at the peak: service/direct >= {TARGETS['ratio']}: {'met' if met['ratio'] else 'MISSED'} "
        f"({ratio:.2f}); p99 < {TARGETS['p99_ms']:.0f} ms: {'met' if met['p99'] else 'MISSED'} "
        f"({peak['p99_ms']:.1f}); no errors besides 503s: {'met' if met['errors'] else 'MISSED'} "
        f"({figures['errors']} errors, {figures['busy']} deliberate 503s)"
    )
    others = [level["cpu"]["other"] for level in run.levels if level["cpu"]]
    if others and max(others) > 20:
        print(
            f"note: other processes used up to {max(others):.0f}% of a core during the load: the figures are "
            "disturbed by them."
        )


def print_integrity(run: Measured) -> bool:
    """The gallery file's check and the audit log against what took effect; whether the gallery is sound."""
    i = run.integrity
    sound = (
        i["integrity_check"] == "ok" and not i["missing"] and not i["wrong_count"] and not i["present_never_confirmed"]
    )
    print(f"server {run.stopped}; {len(run.server_errors)} error lines in its log")
    print(
        f"integrity: PRAGMA integrity_check {i['integrity_check']}; {i['present']} identities present = "
        f"{i['targets']} targets + {i['confirmed']} confirmed enrollments; missing {len(i['missing'])}, wrong image "
        f"count {len(i['wrong_count'])}, present but never confirmed {len(i['present_never_confirmed'])}; "
        f"outcome unknown {i['unknown_outcomes']} (of them present: {len(i['present_unknown_outcome'])}); "
        f"not attempted {i['not_attempted']}; audit rows {i['audit_rows']} -> {'sound' if sound else 'NOT SOUND'}"
    )
    answered = {
        "verify": WARMUP + sum(level["verify"]["ok"] for level in run.levels),
        "enroll": i["targets"] + i["confirmed"] + len(i["present_unknown_outcome"]),
    }
    print(
        "audit log: "
        + "; ".join(
            f"{action} rows {i['audit_rows'].get(action, 0)} for {n} that took effect"
            f"{'' if i['audit_rows'].get(action, 0) == n else ' (MISMATCH)'}"
            for action, n in answered.items()
        )
    )
    for kind in ("missing", "wrong_count", "present_never_confirmed"):
        if i[kind]:
            print(f"  {kind}: {', '.join(i[kind][:10])}{' ...' if len(i[kind]) > 10 else ''}")
    return sound


def write_figures(args: argparse.Namespace, work: Workload, run: Measured, figures: dict, sound: bool) -> None:
    peak, knee = figures["peak"], figures["knee"]
    report = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "load_average_before": work.load_before,
        "levels": run.levels,
        "direct": {"calls_per_s": figures["direct_rate"], "before": run.first, "after": run.second},
        "peak": {
            "concurrency": peak["concurrency"],
            "verify_per_s": peak["verify_per_s"],
            "ratio": figures["ratio"],
            "p99_ms": peak["p99_ms"],
        },
        "knee": {"concurrency": knee["concurrency"], "verify_per_s": knee["verify_per_s"], "p99_ms": knee["p99_ms"]},
        "targets": figures["met"],
        "errors": figures["errors"],
        "busy_503": figures["busy"],
        "server": run.stopped,
        "server_error_lines": run.server_errors,
        "integrity": {**run.integrity, "sound": sound},
    }
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")


def main() -> None:
    args = parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    work = make_workload(args)
    run = measure(args, work)
    figures = summarize(run)
    print_figures(run, figures)
    sound = print_integrity(run)
    if args.out:
        write_figures(args, work, run, figures, sound)


if __name__ == "__main__":
    main()
