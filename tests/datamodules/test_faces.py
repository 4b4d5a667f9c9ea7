"""The face front end: image modes, the aligner, dlib on ORL faces pasted into photos at known placements, the
per-file crop cache, the datamodule's detection-rate stop, and the error when the `faces` extra is missing."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.faces.frontend import FaceFrontEnd, NoFace
from datamodules.faces.loader import FaceLoader
from datamodules.faces.registry import front_end_from_spec
from datamodules.images import BadImage, align_to_template, as_array, open_image, read_image, resize, template_points
from datamodules.sources.folder import FolderDataModule
from datamodules.sources.pasted import background, paste
from metric.errors import ConfigError
from tests.conftest import ORL

SIZE = (64, 64)
IDENTITIES = [f"s{i}" for i in range(1, 7)]  # 6 ORL identities x 4 images: 24 photos
IMAGES = [f"{j}.pgm" for j in range(1, 5)]


def require(condition: bool, what: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {what}")
        pytest.skip(what)


def require_orl() -> None:
    require(ORL.is_dir(), f"the ORL faces are not at {ORL}")


@pytest.fixture(scope="module")
def front_end():
    """One DlibFaces (its model files load once) for the module: hog, upsample 1, margin 0.1, on_miss skip."""
    require(
        importlib.util.find_spec("dlib") is not None
        and importlib.util.find_spec("face_recognition_models") is not None,
        "the faces extra (dlib, face-recognition-models) is not installed",
    )
    from datamodules.faces.dlib_faces import DlibFaces

    return DlibFaces()


def noise(size: tuple[int, int], seed: int = 0, mode: str = "L") -> Image.Image:
    """Uniform noise: no detector finds a face in it."""
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode)


def two_faces(seed: int = 0) -> Image.Image:
    """A 480 x 300 photo with ORL s1/1 large on the left (scale 2) and s2/1 smaller on the right (scale 1.3)."""
    photo = background(np.random.default_rng(seed), 480).crop((0, 0, 480, 300))
    for name, scale, at in (("s1/1.pgm", 2.0, (20, 40)), ("s2/1.pgm", 1.3, (300, 80))):
        face = open_image(ORL / name, 3)
        photo.paste(face.resize((round(face.width * scale), round(face.height * scale)), Image.Resampling.BICUBIC), at)
    return photo


@pytest.fixture(scope="module")
def pasted(tmp_path_factory, front_end):
    """ORL faces pasted (seeded) into 480 x 480 photos, written as a <root>/<identity>/<image>.png tree, and each
    photo and its original through a FaceLoader (grey, 64 x 64) whose cache the datamodule tests reuse."""
    require_orl()
    base = tmp_path_factory.mktemp("pasted")
    root, cache = base / "photos", base / "cache"
    rng = np.random.default_rng(0)
    loader = FaceLoader(front_end, 1, SIZE, cache)
    rows = []
    for identity in IDENTITIES:
        (root / identity).mkdir(parents=True)
        for name in IMAGES:
            source = ORL / identity / name
            photo, placement = paste(open_image(source, 3), rng)
            path = root / identity / f"{Path(name).stem}.png"
            photo.save(path, format="PNG", compress_level=1)
            rows.append(
                {
                    "source": source,
                    "photo": path,
                    "affine": np.array(placement["affine"]),
                    "scale": placement["scale"],
                    "original": front_end.crop(open_image(source, 1), SIZE),
                    "pasted": loader.load(path),
                }
            )
    return {"root": root, "cache": cache, "rows": rows}


# 1. image modes -------------------------------------------------------------------------------------------------
def save(image: Image.Image, path: Path, **kw) -> Path:
    image.save(path, **kw)
    return path


def test_palette_png_is_expanded(tmp_path):
    image = Image.new("P", (4, 2))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 0, 1, 1, 0, 0, 1, 1])
    path = save(image, tmp_path / "p.png")
    rgb = read_image(path, 3)
    assert rgb.shape == (2, 4, 3)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 2]) == (0, 0, 255)
    grey = read_image(path, 1)
    assert grey.shape == (2, 4, 1) and grey[0, 0, 0] == 76 and grey[0, 2, 0] == 29  # ITU-R 601 luma of red, blue


def test_palette_transparency_is_composited_onto_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.putdata([0, 1])
    path = save(image, tmp_path / "pt.png", transparency=0)  # index 0 (black) is transparent
    rgb = read_image(path, 3)
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 1]) == (10, 200, 30)
    assert read_image(path, 1)[0, 0, 0] == 255


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535, 16384]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I")
    grey = read_image(path, 1)[0, :, 0]
    assert grey.tolist() == [0, 128, 255, 64]
    rgb = read_image(path, 3)
    assert rgb.shape == (1, 4, 3) and (rgb[0, 1] == 128).all()


def test_rgba_and_la_transparent_pixels_become_white(tmp_path):
    rgba = np.array([[[200, 10, 10, 255], [0, 0, 0, 0], [0, 100, 0, 128]]], dtype=np.uint8)
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png")
    rgb = read_image(path, 3)
    assert tuple(rgb[0, 0]) == (200, 10, 10) and tuple(rgb[0, 1]) == (255, 255, 255)
    assert abs(int(rgb[0, 2, 0]) - 127) <= 1 and abs(int(rgb[0, 2, 1]) - 177) <= 1  # half-transparent: halfway to white
    assert read_image(path, 1)[0, 1, 0] == 255
    la = np.array([[[40, 255], [40, 0]]], dtype=np.uint8)
    path = save(Image.fromarray(la, "LA"), tmp_path / "la.png")
    assert read_image(path, 1)[0, :, 0].tolist() == [40, 255]
    assert read_image(path, 3)[0].tolist() == [[40, 40, 40], [255, 255, 255]]


def truncated_png() -> bytes:
    import io

    buffer = io.BytesIO()
    smooth_image((64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()[:200]


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n this is not really a png", b"", "truncated", None],
    ids=["corrupt", "empty", "truncated", "missing"],
)
def test_unreadable_files_are_bad_image_naming_the_path(tmp_path, content):
    path = tmp_path / "photo.png"
    if content is not None:
        path.write_bytes(truncated_png() if content == "truncated" else content)
    for channels in (1, 3):
        with pytest.raises(BadImage, match="cannot be read as an image") as error:
            open_image(path, channels)
        assert str(path) in str(error.value)


def test_decompression_bomb_is_a_bad_image(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = tmp_path / "bomb.png"  # a 20000 x 20000 header (400 Mpixel, over PIL's 179 Mpixel refusal) in 60 bytes
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(BadImage):
        open_image(path, 1)


# 2. the aligner -------------------------------------------------------------------------------------------------
def smooth_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (6, 6), dtype=np.uint8)
    return Image.fromarray(grid).resize((size[1], size[0]), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("margin,rows", [(0.0, (0, 1, 2, 3, 4)), (0.1, (0, 1, 2)), (0.3, (0, 1, 2))])
def test_landmarks_on_the_template_give_the_identity(margin, rows):
    image = smooth_image((48, 40))
    aligned = align_to_template(image, template_points((48, 40), margin, rows), (48, 40), margin, rows)
    assert aligned.size == image.size
    diff = np.abs(np.asarray(aligned, float) - np.asarray(image, float))
    assert diff[:-1, :-1].max() <= 1  # the last row and column sample past the edge


def test_margin_shrinks_the_template_toward_the_centre():
    tight, loose = template_points((100, 100)), template_points((100, 100), 0.25)
    centre = np.array([50, 50])
    np.testing.assert_allclose(loose - centre, (tight - centre) / 1.5, atol=1e-9)  # 1 + 2 * margin
    assert (np.linalg.norm(loose - centre, axis=1) < np.linalg.norm(tight - centre, axis=1)).all()
    zoomed = template_points((100, 100), -0.2)  # a negative margin zooms in on the inner face
    np.testing.assert_allclose(zoomed - centre, (tight - centre) / 0.6, atol=1e-9)
    np.testing.assert_allclose(template_points((100, 100), rows=(2,)), tight[[2]])
    np.testing.assert_allclose(template_points((50, 100))[:, 1], tight[:, 1] / 2)  # (H, W): y scales with H


def test_alignment_undoes_a_known_placement():
    """Landmarks of a face mapped through the paste affine: aligning the photo gives the face back."""
    require_orl()
    face = open_image(ORL / "s3" / "2.pgm", 3)
    size = (face.height, face.width)
    points = template_points(size, 0.0)
    photo, placement = paste(face, np.random.default_rng(1), scale=(2.0, 2.0), max_rotation=25)
    affine = np.array(placement["affine"])
    back = align_to_template(photo, points @ affine[:, :2].T + affine[:, 2], size)
    error = np.abs(np.asarray(back.convert("L"), float) - np.asarray(face.convert("L"), float))[4:-4, 4:-4]
    assert error.mean() < 4


@pytest.mark.parametrize("margin", [-0.3, 1.0, 1.5])
def test_margin_outside_its_range_is_a_config_error(margin):
    with pytest.raises(ConfigError, match="face.margin"):
        template_points((64, 64), margin)
    with pytest.raises(ConfigError, match="face.margin"):
        align_to_template(smooth_image((8, 8)), template_points((8, 8)), (8, 8), margin)


# 3. dlib on pasted ORL faces ---------------------------------------------------------------------------------
def test_dlib_finds_pasted_faces_and_their_landmarks(pasted, front_end):
    from datamodules.faces.dlib_faces import TEMPLATE_ROWS

    rows = pasted["rows"]
    found = [r for r in rows if r["pasted"].found]
    assert len(found) / len(rows) >= 0.95
    assert all(r["pasted"].faces == 1 and r["pasted"].image.shape == (*SIZE, 1) for r in found)
    both = [r for r in found if r["original"].found]
    assert len(both) >= 0.8 * len(rows)
    errors, maes = [], []
    for r in both:
        original = np.array(r["original"].landmarks)
        mapped = original @ r["affine"][:, :2].T + r["affine"][:, 2]
        errors.append(np.linalg.norm(np.array(r["pasted"].landmarks) - mapped, axis=1).mean() / r["scale"])
        inside = align_to_template(
            Image.new("L", open_image(r["source"], 1).size, 255), original, SIZE, front_end.margin, TEMPLATE_ROWS
        )
        mask = np.asarray(inside) == 255
        diff = np.abs(r["pasted"].image[..., 0].astype(float) - r["original"].image[..., 0].astype(float))
        maes.append(diff[mask].mean())
    assert np.median(errors) < 3  # original pixels (measured ~0.6)
    assert np.median(maes) < 10  # grey levels (measured ~5)
    # the box is where the face was pasted: the mapped landmarks lie inside it
    r = both[0]
    x0, y0, x1, y1 = r["pasted"].box
    mapped = np.array(r["original"].landmarks) @ r["affine"][:, :2].T + r["affine"][:, 2]
    assert ((mapped[:, 0] > x0) & (mapped[:, 0] < x1) & (mapped[:, 1] > y0) & (mapped[:, 1] < y1)).all()


# 4. no face, too small, several faces -------------------------------------------------------------------------
def test_noise_has_no_face_and_a_tiny_image_is_too_small(front_end):
    miss = front_end.crop(noise((160, 160)), SIZE)
    assert (miss.found, miss.faces, miss.image, miss.reason) == (False, 0, None, "no face")
    tiny = front_end.crop(noise((20, 20)), SIZE)
    assert not tiny.found and tiny.image is None
    assert tiny.reason.startswith("too small") and "20x20" in tiny.reason and "face.upsample=1" in tiny.reason


def test_several_faces_the_largest_is_used_and_all_faces_gives_each(front_end):
    require_orl()
    photo = two_faces().convert("L")
    largest = front_end.crop(photo, SIZE)
    assert largest.found and largest.faces == 2 and largest.others == []
    assert (largest.box[0] + largest.box[2]) / 2 < 240  # the scale-2 face on the left
    every = front_end.crop(photo, SIZE, all_faces=True)
    assert every.faces == 2 and len(every.others) == 1
    np.testing.assert_array_equal(every.image, largest.image)
    other = every.others[0]
    assert other.found and other.image.shape == (*SIZE, 1) and (other.box[0] + other.box[2]) / 2 > 300
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    assert area(every.box) > area(other.box)
    assert np.abs(other.image.astype(float) - every.image.astype(float)).mean() > 5  # two faces, two crops


def test_a_large_photo_is_detected_on_a_smaller_copy_and_aligned_at_full_size(front_end, monkeypatch):
    require_orl()
    photo = two_faces().convert("L")
    full = front_end.crop(photo, SIZE)
    monkeypatch.setattr(front_end, "max_side", 320)  # 480 x 300 -> detected at 320 x 200
    small = front_end.crop(photo, SIZE)
    assert small.found
    centre = lambda box: np.array([box[0] + box[2], box[1] + box[3]]) / 2  # noqa: E731
    assert np.abs(centre(small.box) - centre(full.box)).max() < 12  # in the photo's pixels, not the copy's
    assert 0.7 < (small.box[2] - small.box[0]) / (full.box[2] - full.box[0]) < 1.4
    np.testing.assert_allclose(small.landmarks, full.landmarks, atol=3)  # found in the full-size photo
    assert np.abs(small.image.astype(float) - full.image.astype(float)).mean() < 5


# 5. the per-file crop cache ---------------------------------------------------------------------------------
def cache_files(loader: FaceLoader) -> list[Path]:
    return sorted(p for p in loader.cache.rglob("*") if p.is_file())


def test_crops_are_cached_per_file_and_misses_too(tmp_path, front_end, monkeypatch):
    require_orl()
    face = tmp_path / "face.pgm"
    face.write_bytes((ORL / "s1" / "1.pgm").read_bytes())
    empty = save(noise((120, 120)), tmp_path / "noise.png")
    loader = FaceLoader(front_end, 1, SIZE, tmp_path / "cache")
    first, miss = loader.load(face), loader.load(empty)
    assert first.found and miss.reason == "no face"
    files = cache_files(loader)
    assert sorted(p.suffix for p in files) == [".json", ".json", ".png"]  # the miss has its JSON only
    png = next(p for p in files if p.suffix == ".png")
    assert json.loads(png.with_suffix(".json").read_text())["landmarks"] is not None

    def no_detection(*args, **kwargs):
        raise AssertionError("detected again instead of reading the cache")

    monkeypatch.setattr(front_end, "crop", no_detection)
    again = FaceLoader(front_end, 1, SIZE, tmp_path / "cache").load(face)
    np.testing.assert_array_equal(again.image, first.image)
    assert (again.faces, again.box, again.landmarks, again.reason) == (first.faces, first.box, first.landmarks, None)
    assert loader.load(empty).reason == "no face"
    with pytest.raises(AssertionError, match="detected again"):  # a changed file is a new entry
        face.write_bytes((ORL / "s1" / "2.pgm").read_bytes())
        os.utime(face, ns=(1, 1))
        loader.load(face)


def test_cache_folder_follows_the_settings(tmp_path, front_end):
    from datamodules.faces.dlib_faces import DlibFaces

    folder = lambda fe, channels=1, size=SIZE: FaceLoader(fe, channels, size, tmp_path).cache  # noqa: E731
    assert folder(front_end) == folder(front_end) and folder(front_end).parent == tmp_path
    assert folder(DlibFaces(margin=0.2)) != folder(front_end)
    assert folder(front_end, channels=3) != folder(front_end)
    assert folder(front_end, size=(32, 32)) != folder(front_end)
    assert FaceLoader(FaceFrontEnd(), 1, SIZE, tmp_path).cache is None  # face=none: nothing to cache


def test_on_miss_whole_and_load_face(tmp_path, front_end, monkeypatch):
    empty = save(noise((120, 100)), tmp_path / "noise.png")
    loader = FaceLoader(front_end, 1, SIZE)
    assert loader.load(empty).image is None  # on_miss=skip
    with pytest.raises(NoFace) as error:
        loader.load_face(empty)
    assert str(empty) in str(error.value) and "no face" in str(error.value) and "--no-detect" in str(error.value)
    monkeypatch.setattr(front_end, "on_miss", "whole")
    whole = loader.load(empty)
    assert not whole.found and whole.reason == "no face"
    np.testing.assert_array_equal(whole.image, as_array(resize(open_image(empty, 1), SIZE)))
    with pytest.raises(NoFace, match="--no-detect"):  # whatever on_miss says
        loader.load_face(empty)


def test_face_none_only_resizes(tmp_path):
    path = save(smooth_image((50, 30)), tmp_path / "crop.png")
    crop = FaceLoader(FaceFrontEnd(), 1, SIZE, tmp_path / "cache").load_face(path)
    assert crop.found and crop.faces == -1 and crop.box is None
    np.testing.assert_array_equal(crop.image, read_image(path, 1, SIZE))
    assert not (tmp_path / "cache").exists()


# 6. the datamodule ------------------------------------------------------------------------------------------------
def folder_datamodule(root: Path, out: Path, cache: Path | None, face, **kw) -> FolderDataModule:
    args = dict(
        root=str(root),
        image_size=SIZE,
        channels=1,
        split="ordered",
        split_counts=[2, 2, 2],
        batch_identities=2,
        batch_images_per_identity=2,
        cache_dir=str(cache) if cache else None,
        bad_files_report=str(out / "bad_files.txt"),
        face=face,
    )
    args.update(kw)
    return FolderDataModule(**args)


def test_datamodule_skips_and_lists_photos_without_a_face(pasted, front_end, tmp_path, capsys):
    root = pasted["root"]
    faceless = save(noise((150, 150), seed=3), root / "s1" / "zz_noise.png")
    try:
        dm = folder_datamodule(root, tmp_path / "run", pasted["cache"], front_end)
        dm.setup()
        found = {str(r["photo"]) for r in pasted["rows"] if r["pasted"].found}
        assert set(dm.splits["train"].sources) | set(dm.splits["val"].sources) | set(dm.splits["test"].sources) == found
        listed = (tmp_path / "run" / "bad_files.txt").read_text()
        assert f"{faceless}: no face" in listed
        assert f"{len(pasted['rows']) + 1 - len(found)} without a face" in capsys.readouterr().out
        assert dm.notes["face_detection_rate_train"] == round(
            sum(r["pasted"].found for r in pasted["rows"] if r["photo"].parent.name in ("s1", "s2")) / 9, 4
        )
        assert dm.notes["face_detection_rate_train"] < 1
        assert {"face_detection_rate_val", "face_detection_rate_test"} <= set(dm.notes)
        assert dm.preprocessing["face"] == {"name": "dlib", **front_end.spec()}
        assert dm.splits["train"].images.shape[1:] == (*SIZE, 1)
        assert {e["split"] for e in dm.face_log} == {"train", "val", "test"} and len(dm.face_log) == 25
        # the split cache keeps the detections, the rates and the bad files; its key includes the front end
        again = folder_datamodule(root, tmp_path / "again", pasted["cache"], front_end)
        again.setup("test")
        assert again.notes["face_detection_rate_train"] == dm.notes["face_detection_rate_train"]
        assert json.dumps(again.face_log) == json.dumps(dm.face_log) and again.bad_files == dm.bad_files
        np.testing.assert_array_equal(again.splits["test"].images, dm.splits["test"].images)
        assignment = {"train": dm.scan()}
        plain = folder_datamodule(root, tmp_path / "plain", pasted["cache"], None)
        assert plain.cache_path(assignment) != dm.cache_path(assignment)
    finally:
        faceless.unlink()


def faceless_tree(root: Path, size: tuple[int, int]) -> Path:
    for i in range(6):
        (root / f"person{i}").mkdir(parents=True)
        for j in range(2):
            save(noise(size, seed=10 * i + j), root / f"person{i}" / f"{j}.png")
    return root


@pytest.mark.parametrize("size", [(24, 24), (90, 90)], ids=["tiny", "noise"])
def test_a_split_without_faces_stops_at_setup(tmp_path, front_end, size, monkeypatch):
    root = faceless_tree(tmp_path / "faceless", size)
    with pytest.raises(ConfigError) as error:
        folder_datamodule(root, tmp_path / "run", None, front_end).setup()
    message = str(error.value)
    assert "found a face in only 0 of the 4 images of the train split" in message
    assert "face=none" in message and "face.on_miss=whole" in message and "min_detection_rate" in message
    assert str(root / "person0") in message
    monkeypatch.setattr(front_end, "on_miss", "whole")
    dm = folder_datamodule(root, tmp_path / "run", None, front_end)
    dm.setup()
    assert len(dm.splits["train"].labels) == 4 and dm.bad_files == []
    assert dm.notes["face_detection_rate_train"] == 0
    np.testing.assert_array_equal(dm.splits["train"].images[0], read_image(root / "person0" / "0.png", 1, SIZE))


def test_a_stricter_detection_rate_applies_to_a_cached_split(pasted, front_end, tmp_path, monkeypatch):
    faceless = save(noise((150, 150), seed=4), pasted["root"] / "s1" / "zz_noise.png")
    try:
        folder_datamodule(pasted["root"], tmp_path / "run", pasted["cache"], front_end).setup("test")  # 8 of 9: passes
        monkeypatch.setattr(front_end, "min_detection_rate", 0.95)
        with pytest.raises(ConfigError, match="min_detection_rate=0.95"):
            folder_datamodule(pasted["root"], tmp_path / "run", pasted["cache"], front_end).setup("test")
    finally:
        faceless.unlink()


def test_the_face_group_configures_the_datamodule(tmp_path, data_dir, front_end):
    from metric.config_factory import build_from_config
    from tests.conftest import compose_train

    default = compose_train([], tmp_path, data_dir)
    assert type(build_from_config(default.datamodule).face) is FaceFrontEnd
    cfg = compose_train(["face=dlib", "face.margin=0.3", "face.on_miss=whole"], tmp_path, data_dir)
    face = build_from_config(cfg.datamodule).face
    assert face.spec() == {**front_end.spec(), "margin": 0.3} and face.on_miss == "whole"


# 7. without the faces extra ---------------------------------------------------------------------------------
def test_missing_model_package_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **kw: None if name == "face_recognition_models" else real(name, *a, **kw),
    )
    from datamodules.faces.dlib_faces import DlibFaces

    with pytest.raises(ConfigError) as error:
        DlibFaces()
    assert "pip install" in str(error.value) and ".[faces]" in str(error.value)


def test_missing_dlib_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    from datamodules.faces.dlib_faces import DlibFaces

    with pytest.raises(ConfigError, match=r"needs dlib.*pip install.*\.\[faces\]"):
        DlibFaces()
    with pytest.raises(ConfigError, match="pip install"):  # from a checkpoint's record too
        front_end_from_spec({"name": "dlib", "margin": 0.1})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"detector": "mtcnn"}, "face.detector"),
        ({"upsample": 4}, "face.upsample"),
        ({"upsample": True}, "face.upsample"),
        ({"margin": 1.0}, "face.margin"),
        ({"margin": -0.3}, "face.margin"),
        ({"max_side": 50}, "face.max_side"),
        ({"on_miss": "drop"}, "face.on_miss"),
        ({"min_detection_rate": 1.5}, "face.min_detection_rate"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, message):
    from datamodules.faces.dlib_faces import DlibFaces

    with pytest.raises(ConfigError, match=message):
        DlibFaces(**kwargs)


def test_front_end_from_spec():
    assert front_end_from_spec(None).spec() == {"name": "none"}
    assert front_end_from_spec({"name": "none"}).active is False
    assert front_end_from_spec({"name": "mtcnn"}).name == "mtcnn"
    with pytest.raises(ConfigError, match="'retinaface'.*upgrade"):  # a front end a newer version may record
        front_end_from_spec({"name": "retinaface"})


def test_cnn_detector_finds_a_face():
    """face.detector=cnn: dlib's MMOD CNN, from the model file face-recognition-models ships."""
    require_orl()
    from datamodules.faces.dlib_faces import DlibFaces

    crop = DlibFaces(detector="cnn", upsample=0).crop(two_faces(seed=2), SIZE, all_faces=True)
    assert crop.found and crop.faces == 2 and crop.image.shape[:2] == SIZE


def test_exif_orientation_is_applied(tmp_path):
    """A phone's portrait photo is stored sideways with EXIF Orientation=6: it is read upright."""
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(tmp_path / "portrait.jpg", exif=exif)
    assert open_image(tmp_path / "portrait.jpg", 3).size == (20, 40)


def test_dlib_template_reproduces_dlibs_own_face_chip():
    """face.template=dlib, margin 0, 150x150 gives the chip dlib.get_face_chip cuts (padding 0.25): the input its
    face-recognition ResNet expects."""
    require_orl()
    import dlib

    from datamodules.faces.dlib_faces import LANDMARKS, DlibFaces, models_dir

    photo, _ = paste(open_image(ORL / "s3" / "1.pgm", 3), np.random.default_rng(3), canvas=300, scale=(2.0, 2.0))
    ours = DlibFaces(template="dlib", margin=0.0).crop(photo, (150, 150))
    pixels = np.asarray(photo)
    box = dlib.rectangle(*(int(round(v)) for v in ours.box))
    shape = dlib.shape_predictor(str(models_dir() / LANDMARKS))(pixels, box)
    theirs = dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
    assert np.abs(ours.image.astype(float) - theirs.astype(float)).mean() < 12
    arcface = DlibFaces(margin=0.0).crop(photo, (150, 150))  # the other layout is far from it
    assert np.abs(arcface.image.astype(float) - theirs.astype(float)).mean() > 20
