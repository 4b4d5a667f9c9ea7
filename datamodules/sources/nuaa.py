"""The NUAA Photograph Imposter Database in its official layout: client (bona fide) and imposter (printed photo)
webcam images of 15 subjects, the official index files (train = sessions 1-2, test = session 3), three variants."""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.file_datamodule import FileDataModule
from datamodules.liveness import LivenessData
from datamodules.records import ImageRecord, natural_key
from datamodules.split import IdentitySplit
from metric.errors import ConfigError

VARIANTS = {"raw": "Raw", "face": "Face", "normalized": "Normalized"}
CLASSES = {"client": 0, "imposter": 1}  # bona fide, attack
VAL_STREAM = 5  # the seeded stream that draws NUAA's validation subjects
PHOTO = 1  # CelebA-Spoof's code for a photo print: every NUAA imposter is a printed photograph
NAME = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d+)\.(jpg|jpeg|bmp|png)", re.IGNORECASE)
GLASSES = {0: "with glasses", 1: "without glasses"}
EXPECTED_TREE = """<root>/
  ClientRaw/0001/0001_00_00_01_0.jpg ...      ImposterRaw/0001/...        (variant raw: 640x480 webcam JPEGs)
  ClientFace/..., ImposterFace/...                                        (variant face: detected faces)
  ClientNormalized/..., ImposterNormalized/...                            (variant normalized: 64x64 grey)
  client_train_<variant>.txt  client_test_<variant>.txt                   one relative path per line (CRLF),
  imposter_train_<variant>.txt  imposter_test_<variant>.txt               e.g. 0001/0001_00_00_01_0.jpg
"""


def read_index(file: Path) -> list[tuple[int, str]]:
    """(line number, relative path) of each non-empty line; CRLF, LF or CR line ends; any 8-bit encoding."""
    try:
        text = file.read_bytes().decode("latin-1")
    except OSError as error:
        raise ConfigError(f"NUAA: cannot read {file} ({error.strerror}).") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_entry(entry: str, file: Path, number: int) -> dict:
    """The factors in a file name <ID>_<glasses>_<pos>_<session>_<picNo>; ConfigError naming the line when it is not."""
    parts = entry.replace("\\", "/").split("/")
    match = NAME.fullmatch(parts[-1])
    if match is None or len(parts) != 2 or parts[0] != match.group(1):
        raise ConfigError(
            f"NUAA: {file}, line {number}: {entry!r} is not '<subject>/<subject>_<glasses>_<pos>_"
            "<session>_<picNo>.jpg' (e.g. 0001/0001_00_00_01_0.jpg)."
        )
    subject, glasses, pos, session = (int(match.group(i)) for i in range(1, 5))
    return {"subject": f"{subject:04d}", "glasses": glasses, "pos": pos, "session": session}


class NUAADataModule(LivenessData, FileDataModule):
    """The official train and test lists of one variant; validation subjects carved, seeded, out of the training
    subjects (the test split stays the official one: session 3, whose subjects also appear in training sessions, so
    NUAA's test measures new sessions, not new people; the count is in the notes). Entries naming missing files are
    counted, listed in
    bad_files.txt and skipped. Breakdowns: glasses, pos (position and lighting), session."""

    dataset_name = "nuaa"
    official_test_shares_subjects = True  # the official test is a later session (3) of the training subjects

    def __init__(self, variant: str = "face", val_subjects: float | int = 3, **kwargs):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ConfigError(
                f"datamodule.variant={variant!r} is not one of {', '.join(VARIANTS)} (raw: the 640x480 "
                "webcam images, through the face front end; face: the detected faces; normalized: the "
                "64x64 grey faces)."
            )
        self.variant, self.val_subjects = variant, self.check_val_subjects(val_subjects)

    def index_file(self, kind: str, split: str) -> Path:
        path = self.root / f"{kind}_{split}_{self.variant}.txt"
        if not path.is_file():
            raise ConfigError(
                f"NUAA: {path} is missing; datamodule.root={str(self.root)!r} is not the NUAA layout "
                f"for datamodule.variant={self.variant}. Expected:\n{EXPECTED_TREE}"
            )
        return path

    def scan(self) -> list[ImageRecord]:
        records = []
        for kind, spoof in CLASSES.items():
            folder = self.root / f"{kind.capitalize()}{VARIANTS[self.variant]}"
            for split in ("train", "test"):
                file = self.index_file(kind, split)
                for number, entry in read_index(file):
                    factors = parse_entry(entry, file, number)
                    records.append(
                        ImageRecord(
                            path=folder / entry.replace("\\", "/"),
                            identity=factors.pop("subject"),
                            partition=split,
                            factors={
                                "spoof": spoof,
                                "spoof_type": PHOTO if spoof else 0,
                                "illumination": 0,
                                "environment": 0,
                                **factors,
                            },
                        )
                    )
        if not records:
            raise ConfigError(f"NUAA: the index files under {self.root} list no image.")
        return records

    def load_splits(self) -> dict[str, IdentitySplit]:
        """Every listed entry goes on: a missing file fails to decode like an unreadable one, so it is counted,
        listed in bad_files.txt and reported once; a split left with no bona fide or no attack image stops the run."""
        records = self.scan()
        present = {r.path for r in records if r.path.is_file()}
        self.notes["missing_images"] = len(records) - len(present)
        assignment = self.carve_validation(
            {
                "train": [r for r in records if r.partition == "train"],
                "test": [r for r in records if r.partition == "test"],
            },
            VAL_STREAM,
            natural_key,
        )
        for split, kept in assignment.items():
            classes = {r.factors["spoof"] for r in kept if r.path in present}
            if classes != {0, 1}:
                lacking = "bona fide (client)" if 0 not in classes else "attack (imposter)"
                raise ConfigError(
                    f"NUAA: the {split} split holds no {lacking} image that exists under {self.root} "
                    f"({len(kept)} listed); check datamodule.root and datamodule.variant."
                )
        shared = {r.identity for r in assignment["test"]} & {
            r.identity for r in assignment["train"] + assignment["val"]
        }
        self.notes["test_subjects_also_in_training"] = len(shared)  # the official protocol: a later session
        return self.load_assignment(assignment)

    def preprocess_settings(self) -> dict:
        return {**super().preprocess_settings(), "variant": self.variant}

    def breakdowns(self, split: IdentitySplit) -> dict[str, list]:
        """The conditions NUAA records per image: glasses, position and lighting (pos), session."""
        return {
            "glasses": [GLASSES.get(f["glasses"], f["glasses"]) for f in split.factors],
            "pos": [f"pos {f['pos']:02d}" for f in split.factors],
            "session": [f"session {f['session']}" for f in split.factors],
        }
