"""A toy dataset layout added from outside the package: `<root>/faces.csv` lists `path,identity` rows, paths relative
to the root (a new file plus conf/datamodule/toy_csv.yaml)."""

from __future__ import annotations

import csv

from datamodules.file_datamodule import FileDataModule
from datamodules.records import ImageRecord
from metric.errors import ConfigError


class CsvFacesDataModule(FileDataModule):
    dataset_name = "toy_csv"
    identities_by_folder = False

    def scan(self) -> list[ImageRecord]:
        listing = self.root / "faces.csv"
        if not listing.is_file():
            raise ConfigError(f"datamodule.root={str(self.root)!r} has no faces.csv (rows: path,identity).")
        with listing.open(newline="") as rows:
            return [ImageRecord(path=self.root / row["path"], identity=row["identity"]) for row in csv.DictReader(rows)]
