"""Model files on Django's storage API, written so a reader never sees half a version.

A version's files go to ``<ARTIFACT_PREFIX>/v<id>-<token>/``: the Keras model
(``model.keras``), the exported arrays serving needs (``weights.npz``, mapped read-only
from the file, never unpickled), and the vocabularies and feature spec (``vocabulary.json``). Each
file is first written to a local temporary folder, then saved to the storage; the
``manifest.json`` with every file's size and SHA-256 is saved last. It is the commit point:
a version without a manifest, or whose files do not match it, is not loaded. With a shared
storage backend (S3, a network disk) every web server reads the same files. No pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import secrets
import shutil
import struct
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, storages

from .conf import app_settings

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ArtifactError(Exception):
    """The files of a version are missing, incomplete or corrupt."""


def get_storage() -> Storage:
    return storages[app_settings.ARTIFACT_STORAGE]


@dataclass
class Bundle:
    """What a trained version consists of, in memory."""

    weights: dict[str, Any]  # name -> numpy array
    vocabulary: dict[str, Any]  # JSON-safe
    keras_model: Any = None  # a keras.Model, saved as model.keras when given
    # More files of the version (the item index of a large catalogue): name -> a local path,
    # copied in when saved; when loaded, the verified local file to map.
    files: dict[str, Path] = field(default_factory=dict)


def save_bundle(version_id: int, bundle: Bundle) -> tuple[str, int]:
    """Write a version's files; returns (folder name in the storage, total bytes)."""
    import numpy as np  # the ml extra: a shop without it still starts

    storage = get_storage()
    folder = f"{app_settings.ARTIFACT_PREFIX.rstrip('/')}/v{version_id}-{secrets.token_hex(4)}"
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="recommendations-") as tmp:
        local = Path(tmp)
        np.savez(local / "weights.npz", **bundle.weights)
        (local / "vocabulary.json").write_text(json.dumps(bundle.vocabulary, separators=(",", ":")))
        if bundle.keras_model is not None:
            bundle.keras_model.save(local / "model.keras")
        for name, path in bundle.files.items():
            if name in (MANIFEST, "weights.npz", "vocabulary.json", "model.keras") or "/" in name:
                raise ValueError(f"{name!r} cannot be one of a version's other files")
            shutil.copyfile(path, local / name)
        for path in sorted(local.iterdir()):
            data = path.read_bytes()
            with path.open("rb") as handle:
                saved = storage.save(f"{folder}/{path.name}", File(handle))
            if saved != f"{folder}/{path.name}":
                raise ArtifactError(f"storage renamed {path.name} to {saved}; the folder was not fresh")
            files[path.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"format": FORMAT_VERSION, "version": version_id, "files": files}
    storage.save(f"{folder}/{MANIFEST}", ContentFile(json.dumps(manifest, indent=1).encode()))
    return folder, sum(f["size"] for f in files.values())


def _read(storage: Storage, name: str) -> bytes:
    try:
        with storage.open(name, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactError(f"{name} cannot be read ({exc})") from exc


def load_bundle(folder: str, *, with_keras: bool = False) -> Bundle:
    """Read and verify a version's files (serving reads weights and vocabulary only).

    The weights come back as read-only arrays mapped from the file (``mapped_arrays``).
    """
    storage = get_storage()
    try:
        manifest = json.loads(_read(storage, f"{folder}/{MANIFEST}"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{folder}: the manifest is unreadable ({exc})") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{folder}: unknown artifact format {manifest.get('format')!r}")

    def verified(name: str) -> bytes:
        if name not in files:
            raise ArtifactError(f"{folder}: {name} is not in the manifest")
        data = _read(storage, f"{folder}/{name}")
        if len(data) != files[name]["size"] or hashlib.sha256(data).hexdigest() != files[name]["sha256"]:
            raise ArtifactError(f"{folder}/{name} does not match its checksum")
        return data

    try:
        weights = mapped_arrays(_local_file(storage, folder, "weights.npz", files))
        vocabulary = json.loads(verified("vocabulary.json"))
        others = {
            name: _local_file(storage, folder, name, files)
            for name in files
            if name not in ("weights.npz", "vocabulary.json", "model.keras")
        }
    except ArtifactError:
        raise
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{folder}: corrupt files ({exc})") from exc
    keras_model = None
    if with_keras and "model.keras" in files:
        import keras  # heavy: only when a Keras model is asked for, never by serving

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            path.write_bytes(verified("model.keras"))
            keras_model = keras.saving.load_model(path, safe_mode=True)
    return Bundle(weights=weights, vocabulary=vocabulary, keras_model=keras_model, files=others)


#: Days a downloaded copy of a version's arrays stays in the local folder unused.
LOCAL_COPY_DAYS = 7
_CHUNK = 1 << 20


def _digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of a local file, read in chunks (through the page cache, not into memory)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def local_folder() -> Path:
    """This machine's folder of downloaded version files (``LOCAL_MODEL_FOLDER``; by default one
    in the temporary directory that only this user may read or write)."""
    if app_settings.LOCAL_MODEL_FOLDER is not None:
        path = Path(app_settings.LOCAL_MODEL_FOLDER)
    else:
        user = os.getuid() if hasattr(os, "getuid") else 0
        path = Path(tempfile.gettempdir()) / f"recommendations-models-{user}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _local_file(storage: Storage, folder: str, name: str, files: dict[str, Any]) -> Path:
    """A verified file of the version on this machine's disk, to map rather than read.

    A storage on the local disk gives its own file (unless ``LOCAL_MODEL_FOLDER`` is set);
    any other (S3, a network API) is downloaded once per machine into ``local_folder()``,
    named by its checksum, so every process serving the version maps the same file and the
    kernel keeps one copy of its pages for them all. Raises ``ArtifactError`` when it is
    missing or does not match.
    """
    if name not in files:
        raise ArtifactError(f"{folder}: {name} is not in the manifest")
    expected = (files[name]["size"], files[name]["sha256"])
    path = None
    if app_settings.LOCAL_MODEL_FOLDER is None:
        with contextlib.suppress(NotImplementedError):  # not on the local disk
            path = Path(storage.path(f"{folder}/{name}"))
    if path is not None:
        try:
            matches = _digest(path) == expected
        except OSError as exc:
            raise ArtifactError(f"{folder}/{name} cannot be read ({exc})") from exc
        if not matches:
            raise ArtifactError(f"{folder}/{name} does not match its checksum")
        return path
    local = local_folder()
    path = local / f"{expected[1]}{Path(name).suffix}"
    if path.exists() and _digest(path) == expected:
        os.utime(path)  # in use: kept by the clean-up below
        return path
    with tempfile.NamedTemporaryFile(dir=local, delete=False) as handle:
        try:
            with storage.open(f"{folder}/{name}", "rb") as source:
                while chunk := source.read(_CHUNK):
                    handle.write(chunk)
        except OSError as exc:
            Path(handle.name).unlink(missing_ok=True)
            raise ArtifactError(f"{folder}/{name} cannot be read ({exc})") from exc
    if _digest(Path(handle.name)) != expected:
        Path(handle.name).unlink(missing_ok=True)
        raise ArtifactError(f"{folder}/{name} does not match its checksum")
    os.replace(handle.name, path)  # atomic: another process maps a whole file or none
    _forget_unused_copies(local, keep=path)
    return path


def _forget_unused_copies(local: Path, keep: Path) -> None:
    """Delete downloaded copies nobody loaded for ``LOCAL_COPY_DAYS`` (a process still mapping
    one keeps its pages: the file goes when it lets go)."""
    cutoff = time.time() - LOCAL_COPY_DAYS * 86400
    for path in local.iterdir():
        try:
            if path != keep and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def mapped_arrays(path: Path) -> dict[str, Any]:
    """The arrays of an ``np.savez`` file, mapped read-only instead of read into memory.

    ``np.savez`` stores each array uncompressed in the zip, so an array is its ``.npy``
    header and then its bytes at a known offset: an ndarray over a read-only ``mmap`` of the
    file. Pages are read when touched and shared by every process mapping the file, so N web
    workers hold one item table between them, not N (and a worker's own memory is what it
    computes). Object arrays are refused (that would be pickle); a compressed member is read.
    """
    try:
        return _mapped(path)
    except (zipfile.BadZipFile, struct.error, TypeError) as exc:  # TypeError: a member past the end
        raise ValueError(f"{path.name}: {exc}") from exc


def _mapped(path: Path) -> dict[str, Any]:
    import numpy as np

    arrays: dict[str, Any] = {}
    with path.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            handle.seek(info.header_offset)
            header = struct.unpack("<IHHHHHIIIHH", handle.read(30))
            if header[0] != 0x04034B50:
                raise ValueError(f"{info.filename}: not a zip member")
            handle.seek(info.header_offset + 30 + header[9] + header[10])
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"{info.filename}: .npy format {version} is not read")
            if dtype.hasobject:
                raise ValueError(f"{info.filename}: object arrays are refused (pickle)")
            array = np.ndarray(
                shape, dtype, buffer=mapped, offset=handle.tell(), order="F" if fortran else "C"
            )
            arrays[name] = array
    return arrays


def delete_bundle(folder: str) -> None:
    """Delete a version's files (the manifest first, so a half-deleted folder is never loaded)."""
    if not folder:
        return
    storage = get_storage()
    try:
        _, names = storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError, OSError):
        names = []
    for name in sorted(names, key=lambda n: n != MANIFEST):
        storage.delete(f"{folder}/{name}")
