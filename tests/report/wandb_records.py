"""Read an offline W&B run file (`run-<id>.wandb`): a LevelDB-style log of protobuf records, for the tests."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32768  # records are packed into 32 KiB blocks; a record that does not fit is split into pieces
HEADER = 7  # crc32 (4 bytes), length (2), piece kind (1): 1 whole, 2 first, 3 middle, 4 last


def read_records(path: Path) -> Iterator:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = 7, b""  # after the file header: ":W&B", magic, version
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        piece = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        pending = piece if kind in (1, 2) else pending + piece
        if kind in (2, 3):
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        yield record


def key_of(item) -> str:
    return item.key or "/".join(item.nested_key)


def run_contents(path: Path) -> dict:
    """History keys, summary keys, config keys and artifacts ({name: (type, [paths])}) of one run file."""
    found = {"history": set(), "summary": set(), "config": set(), "artifacts": {}}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            found["history"].update(key_of(i) for i in record.history.item)
        elif kind == "summary":
            found["summary"].update(key_of(i) for i in record.summary.update)
        elif kind == "config":
            found["config"].update(key_of(i) for i in record.config.update)
        elif kind == "artifact":
            a = record.artifact
            found["artifacts"][a.name] = (a.type, [e.path for e in a.manifest.contents])
    return found
