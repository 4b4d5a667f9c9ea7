"""Simulated presentation attacks (paper print, screen replay), capture illumination and camera style, from live
faces."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
ILLUMINATION_CODES = {0: "none", 1: "normal", 2: "strong", 3: "back light", 4: "dark"}
BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=np.float32)
SCREEN_ANGLES = (np.pi / 12, 5 * np.pi / 12, np.pi / 4)  # 15, 75 and 45 degrees, as the C, M, Y screens of a press


def _check(image: np.ndarray, name: str) -> None:
    """Raise ValueError unless image is a uint8 (H, W, 1) or (H, W, 3) array of at least 8 x 8 pixels."""
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] not in (1, 3)
        or min(image.shape[:2]) < 8
    ):
        got = f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} expects a uint8 array of shape (H, W, 1) or (H, W, 3) with H, W >= 8; got {got}")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> float32 RGB in [0, 1]; a grey channel is replicated three times."""
    rgb = image.astype(np.float32) / 255.0
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def _from_rgb(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Float RGB -> uint8 with the requested channel count (grey through the standard luma weights)."""
    out = rgb @ LUMA[:, None] if channels == 1 else rgb
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Float row and column index grids of an h x w image."""
    yy, xx = np.mgrid[0:h, 0:w]
    return yy.astype(np.float32), xx.astype(np.float32)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian optical blur of every channel."""
    return ndimage.gaussian_filter(rgb, sigma=(sigma, sigma, 0), mode="nearest")


def _noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive gaussian sensor noise, independent per pixel and channel."""
    return rgb + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)


def _smooth_noise(h: int, w: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance spatially correlated noise (blurred white noise), shape (H, W, 1)."""
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma, mode="wrap")
    return (field / (field.std() + 1e-8))[..., None]


def _sample(rgb: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinearly sample rgb at (ys, xs); points off the image blend softly into the fill colour."""
    mask = ndimage.map_coordinates(np.ones(rgb.shape[:2], np.float32), [ys, xs], order=1, mode="constant", cval=0.0)
    chans = [ndimage.map_coordinates(rgb[..., c], [ys, xs], order=1, mode="nearest") for c in range(3)]
    return np.stack(chans, axis=-1) * mask[..., None] + fill * (1.0 - mask[..., None]), mask


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3 x 3 projective matrix taking the four src points (x, y) onto the four dst points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def _halftone(rgb: np.ndarray, pitch: int, rng: np.random.Generator) -> np.ndarray:
    """Clustered-dot halftone: each channel thresholded by a cosine dot screen at its own angle."""
    yy, xx = _coords(*rgb.shape[:2])
    base, out = rng.uniform(0.0, np.pi / 2), np.empty_like(rgb)
    for c, offset in enumerate(SCREEN_ANGLES):
        u = xx * np.cos(base + offset) + yy * np.sin(base + offset)
        v = yy * np.cos(base + offset) - xx * np.sin(base + offset)
        screen = 0.5 + 0.25 * (np.cos(2 * np.pi * u / pitch) + np.cos(2 * np.pi * v / pitch))
        out[..., c] = rgb[..., c] > screen
    return out


def _ordered_dither(rgb: np.ndarray, pitch: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered (Bayer) dither to 2-4 levels with a pitch x pitch threshold cell at a random phase."""
    levels = int(rng.integers(2, 5))
    idx = np.arange(pitch) * 4 // pitch
    ranks = np.argsort(np.argsort(BAYER4[np.ix_(idx, idx)].ravel())).reshape(pitch, pitch)
    h, w = rgb.shape[:2]
    tiles = np.tile((ranks + 0.5) / pitch**2, (h // pitch + 2, w // pitch + 2))
    dy, dx = rng.integers(0, pitch, 2)
    thresh = tiles[dy : dy + h, dx : dx + w, None].astype(np.float32)
    return np.floor(rgb * (levels - 1) + thresh) / (levels - 1)


def _print_gamut(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink-on-paper gamut: less saturation, raised black, lowered white, a slight warm or cool cast."""
    grey = (rgb @ LUMA)[..., None]
    rgb = grey + rng.uniform(0.45, 0.8) * (rgb - grey)
    black, white = rng.uniform(0.04, 0.14), rng.uniform(0.78, 0.93)
    cast = rng.uniform(0.015, 0.06) * rng.choice([-1.0, 1.0])  # positive warm (yellowish paper), negative cool
    return (black + (white - black) * rgb) * np.array([1 + cast, 1.0, 1 - cast], np.float32)


def _perspective(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photograph a slightly tilted sheet: jitter the corners a few percent, fill around it with a flat backdrop."""
    h, w = rgb.shape[:2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    jitter = rng.uniform(0.015, 0.05)
    moved = corners + rng.uniform(-jitter, jitter, (4, 2)) * [w, h]
    m = _homography(moved, corners)  # output pixel -> position on the original sheet
    yy, xx = _coords(h, w)
    den = m[2, 0] * xx + m[2, 1] * yy + m[2, 2]
    xs = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]) / den
    ys = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]) / den
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    backdrop = np.median(border, axis=0) * rng.uniform(0.55, 1.0)
    return _sample(rgb, ys, xs, backdrop.astype(np.float32))[0]


def render_print(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simulate a face printed on paper and re-photographed (uint8 (H, W, C) in, same shape out)."""
    _check(face, "render_print")
    rgb = _to_rgb(face)
    h, w = rgb.shape[:2]
    pitch = int(rng.integers(2, 5))
    dots = _halftone(rgb, pitch, rng) if rng.random() < 0.5 else _ordered_dither(rgb, pitch, rng)
    rgb = rgb + rng.uniform(0.25, 0.6) * (dots - rgb)
    rgb = _print_gamut(rgb, rng)
    rgb = rgb * (1.0 + rng.uniform(0.01, 0.035) * _smooth_noise(h, w, rng.uniform(0.8, 2.5), rng))
    rgb = _blur(_perspective(rgb, rng), rng.uniform(0.5, 1.5))
    return _from_rgb(_noise(rgb, rng.uniform(0.004, 0.015), rng), face.shape[2])


def _pixel_grid(h: int, w: int, rng: np.random.Generator, samples: int = 4) -> np.ndarray:
    """RGB-stripe screen grid (pitch near one camera pixel, small tilt) integrated over each camera pixel's aperture."""
    pitch = 1.0 / (1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.25))  # beat period 4-20 px
    angle = np.deg2rad(rng.uniform(-4.0, 4.0))
    fill_x, fill_y, aperture = rng.uniform(0.7, 0.95), rng.uniform(0.7, 0.95), rng.uniform(0.4, 0.9)
    phase_u, phase_v = rng.uniform(0.0, 1.0, 2)
    yy, xx = _coords(h, w)
    grid = np.zeros((h, w, 3), np.float32)
    offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * aperture
    for dy in offsets:
        for dx in offsets:
            u = ((xx + dx) * np.cos(angle) + (yy + dy) * np.sin(angle)) / pitch + phase_u
            v = ((yy + dy) * np.cos(angle) - (xx + dx) * np.sin(angle)) / pitch + phase_v
            fu, lit = u - np.floor(u), (v - np.floor(v)) < fill_y
            for c in range(3):
                grid[..., c] += lit & (fu >= c / 3) & (fu < (c + fill_x) / 3)
    return grid / (grid.mean(axis=(0, 1)) + 1e-8)


def _bezel(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the displayed image to 75-92% inside a dark, slightly noisy bezel at a random offset."""
    h, w = rgb.shape[:2]
    scale = rng.uniform(0.75, 0.92)
    top, left = ((1 - scale) * n / 2 * (1 + rng.uniform(-0.4, 0.4)) for n in (h, w))
    yy, xx = _coords(h, w)
    fill = np.full(3, rng.uniform(0.01, 0.06), np.float32)
    out, screen = _sample(rgb, (yy - top) / scale, (xx - left) / scale, fill)
    return out + 0.01 * (1 - screen[..., None]) * _smooth_noise(h, w, 1.0, rng), screen


def _glare(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Soft elliptical specular highlight at a random place, size, tilt and strength, shape (H, W, 1)."""
    yy, xx = _coords(h, w)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.08, 0.3, 2) * min(h, w)
    a = rng.uniform(0.0, np.pi)
    u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / rx
    v = ((yy - cy) * np.cos(a) - (xx - cx) * np.sin(a)) / ry
    return (rng.uniform(0.1, 0.5) * np.exp(-0.5 * (u * u + v * v)))[..., None]


def render_replay(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simulate a face shown on a phone or monitor screen and re-photographed (same shape and dtype out)."""
    _check(face, "render_replay")
    rgb = _to_rgb(face)
    h, w = rgb.shape[:2]
    rgb = rgb ** np.float32(rng.uniform(1.6, 2.6) / 2.2)  # screen gamma relative to the sRGB 2.2 of the source
    cool = rng.uniform(0.02, 0.1)
    rgb = rng.uniform(0.02, 0.06) + rgb * np.array([1 - cool, 1 - cool / 3, 1.0], np.float32) * 0.94
    screen = np.ones((h, w), np.float32)
    if rng.random() < 0.5:
        rgb, screen = _bezel(rgb, rng)
    strength = rng.uniform(0.1, 0.3)
    rgb = rgb * (1.0 + strength * screen[..., None] * (_pixel_grid(h, w, rng) - 1.0))
    rgb = _blur(rgb + _glare(h, w, rng), rng.uniform(0.3, 0.8))
    return _from_rgb(_noise(rgb, rng.uniform(0.004, 0.015), rng), face.shape[2])


def _back_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light from behind the subject: a radial gain low at the centre and high at the edges, plus haze."""
    h, w = rgb.shape[:2]
    yy, xx = _coords(h, w)
    cy, cx = (0.5 + rng.uniform(-0.1, 0.1, 2)) * [h - 1, w - 1]
    r2 = (((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2)[..., None] / 2
    low, high = rng.uniform(0.35, 0.6), rng.uniform(1.1, 1.5)
    return rgb * (low + (high - low) * np.clip(r2, 0, 1)) + rng.uniform(0.05, 0.2) * r2


def render_illumination(image: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
    """Apply a CelebA-Spoof capture illumination: 0 none, 1 normal, 2 strong, 3 back light, 4 dark."""
    _check(image, "render_illumination")
    if isinstance(kind, bool) or not isinstance(kind, (int, np.integer)) or int(kind) not in ILLUMINATION_CODES:
        allowed = ", ".join(f"{k} ({name})" for k, name in ILLUMINATION_CODES.items())
        raise ValueError(f"illumination kind {kind!r} is not one of the allowed codes: {allowed}")
    if kind == 0:
        return image.copy()
    rgb = _to_rgb(image)
    if kind == 1:
        rgb = rgb * rng.uniform(0.93, 1.07)
    elif kind == 2:
        rgb = (rgb * rng.uniform(1.25, 1.6) - 0.5) * rng.uniform(1.1, 1.4) + 0.5
    elif kind == 3:
        rgb = _back_light(rgb, rng)
    else:
        rgb = _noise(rgb * rng.uniform(0.25, 0.5), rng.uniform(0.015, 0.04), rng)
    return _from_rgb(rgb, image.shape[2])


def _jpeg(rgb: np.ndarray, quality: int, channels: int) -> np.ndarray:
    """Re-encode as JPEG at quality (1-95) and decode again: the blocking and ringing of a camera's compression."""
    buffer = io.BytesIO()
    pixels = _from_rgb(rgb, channels)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    return decoded[..., None].repeat(3, axis=2) if decoded.ndim == 2 else decoded


def render_capture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random camera style applied to every presentation, live or attack, so that no camera trait of the renderer
    tells them apart: white balance, saturation (one capture in five grey, as a monochrome or near-infrared camera
    sees it), gamma, then sometimes a lower resolution, defocus, sensor noise and JPEG compression (uint8 (H, W, C)
    at the output size in, same out)."""
    _check(image, "render_capture")
    channels = image.shape[2]
    rgb = _to_rgb(image)
    h, w = rgb.shape[:2]
    rgb = rgb * rng.uniform(0.88, 1.12, 3).astype(np.float32)  # white balance
    grey = (rgb @ LUMA)[..., None]
    rgb = grey + (0.0 if rng.random() < 0.2 else rng.uniform(0.6, 1.3)) * (rgb - grey)  # saturation
    rgb = np.clip(rgb, 0.0, 1.0) ** np.float32(rng.uniform(0.75, 1.35))  # tone curve
    if rng.random() < 0.3:  # a lower-resolution sensor, upsampled again
        factor = rng.uniform(0.4, 0.8)
        small = (max(8, round(w * factor)), max(8, round(h * factor)))
        low = Image.fromarray(_from_rgb(rgb, 3)).resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
        rgb = np.asarray(low, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        rgb = _blur(rgb, rng.uniform(0.3, 1.2))
    rgb = _noise(rgb, rng.uniform(0.0, 0.03), rng)
    if rng.random() < 0.7:
        rgb = _jpeg(np.clip(rgb, 0.0, 1.0), int(rng.integers(30, 96)), channels)
    return _from_rgb(rgb, channels)
