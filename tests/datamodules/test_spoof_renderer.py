"""Simulated presentation attacks: shapes, determinism, and that each physical effect is really there."""

import numpy as np
import pytest
from PIL import Image

from datamodules.sources.spoof_renderer import render_capture, render_illumination, render_print, render_replay
from tests.conftest import ORL

RENDERERS = [render_print, render_replay, lambda image, rng: render_illumination(image, 3, rng), render_capture]
SHAPES = [(112, 92, 1), (64, 64, 3)]


def random_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth random uint8 image of the given shape."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (shape[0] // 8 + 1, shape[1] // 8 + 1, shape[2])).astype(np.float32)
    return np.kron(coarse, np.ones((8, 8, 1)))[: shape[0], : shape[1]].astype(np.uint8)


def colour_gradient(size: int = 128) -> np.ndarray:
    """A saturated RGB gradient: red-blue across, green down."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    return (np.stack([xx, yy, 1 - xx], axis=-1) * 255).astype(np.uint8)


def chroma(image: np.ndarray) -> float:
    """Mean chroma (max minus min channel) of an RGB image."""
    rgb = image.astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())


def peak_ratio(image: np.ndarray) -> float:
    """Largest non-DC FFT magnitude of the central crop over the median, lowest 3 frequency bins excluded."""
    h, w = image.shape[:2]
    crop = image[h // 4 : h - h // 4, w // 4 : w - w // 4, 0].astype(np.float64)
    crop = (crop - crop.mean()) * np.outer(np.hanning(crop.shape[0]), np.hanning(crop.shape[1]))
    mag = np.abs(np.fft.fft2(crop))
    fy = np.fft.fftfreq(crop.shape[0])[:, None] * crop.shape[0]
    fx = np.fft.fftfreq(crop.shape[1])[None, :] * crop.shape[1]
    band = np.hypot(fy, fx) >= 3
    return float(mag[band].max() / (np.median(mag[band]) + 1e-9))


def darkest_side(image: np.ndarray) -> float:
    """Mean of the darkest of the four outermost one-pixel lines."""
    return float(min(image[0].mean(), image[-1].mean(), image[:, 0].mean(), image[:, -1].mean()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("render", RENDERERS)
def test_shape_dtype_determinism_and_input_untouched(render, shape):
    image = random_image(shape)
    before = image.copy()
    out = render(image, np.random.default_rng(3))
    assert out.shape == shape and out.dtype == np.uint8
    assert np.array_equal(image, before)
    assert np.array_equal(out, render(image, np.random.default_rng(3)))
    assert not np.array_equal(out, render(image, np.random.default_rng(4)))
    assert not np.array_equal(out, image)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32, 3), np.float32),
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((4, 4, 1), np.uint8),
        [[1, 2]],
    ],
)
def test_wrong_input_raises(bad):
    for render in (render_print, render_replay):
        with pytest.raises(ValueError, match="uint8 array of shape"):
            render(bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8 array of shape"):
        render_illumination(bad, 1, np.random.default_rng(0))


def test_print_loses_saturation_and_dynamic_range():
    colourful = colour_gradient()
    ramp = np.tile(np.arange(256, dtype=np.uint8), (32, 1))[..., None]
    span = np.percentile(ramp, 99) - np.percentile(ramp, 1)
    for seed in range(5):
        assert chroma(render_print(colourful, np.random.default_rng(seed))) < 0.85 * chroma(colourful)
        out = render_print(ramp, np.random.default_rng(seed))
        assert np.percentile(out, 99) - np.percentile(out, 1) < 0.95 * span


def test_replay_shows_moire_peak_on_flat_input():
    flat = np.full((128, 128, 1), 128, np.uint8)
    assert not np.any(np.fft.fft2(flat[..., 0] - 128.0))  # the input itself has no structure at all
    replay = np.median([peak_ratio(render_replay(flat, np.random.default_rng(s))) for s in range(8)])
    printed = np.median([peak_ratio(render_print(flat, np.random.default_rng(s))) for s in range(8)])
    assert replay > 30 and replay > 3 * printed


def test_replay_bezel_sometimes():
    bright = np.full((64, 64, 3), 200, np.uint8)
    sides = [darkest_side(render_replay(bright, np.random.default_rng(s))) for s in range(20)]
    assert min(sides) < 40 and max(sides) > 120


def test_replay_colour_cast_is_cool():
    out = render_replay(np.full((64, 64, 3), 160, np.uint8), np.random.default_rng(1)).astype(np.float32)
    assert out[..., 2].mean() > out[..., 0].mean()


def test_illumination_kinds():
    grey = np.full((64, 64, 1), 128, np.uint8)
    same = render_illumination(grey, 0, np.random.default_rng(0))
    assert same is not grey and np.array_equal(same, grey)
    for seed in range(3):
        means = {k: render_illumination(grey, k, np.random.default_rng(seed)).mean() for k in (1, 2, 4)}
        assert means[4] < means[1] < means[2]
    lit = render_illumination(np.full((64, 64, 3), 128, np.uint8), 3, np.random.default_rng(0)).astype(np.float32)
    border = np.concatenate([lit[:8].ravel(), lit[-8:].ravel(), lit[:, :8].ravel(), lit[:, -8:].ravel()])
    assert lit[24:40, 24:40].mean() < border.mean() - 20


@pytest.mark.parametrize("kind", [-1, 5, 2.0, "1", True])
def test_illumination_invalid_kind(kind):
    with pytest.raises(ValueError, match="allowed codes"):
        render_illumination(np.zeros((16, 16, 1), np.uint8), kind, np.random.default_rng(0))


@pytest.mark.skipif(not (ORL / "s1" / "1.pgm").exists(), reason="ORL faces not present")
def test_real_orl_face():
    face = np.asarray(Image.open(ORL / "s1" / "1.pgm"))[..., None]
    assert face.shape == (112, 92, 1)
    for out in (
        render_print(face, np.random.default_rng(0)),
        render_replay(face, np.random.default_rng(0)),
        *(render_illumination(face, k, np.random.default_rng(0)) for k in range(1, 5)),
    ):
        assert out.shape == face.shape and out.dtype == np.uint8
        assert out.std() > 10 and np.abs(out.astype(int) - face).mean() > 1


def lfw_like_tree(root, people: int = 12, photos: int = 3):
    """An LFW-layout colour tree (<root>/<First_Last>/<First_Last>_<0001>.jpg), 250x250 like LFW's photos."""
    for p in range(people):
        name = f"Person_{p:03d}"
        (root / name).mkdir(parents=True)
        for i in range(1, photos + 1):
            Image.fromarray(colour_gradient(250)[..., :: (1 if (p + i) % 2 else -1)]).save(
                root / name / f"{name}_{i:04d}.jpg"
            )
    return root


def test_colour_attacks_render_from_an_lfw_tree_deterministically_and_identity_disjoint(tmp_path):
    """Issue 31, part 4: print and replay attacks rendered in colour from LFW's layout (datamodule=simulated_spoof
    datamodule.root=<lfw-deepfunneled> datamodule.channels=3): the same seed renders the same pixels, another seed
    other ones, and no person is in two splits."""
    from datamodules.sources.simulated_spoof import SimulatedSpoofDataModule

    root = lfw_like_tree(tmp_path / "lfw-deepfunneled")

    def splits(seed: int):
        dm = SimulatedSpoofDataModule(root=str(root), image_size=(48, 48), channels=3, seed=seed)
        dm.setup("fit")
        return dm.splits

    first, again = splits(0), splits(0)
    for name in ("train", "val", "test"):
        assert np.array_equal(first[name].images, again[name].images)
    people = {name: {s.split("/")[-2] for s in split.sources} for name, split in first.items()}
    assert not (people["train"] & people["val"] or people["train"] & people["test"] or people["val"] & people["test"])
    attacks = [i for i, f in enumerate(first["train"].factors) if f["spoof"]]
    assert chroma(first["train"].images[attacks[0]]) > 0  # colour kept through the renderer
    renders = []
    for seed in (0, 1):  # the same photo's print attack under two seeds: the seed draws the render
        dm = SimulatedSpoofDataModule(root=str(root), image_size=(48, 48), channels=3, seed=seed)
        record = next(r for r in dm.presentations(dm.scan()[0]) if r.factors["spoof"])
        renders.append(dm.decode(record))
    assert not np.array_equal(*renders)


def test_capture_style_draws_a_camera_for_every_presentation_live_included(tmp_path):
    """Issue 31, part 4 (style augmentation): with datamodule.capture_style=true every presentation, live ones too, gets
    its own seeded camera style, so blur, noise and JPEG no longer mark an attack; off, the renders are as before."""
    from datamodules.sources.simulated_spoof import SimulatedSpoofDataModule

    root = lfw_like_tree(tmp_path / "lfw-deepfunneled")

    def decoded(capture_style: bool) -> list[np.ndarray]:
        dm = SimulatedSpoofDataModule(
            root=str(root), image_size=(48, 48), channels=3, seed=0, capture_style=capture_style
        )
        return [dm.decode(r) for r in dm.presentations(dm.scan()[0])]

    plain, styled, again = decoded(False), decoded(True), decoded(True)
    assert all(np.array_equal(a, b) for a, b in zip(styled, again))  # deterministic per seed
    assert all(not np.array_equal(a, b) for a, b in zip(plain, styled))  # the live photo too
    base = SimulatedSpoofDataModule(root=str(root), image_size=(48, 48), channels=3, seed=0)
    assert all(np.array_equal(a, base.decode(r)) for a, r in zip(plain, base.presentations(base.scan()[0])))


def test_capture_style_is_a_boolean(tmp_path):
    from datamodules.sources.simulated_spoof import SimulatedSpoofDataModule
    from metric.errors import ConfigError

    with pytest.raises(ConfigError, match="capture_style='yes' must be true or false"):
        SimulatedSpoofDataModule(root=str(tmp_path), capture_style="yes")


def test_centre_crop_keeps_the_middle_of_the_photo_before_rendering(tmp_path):
    """Issue 31, part 4 (crop context): datamodule.centre_crop=0.5 renders on the central half of each frame (LFW's
    face), 1.0 on the whole frame with its background."""
    from datamodules.sources.simulated_spoof import SimulatedSpoofDataModule, centre_crop
    from metric.errors import ConfigError

    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    assert np.array_equal(centre_crop(image, 1.0), image)
    assert np.array_equal(centre_crop(image, 0.5), image[25:75, 20:60])
    root = lfw_like_tree(tmp_path / "lfw-deepfunneled")
    whole = SimulatedSpoofDataModule(root=str(root), image_size=(48, 48), channels=3, seed=0)
    tight = SimulatedSpoofDataModule(root=str(root), image_size=(48, 48), channels=3, seed=0, centre_crop=0.5)
    live = whole.presentations(whole.scan()[0])[0]
    assert not np.array_equal(whole.decode(live), tight.decode(live))
    assert tight.preprocess_settings()["centre_crop"] == 0.5 and "centre_crop" not in whole.preprocess_settings()
    with pytest.raises(ConfigError, match="centre_crop=0.1 must lie in"):
        SimulatedSpoofDataModule(root=str(root), centre_crop=0.1)


def test_a_test_only_set_puts_every_person_in_test_and_refuses_training(tmp_path):
    """Issue 31, part 4 (cross-dataset protocol): split_fractions=[0,0,1] makes a whole dataset the test split, for
    metric.evaluate; training on it is refused in one line naming the key."""
    from datamodules.sources.simulated_spoof import SimulatedSpoofDataModule
    from metric.errors import ConfigError

    root = lfw_like_tree(tmp_path / "lfw-deepfunneled")

    def make() -> SimulatedSpoofDataModule:
        return SimulatedSpoofDataModule(
            root=str(root),
            image_size=(32, 32),
            channels=3,
            seed=0,
            split_fractions=[0.0, 0.0, 1.0],
            cache_dir=str(tmp_path / "cache"),
        )

    evaluated = make()
    evaluated.setup("test")
    assert evaluated.splits["test"].num_identities == 12 and len(evaluated.splits["test"].images) == 12 * 3 * 3
    assert not len(evaluated.splits["train"].images) and not len(evaluated.splits["val"].images)
    with pytest.raises(
        ConfigError,
        match=r"the train split is empty.*split_fractions=\[0.0,0.0,1.0\].*evaluate only\): give it a share",
    ):
        make().setup("fit")
