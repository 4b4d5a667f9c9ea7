"""Any tree of `<root>/<identity>/<image>` (PNG, JPEG, PGM, BMP, WEBP): the identity is the folder name."""

from __future__ import annotations

from datamodules.file_datamodule import FileDataModule
from datamodules.images import IMAGE_SUFFIXES
from datamodules.records import ImageRecord
from metric.errors import ConfigError

EXPECTED_TREE = "<root>/\n  <identity 1>/  image.png  image2.jpg ...\n  <identity 2>/  ...\n"


class FolderDataModule(FileDataModule):
    dataset_name = "folder"
    identities_by_folder = True

    def scan(self) -> list[ImageRecord]:
        if not self.root.is_dir():
            raise ConfigError(
                f"datamodule.root={str(self.root)!r} is not a folder. Expected a tree like:\n{EXPECTED_TREE}"
            )
        records = [
            ImageRecord(path=image, identity=folder.name)
            for folder in self.root.iterdir()
            if folder.is_dir()
            for image in folder.iterdir()
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not records:
            raise ConfigError(
                f"datamodule.root={str(self.root)!r} holds no identity folder with images "
                f"({', '.join(IMAGE_SUFFIXES)}). Expected a tree like:\n{EXPECTED_TREE}"
            )
        return records
