"""Frozen pretrained embedders (`model=dlib`, `model=onnx`): outside face models run on the same model input as a
trained EmbeddingNet, so every entry point embeds through them as it embeds through a checkpoint.

An embedder takes the one model input (N, C, H, W in [-1, 1], datamodules.normalisation), turns it back into
the uint8 pixels it was made from (exact: the normalisation is affine on whole pixel values), prepares them as
its model needs (dlib: its own 150 x 150 chip; ONNX: the declared size, colour order and normalisation) and
gives L2-normalised embeddings. They hold no trainable weights and give no gradients: `differentiable` is False.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.faces.dlib_faces import import_dlib, models_dir
from datamodules.fingerprint import file_sha256
from datamodules.normalisation import to_uint8_images
from metric.errors import ConfigError
from metric.registry import Registry

DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_CHIP = {"name": "dlib", "template": "dlib", "margin": 0.0}  # face=dlib settings that cut dlib's own chip
ONNX_INSTALL = "pip install -e '.[export]' (onnx and onnxruntime)"
NOT_DIFFERENTIABLE = (
    "model={kind} is a frozen outside model (not a torch net: it gives no gradients), so {what} "
    "cannot run through it. Adapt it instead (python -m metric.train +experiment=adapt "
    "model={kind}), or distil it into a trainable student (+experiment=distill teacher={kind}) "
    "and use that checkpoint."
)


EMBEDDERS: Registry[type] = Registry("embedder", key="kind")  # the kinds checkpoints store


class ExternalEmbedder:
    """The interface every outside model answers: called on model inputs, it gives unit-length embeddings."""

    kind = "external"
    differentiable = False
    embedding_dim: int
    input_size: tuple[int, int]  # (height, width) the model reads
    channels: int

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if tuple(inputs.shape[1:]) != (self.channels, *self.input_size):
            raise ConfigError(
                f"model={self.kind} reads {self.channels}-channel {self.input_size[0]}x"
                f"{self.input_size[1]} images, but was given {tuple(inputs.shape[1:])}: set "
                f"datamodule.image_size={list(self.input_size)} datamodule.channels={self.channels}."
            )
        if not len(inputs):
            return torch.zeros(0, self.embedding_dim)
        embeddings = torch.from_numpy(np.asarray(self.embed_pixels(to_uint8_images(inputs)), dtype=np.float32))
        return F.normalize(embeddings, dim=1)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 images (N >= 1, H, W, C) at input_size -> raw embeddings (N, D)."""
        raise NotImplementedError

    def eval(self) -> ExternalEmbedder:  # the same call as a torch module's, for code that sets eval mode
        return self

    def required_face(self) -> dict | None:
        """The face front-end settings this model needs (None: any the user picks)."""
        return None

    def spec(self) -> dict:
        """What rebuilds this embedder and checks its model file: its kind, settings and the file's sha256."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} ({self.embedding_dim}-d)"

    @classmethod
    def model_file(cls, settings: dict) -> Path | None:
        """The model file a recorded spec's settings name, checked against its sha256 before loading (None: none)."""
        return Path(settings["path"]) if settings.get("path") else None

    @classmethod
    def not_trainable(cls) -> str:
        """Why a training that needs gradients refuses this model (read by the modules' own config checks)."""
        return NOT_DIFFERENTIABLE.format(kind=cls.kind, what="training")


@EMBEDDERS.register
class DlibEmbedder(ExternalEmbedder):
    """dlib's face-recognition ResNet (128-d) on the aligned 150 x 150 chip that face=dlib face.template=dlib
    face.margin=0 cuts (as dlib.get_face_chip does), through dlib's call for an aligned chip. `num_jitters` > 1
    averages that many jittered copies (dlib's test-time augmentation, num_jitters times slower)."""

    kind = "dlib"
    embedding_dim = 128
    input_size = (150, 150)
    channels = 3

    def __init__(self, num_jitters: int = 0):
        if isinstance(num_jitters, bool) or not isinstance(num_jitters, int) or num_jitters < 0:
            raise ConfigError(f"model.num_jitters={num_jitters!r} must be a whole number >= 0 (0: no jitter).")
        dlib = import_dlib()
        self.path = models_dir() / DLIB_RESNET
        if not self.path.is_file():
            raise ConfigError(f"model=dlib: {self.path} is missing; reinstall the extra: pip install -e '.[faces]'.")
        self.num_jitters = num_jitters
        self.sha256 = file_sha256(self.path)
        self.model = dlib.face_recognition_model_v1(str(self.path))

    def __getstate__(self) -> dict:  # dlib objects do not pickle: a copy loads its own
        return {"num_jitters": self.num_jitters}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return np.array(self.model.compute_face_descriptor(list(pixels), self.num_jitters))

    @classmethod
    def model_file(cls, settings: dict) -> Path:
        return models_dir() / DLIB_RESNET

    def required_face(self) -> dict:
        return dict(DLIB_CHIP)

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "file": DLIB_RESNET,
            "sha256": self.sha256,
            "num_jitters": self.num_jitters,
            "embedding_dim": self.embedding_dim,
        }


def check_pixel_stats(name: str, values, channels: int) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values, dtype=np.float32))
    if values.size not in (1, channels) or not np.all(np.isfinite(values)) or (name == "std" and np.any(values <= 0)):
        raise ConfigError(
            f"model.{name}={values.tolist()} must be one number or one per channel ({channels})"
            f"{', each > 0' if name == 'std' else ''}, in pixel units (0-255): model input = "
            "(pixel - mean) / std."
        )
    return values.reshape(1, -1, 1, 1) if values.size > 1 else values.reshape(1, 1, 1, 1)


def open_onnx_session(path: Path):
    """An ONNX Runtime CPU session, or one clear error: no onnxruntime, no file, or a file that is not ONNX."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"model=onnx needs onnxruntime, which is not installed: {ONNX_INSTALL}.") from None
    if not path.is_file():
        raise ConfigError(f"model.path={str(path)!r}: no such file. Give an ONNX face-embedding model (.onnx).")
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # InvalidProtobuf, InvalidGraph, ...
        message = str(error).splitlines()[0][:160]
        raise ConfigError(
            f"model.path={str(path)!r} is not a readable ONNX model ({type(error).__name__}: "
            f"{message}). Give a .onnx file, e.g. one written by metric.export."
        ) from None


@EMBEDDERS.register
class OnnxEmbedder(ExternalEmbedder):
    """Any ONNX face-embedding model (an ArcFace model downloaded elsewhere, or metric.export's own), run with ONNX
    Runtime: the config declares the input size, channels, colour order, layout and normalisation; the output
    (N, D) is L2-normalised here."""

    kind = "onnx"
    COLOURS = ("rgb", "bgr")
    LAYOUTS = ("nchw", "nhwc")

    def __init__(
        self,
        path: str,
        input_size: list[int] | tuple[int, int] = (112, 112),
        channels: int = 3,
        colour: str = "rgb",
        layout: str = "nchw",
        mean=127.5,
        std=127.5,
    ):
        if channels not in (1, 3):
            raise ConfigError(f"model.channels={channels!r} must be 3 (colour) or 1 (grey).")
        if colour not in self.COLOURS or layout not in self.LAYOUTS:
            raise ConfigError(
                f"model.colour={colour!r} / model.layout={layout!r}: colour is one of "
                f"{', '.join(self.COLOURS)}, layout one of {', '.join(self.LAYOUTS)}."
            )
        if len(input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in input_size):
            raise ConfigError(f"model.input_size={list(input_size)!r} must be [height, width] in pixels.")
        self.path = Path(path).resolve()
        self.session = open_onnx_session(self.path)
        self.input_size, self.channels, self.colour, self.layout = tuple(input_size), channels, colour, layout
        self.mean_values, self.std_values = mean, std
        self.mean, self.std = check_pixel_stats("mean", mean, channels), check_pixel_stats("std", std, channels)
        self.sha256 = file_sha256(self.path)
        self.input_name = self.check_input()
        self.embedding_dim = self.check_output()

    def __getstate__(self) -> dict:  # an ONNX Runtime session does not pickle: a copy opens its own
        return self.settings()

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def settings(self) -> dict:
        return {
            "path": str(self.path),
            "input_size": list(self.input_size),
            "channels": self.channels,
            "colour": self.colour,
            "layout": self.layout,
            "mean": self.mean_values,
            "std": self.std_values,
        }

    def check_input(self) -> str:
        """The model's one image input; its fixed dimensions must agree with the declared size and channels."""
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [f"{i.name}{i.shape}" for i in inputs]
            raise ConfigError(
                f"model.path={str(self.path)!r} takes inputs {shapes}; a face-embedding model takes one "
                "image batch of rank 4 (N, C, H, W or N, H, W, C)."
            )
        expected = (self.channels, *self.input_size) if self.layout == "nchw" else (*self.input_size, self.channels)
        batch = inputs[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None  # an export with a fixed batch
        fixed = inputs[0].shape[1:]
        if any(isinstance(d, int) and d != e for d, e in zip(fixed, expected)):
            raise ConfigError(
                f"model.path={str(self.path)!r} takes images of shape {inputs[0].shape}, but the config "
                f"declares {self.layout} {list(expected)}: set model.input_size, model.channels and "
                "model.layout to the model's input."
            )
        return inputs[0].name

    def check_output(self) -> int:
        """Run two blank images: the first output must be one vector per image."""
        try:
            out = self.run(np.zeros((2, *self.input_size, self.channels), np.uint8))
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(
                f"model.path={str(self.path)!r} fails on a {self.layout} batch of "
                f"{self.channels}x{self.input_size[0]}x{self.input_size[1]} images "
                f"({type(error).__name__}): check model.input_size, channels and layout."
            ) from None
        return out.shape[1]

    def run(self, pixels: np.ndarray) -> np.ndarray:
        if self.fixed_batch is not None and len(pixels) != self.fixed_batch:
            step = self.fixed_batch
            chunks = [
                np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), 0)]) if len(chunk) < step else chunk
                for chunk in (pixels[i : i + step] for i in range(0, len(pixels), step))
            ]
            return np.concatenate([self.run(chunk) for chunk in chunks])[: len(pixels)]
        images = pixels.transpose(0, 3, 1, 2).astype(np.float32)  # (N, C, H, W), RGB or grey
        if self.colour == "bgr" and self.channels == 3:
            images = images[:, ::-1]
        images = (images - self.mean) / self.std
        if self.layout == "nhwc":
            images = images.transpose(0, 2, 3, 1)
        out = np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(images)})[0])
        if out.ndim > 2 and all(d == 1 for d in out.shape[2:]):
            out = out.reshape(out.shape[0], -1)  # (N, D, 1, 1) from a convolutional last layer
        if out.ndim != 2 or out.shape[0] != len(pixels) or out.shape[1] < 2:
            raise ConfigError(
                f"model.path={str(self.path)!r} gives an output of shape {list(out.shape)} for "
                f"{len(pixels)} images; an embedding model gives one vector per image (N, D)."
            )
        return out

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self.run(pixels)

    def spec(self) -> dict:
        return {"kind": self.kind, **self.settings(), "sha256": self.sha256, "embedding_dim": self.embedding_dim}


def embedder_from_spec(spec: dict) -> ExternalEmbedder:
    """Rebuild the embedder a checkpoint records, and refuse a model file other than the one it was calibrated with."""
    spec = dict(spec)
    kind, sha256 = spec.pop("kind"), spec.pop("sha256", None)
    embedder = EMBEDDERS[kind]  # the checkpoint's kind, or one clear error naming the kinds this version has
    spec.pop("embedding_dim", None)
    spec.pop("file", None)
    path = embedder.model_file(spec)
    found = file_sha256(path) if path is not None and path.is_file() else None
    if sha256 is not None and found is not None and found != sha256:  # checked before the file is loaded
        raise ConfigError(
            f"model={kind}: the model file {path} (sha256 {found[:12]}...) is not the one this "
            f"checkpoint was calibrated with ({sha256[:12]}...). Restore that file, or calibrate again "
            "(python -m metric.calibrate) and rebuild galleries made with the old one."
        )
    return embedder(**spec)
