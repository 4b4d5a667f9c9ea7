"""Image files through a face front end: per-file crops cached losslessly (PNG + detection JSON), a progress bar
over a dataset, and the detection-rate check that stops a run before training on data the detector cannot read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from datamodules.atomic import write_file_atomically
from datamodules.faces.frontend import FaceCrop, FaceFrontEnd, NoFace
from datamodules.images import BadImage, as_array, open_image, read_each, resize
from datamodules.progress import progress
from metric.errors import ConfigError

FACE_CACHE_VERSION = (
    3  # 2: photos upright by their EXIF orientation; 3: JPEGs over DRAFT_SIDE decoded at a reduced scale
)


class FaceLoader:
    """`load(path)`: the file's face crop at (channels, size=(H, W)); with cache_dir, a crop is detected once per
    file (path, size, mtime) and front-end setting, then read back from `<cache_dir>/faces-<settings hash>/`."""

    def __init__(
        self, front_end: FaceFrontEnd, channels: int, size: tuple[int, int], cache_dir: str | Path | None = None
    ):
        self.front_end, self.channels, self.size = front_end, channels, tuple(size)
        self.cache = None
        if cache_dir is not None and front_end.active:
            key = json.dumps(
                {"v": FACE_CACHE_VERSION, **front_end.spec(), "channels": channels, "size": self.size}, sort_keys=True
            )
            self.cache = Path(cache_dir) / f"faces-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def load(self, path: str | Path, all_faces: bool = False) -> FaceCrop:
        """The crop (image None for a miss under on_miss=skip); BadImage for an unreadable file."""
        path = Path(path)
        entry = self.entry(path) if self.cache is not None and not all_faces else None
        crop = read_entry(entry) if entry is not None else None
        image = None
        if crop is None:
            image = open_image(path, self.channels)
            try:
                crop = self.front_end.crop(image, self.size, all_faces)
            except BadImage as error:  # e.g. an image too thin to scale: name the file
                raise BadImage(f"{path}: {error}") from None
            if entry is not None:
                write_entry(entry, crop)
        if crop.image is None and self.front_end.on_miss == "whole":
            image = image if image is not None else open_image(path, self.channels)  # a cached miss: read it now
            return FaceCrop(as_array(resize(image, self.size)), crop.faces, reason=crop.reason)
        return crop

    def load_face(self, path: str | Path, all_faces: bool = False) -> FaceCrop:
        """As load, but a miss is NoFace (with the reason) whatever on_miss says: for verify, enroll, identify."""
        return require_face(self.load(path, all_faces), path, self.front_end)

    def load_many(self, paths: Iterable[str | Path], desc: str = "faces") -> list[FaceCrop | BadImage]:
        """load() for each path in order, with progress when a detector runs (a bar, or lines off a terminal); an
        unreadable file gives its BadImage in place of a crop."""
        paths = list(paths)
        if self.front_end.active:
            paths = progress(paths, desc=f"{desc}: {self.front_end.describe()}", unit="img")
        return read_each(paths, self.load)

    def entry(self, path: Path) -> Path:
        try:
            stat = path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        key = hashlib.sha256(f"{path.resolve()}|{stamp}".encode()).hexdigest()[:32]
        return self.cache / key[:2] / key


NO_DETECT_ADVICE = "If it is already a cropped, aligned face, pass --no-detect (API: detect=False)."


def require_face(crop: FaceCrop, source: str | Path, front_end: FaceFrontEnd, advice: str | None = None) -> FaceCrop:
    """The crop, or NoFace naming the source, the reason and what to do (by default: --no-detect) when the front end
    found no face."""
    if not crop.found and front_end.active:
        raise NoFace(
            f"{source}: {crop.reason} found by the face front end ({front_end.describe()}). "
            f"{advice or NO_DETECT_ADVICE}"
        )
    return crop


def read_entry(entry: Path) -> FaceCrop | None:
    """A cached crop, or None when the entry is absent or incomplete (its JSON is written last)."""
    meta = entry.with_suffix(".json")
    if not meta.exists():
        return None
    record = json.loads(meta.read_text())
    image = None
    if record["reason"] is None:
        with Image.open(entry.with_suffix(".png")) as png:
            image = as_array(png)
    box = tuple(record["box"]) if record["box"] else None
    landmarks = tuple(map(tuple, record["landmarks"])) if record["landmarks"] else None
    return FaceCrop(image, record["faces"], box, landmarks, record["reason"])


def write_entry(entry: Path, crop: FaceCrop) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    if crop.image is not None:
        pixels = crop.image[..., 0] if crop.image.shape[-1] == 1 else crop.image
        write_file_atomically(entry.with_suffix(".png"), lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))
    write_file_atomically(entry.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(crop.record())))


def check_detection_rate(split: str, entries: list[dict], front_end: FaceFrontEnd) -> float:
    """The split's detection rate from its detection records (FaceCrop.record() with "source"); stop (before
    training) when it is below face.min_detection_rate and photos without a face would be dropped."""
    if not front_end.active or not entries:
        return 1.0
    misses = [e["source"] for e in entries if e["reason"] is not None]
    found, total = len(entries) - len(misses), len(entries)
    rate = found / total
    if front_end.on_miss == "skip" and rate < front_end.min_detection_rate:
        raise ConfigError(
            f"{front_end.describe()} found a face in only {found} of the {total} images of the {split} split "
            f"({rate:.0%}, below face.min_detection_rate={front_end.min_detection_rate:g}); "
            f"e.g. {', '.join(misses[:3])}. "
            "If the images are already face crops, use face=none; to keep photos without a detected face as whole "
            "images, use face.on_miss=whole."
        )
    return rate
