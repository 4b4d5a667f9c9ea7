"""Photo in, embedding out: detect + align + embed, one photo at a time (as a door or a login sees them), with
face=mtcnn and MobileFaceNet against dlib's own pipeline, side by side on the same photos in alternating rounds.

  mtcnn+mobilefacenet        MtcnnFaces.crop (MTCNN in torch, 5 landmarks, ArcFace template, 112 x 112) ->
                             MobileFaceNet in torch (EmbeddingNet, the pretrained weights)
  mtcnn+mobilefacenet (onnx) the same crops -> the same net exported to ONNX, run by ONNX Runtime
  dlib                       what face_recognition runs: HOG detector (upsample 1), the 5-point predictor on the
                             largest face, dlib.compute_face_descriptor (its 150 x 150 chip and ResNet)
Both detectors search for faces from 40 pixels (dlib: 80 px at upsample 0, halved by upsample 1; mtcnn: min_face 40).
Run: python bench/face_pipeline.py [--photos DIR] [--images 100] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

# A sibling script (bench scripts run as `python bench/<script>.py`, which puts bench/ on the import path): the photos,
# dlib's detection steps, the rate measure and the command line are shared with the face front end's bench.
from face_frontend import largest_face_landmarks, per_second, photo_parser, photos

from datamodules.faces.dlib_faces import models_dir
from datamodules.faces.mtcnn_faces import MtcnnFaces
from datamodules.images import open_image
from datamodules.normalisation import to_model_input
from metric.model.embedders import DLIB_RESNET
from metric.model.nets import EmbeddingNet


def dlib_pipeline():
    """What face_recognition runs: detect, 5 landmarks, then dlib's ResNet on its 150 x 150 chip."""
    dlib, find = largest_face_landmarks()
    encoder = dlib.face_recognition_model_v1(str(models_dir() / DLIB_RESNET))

    def run(path: Path):
        found = find(path)
        return None if found is None else np.array(encoder.compute_face_descriptor(*found))

    return run


def mobilefacenet_pipelines(onnx_dir: Path):
    front_end = MtcnnFaces(min_face=40)
    net = EmbeddingNet("mobilefacenet", 192, pretrained=True, projection="none").eval()
    example = torch.zeros(1, 3, 112, 112)
    onnx_path = onnx_dir / "mobilefacenet.onnx"
    torch.onnx.export(
        net,
        (example,),
        str(onnx_path),
        input_names=["images"],
        output_names=["embeddings"],
        dynamic_axes={"images": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads must not spin while
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])  # MTCNN runs

    def crop(path: Path):
        found = front_end.crop(open_image(path, 3), (112, 112))
        return to_model_input(found.image[None]) if found.found else None

    @torch.inference_mode()
    def torch_run(path: Path):
        x = crop(path)
        return None if x is None else net(x).numpy()

    def onnx_run(path: Path):
        x = crop(path)
        return None if x is None else session.run(None, {"images": x.numpy()})[0]

    return torch_run, onnx_run


def main() -> None:
    parser = photo_parser(__doc__.splitlines()[0], images=100)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = photos(Path(args.photos), args.images, spread=True)  # spread over the people
    with tempfile.TemporaryDirectory() as tmp:
        torch_run, onnx_run = mobilefacenet_pipelines(Path(tmp))
        runs = {"mtcnn+mobilefacenet": torch_run, "mtcnn+mobilefacenet (onnx)": onnx_run, "dlib": dlib_pipeline()}
        for run in runs.values():  # warm-up: first calls allocate
            run(paths[0])
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):
            line = []
            for name, run in runs.items():
                rate, found = per_second(run, paths)
                rates[name].append(rate)
                line.append(f"{name} {rate:.1f} img/s ({found} faces)")
            print(f"round {r + 1}: " + ", ".join(line))
    median = {name: float(np.median(values)) for name, values in rates.items()}
    dlib = median["dlib"]
    print(
        f"median over {args.rounds} rounds, {len(paths)} photos, {args.threads} torch threads: "
        + ", ".join(f"{name} {rate:.1f} img/s ({rate / dlib:.2f}x dlib)" for name, rate in median.items())
    )


if __name__ == "__main__":
    main()
