"""The `.keras` archive: a zip of `metadata.json`, `config.json` and `model.weights.h5`.

`read_archive` reads and checks every member before anything is built from it
(a truncated or foreign file fails here, with the file's name); `write_archive`
writes the members atomically, stored uncompressed, in Keras's order.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

from birnn.saving import atomic
from birnn.saving.errors import FileFormatError

KERAS_FORMAT_VERSION = "3.15.1"
"""The Keras version whose `.keras` format birnn writes."""

CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
WEIGHTS_FILENAME = "model.weights.h5"
_BOMB_FLOOR_BYTES = 1 << 32
_BOMB_RATIO = 100


@dataclass
class Archive:
    """The parsed members of a `.keras` file."""

    config: dict
    metadata: dict
    weights: bytes


def write_archive(filepath: str, metadata: dict, config_json: str, weights: bytes) -> None:
    """Writes the three members to `filepath`, replacing it only once complete."""
    with atomic.atomic_open(filepath) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA_FILENAME, json.dumps(metadata))
        zf.writestr(CONFIG_FILENAME, config_json)
        zf.writestr(WEIGHTS_FILENAME, weights)


def _read_member(zf: zipfile.ZipFile, name: str, filepath: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > _BOMB_FLOOR_BYTES and info.file_size > _BOMB_RATIO * max(
        info.compress_size, 1
    ):
        raise FileFormatError(
            f"{filepath}: member '{name}' declares {info.file_size} bytes from "
            f"{info.compress_size} compressed; refusing a decompression bomb."
        )
    return zf.read(name)


def read_archive(filepath: str | os.PathLike) -> Archive:
    """Reads and checks every member of a `.keras` file.

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: not a zip, truncated, or missing/corrupt members.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    try:
        with zipfile.ZipFile(filepath, "r") as zf:
            names = set(zf.namelist())
            if CONFIG_FILENAME not in names:
                raise FileFormatError(
                    f"{filepath} is a zip archive but not a Keras 3 model: it has no "
                    f"'{CONFIG_FILENAME}' (members: {sorted(names)[:5]})."
                )
            if WEIGHTS_FILENAME not in names:
                if "model.weights.npz" in names:
                    raise FileFormatError(
                        f"{filepath} stores its weights as .npz; birnn reads the default "
                        "h5 weights format only."
                    )
                raise FileFormatError(f"{filepath} has no '{WEIGHTS_FILENAME}' member.")
            config_bytes = _read_member(zf, CONFIG_FILENAME, filepath)
            metadata_bytes = (
                _read_member(zf, METADATA_FILENAME, filepath)
                if METADATA_FILENAME in names
                else b"{}"
            )
            weights = _read_member(zf, WEIGHTS_FILENAME, filepath)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError) as e:
        raise FileFormatError(
            f"{filepath} is not a readable .keras file (truncated, corrupt, or not a "
            f"zip archive): {e}"
        ) from e
    try:
        config = json.loads(config_bytes)
        metadata = json.loads(metadata_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FileFormatError(
            f"{filepath}: config.json/metadata.json is not valid JSON: {e}"
        ) from e
    if not isinstance(config, dict) or "class_name" not in config:
        raise FileFormatError(f"{filepath}: config.json does not describe a Keras object.")
    return Archive(
        config=config, metadata=metadata if isinstance(metadata, dict) else {}, weights=weights
    )
