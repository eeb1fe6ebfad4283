"""Model files on Django's storage API, written so a reader never sees half a version.

A version's files go to ``<ARTIFACT_PREFIX>/v<id>-<token>/``: the Keras model
(``model.keras``), the exported arrays serving needs (``weights.npz``, read back with
``allow_pickle=False``), and the vocabularies and feature spec (``vocabulary.json``). Each
file is first written to a local temporary folder, then saved to the storage; the
``manifest.json`` with every file's size and SHA-256 is saved last. It is the commit point:
a version without a manifest, or whose files do not match it, is not loaded. With a shared
storage backend (S3, a network disk) every web server reads the same files. No pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tempfile
from dataclasses import dataclass
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
    """Read and verify a version's files (serving reads weights and vocabulary only)."""
    import numpy as np  # the ml extra: a shop without it still starts

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
        with np.load(io.BytesIO(verified("weights.npz")), allow_pickle=False) as arrays:
            weights = {name: arrays[name] for name in arrays.files}
        vocabulary = json.loads(verified("vocabulary.json"))
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
    return Bundle(weights=weights, vocabulary=vocabulary, keras_model=keras_model)


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
