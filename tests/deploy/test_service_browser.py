"""The web page end to end: a real `python -m metric.serve` process with a dlib gallery, driven by headless Chromium
(the system binary, through Playwright) to enroll, verify and identify ORL faces through the page alone."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ORL, REPO_ROOT

READY_TIMEOUT_S = 120  # loading dlib's models is slow on a shared CPU
ACTION_TIMEOUT_MS = 60_000  # one enroll / verify / identify round trip through the page


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture
def chromium() -> str:
    """The system Chromium; Playwright's own browser download is never used (no network to its CDN)."""
    pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    if path is None:
        pytest.skip("no system chromium binary (CI installs it with `apt-get install chromium`)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    key: str
    process: subprocess.Popen
    stderr_path: Path

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @contextmanager
    def log_on_failure(self):
        """Print the server's stderr when the body fails, so a refused request can be traced."""
        try:
            yield
        except BaseException:
            print(f"\n--- server stderr ({self.url}) ---\n{self.log()}\n--- end of server stderr ---", file=sys.stderr)
            raise


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def server(chromium, dlib_bundle, tmp_path) -> Server:
    """A real server on a free port over a new gallery (created by the server from the bundle), and an admin key
    created afterwards against the same database file; the process is always terminated."""
    gallery, port = tmp_path / "people.db", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stdout_path, stderr_path = tmp_path / "server.out", tmp_path / "server.err"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metric.serve",
                "--gallery",
                str(gallery),
                "--ckpt",
                str(dlib_bundle),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the server exited with {process.returncode} before it was ready:\n"
                    f"{stderr_path.read_text(errors='replace')}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the server was not ready within {READY_TIMEOUT_S} s:\n{stderr_path.read_text(errors='replace')}"
                )
            time.sleep(0.5)
        created = subprocess.run(
            [sys.executable, "-m", "metric.serve", "keys", "create", "--gallery", str(gallery), "--scope", "admin"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        yield Server(url, key, process, stderr_path)
    finally:
        stop(process)


def submit(page, section: str) -> str:
    """Click a section's button and wait for its answer (a result or an error): the answer's text."""
    result = f"#{section}-result"
    page.eval_on_selector(result, "node => node.replaceChildren()")
    page.click(f"#{section}-button")
    page.wait_for_selector(f"{result} > p:not(.note)", timeout=ACTION_TIMEOUT_MS)
    return page.inner_text(result)


def submitted_ok(page, section: str) -> str:
    text = submit(page, section)
    errors = page.query_selector_all(f"#{section}-result .error")
    assert not errors, f"{section} failed on the page: {text}"
    return text


def face(person: int, image: int) -> str:
    """An ORL image, uploaded as the PGM file it is (the server judges the content, not the name)."""
    return str(ORL / f"s{person}" / f"{image}.pgm")


def every_control_is_labelled(page) -> None:
    assert page.title()
    for control in (
        "key",
        "enroll-name",
        "enroll-files",
        "verify-identity",
        "verify-file",
        "identify-file",
        "identify-topk",
    ):  # every control has a label
        assert page.locator(f"label[for='{control}']").count() == 1, control


def enroll_two_people(page) -> None:
    page.fill("#enroll-name", "s1")
    page.set_input_files("#enroll-files", [face(1, 1), face(1, 2)])
    assert "2 images" in submitted_ok(page, "enroll")
    page.fill("#enroll-name", "s2")
    page.set_input_files("#enroll-files", [face(2, 1)])
    assert "1 image" in submitted_ok(page, "enroll")


def verify_genuine_and_impostor(page) -> None:
    page.fill("#verify-identity", "s1")
    page.set_input_files("#verify-file", face(1, 5))
    genuine = submitted_ok(page, "verify")
    assert page.inner_text("#verify-decision") == "ACCEPT", genuine
    assert "≥ threshold" in page.inner_text("#verify-score")
    assert "liveness not checked" in genuine  # this gallery has no liveness gate

    page.set_input_files("#verify-file", face(3, 5))
    impostor = submitted_ok(page, "verify")
    assert page.inner_text("#verify-decision") == "REJECT", impostor
    assert "< threshold" in page.inner_text("#verify-score")


def identify_among_the_enrolled(page) -> None:
    page.set_input_files("#identify-file", face(2, 5))
    page.fill("#identify-topk", "2")
    found = submitted_ok(page, "identify")
    assert page.inner_text("#identify-best") == "s2", found
    ranked = page.locator("#identify-matches li").all_inner_texts()
    assert len(ranked) == 2 and ranked[0].startswith("s2:"), ranked
    assert "liveness not checked" in found


def no_camera_and_an_api_error_are_shown(page) -> None:
    # no camera here (headless, no device): the page says so instead of failing silently
    page.click("#verify-camera")
    page.wait_for_function(
        "() => /camera/i.test(document.getElementById('verify-camera-note').textContent)",
        timeout=ACTION_TIMEOUT_MS,
    )
    assert page.is_disabled("#verify-capture")

    # an API error is shown with its message
    page.fill("#verify-identity", "nobody")
    missing = submit(page, "verify")
    assert page.locator("#verify-result .error").count() == 1 and "not enrolled" in missing, missing


def the_key_is_kept_in_memory_only(page, key: str) -> None:
    # the key lived in memory only, and clearing the field forgets it
    stored = page.evaluate("""() => ({
        local: Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k)).join(';'),
        session: Object.keys(sessionStorage).map(k => k + '=' + sessionStorage.getItem(k)).join(';'),
        cookie: document.cookie })""")
    assert stored == {"local": "", "session": "", "cookie": ""}, stored
    assert key not in str(stored)
    page.fill("#key", "")
    page.fill("#verify-identity", "s1")
    forgotten = submit(page, "verify")
    assert "API key" in forgotten and page.locator("#verify-decision").count() == 0, forgotten


def test_enroll_verify_identify_through_the_page(server, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "service_page.png"
    with server.log_on_failure(), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(server.url + "/")
            every_control_is_labelled(page)
            page.fill("#key", server.key)
            enroll_two_people(page)
            verify_genuine_and_impostor(page)
            identify_among_the_enrolled(page)
            page.screenshot(path=str(shot), full_page=True)
            no_camera_and_an_api_error_are_shown(page)
            the_key_is_kept_in_memory_only(page, server.key)
        finally:
            browser.close()
    assert shot.is_file() and shot.stat().st_size > 0
