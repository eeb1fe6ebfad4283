"""A version's arrays mapped from its file: shared by a machine's workers, read-only, never
unpickled, and downloaded once per machine from a remote storage."""

from __future__ import annotations

import mmap
import os
import time

import pytest

np = pytest.importorskip("numpy")

from recommendations import artifacts  # noqa: E402

UNPICKLED = []


def _unpickled() -> None:
    UNPICKLED.append(True)


class Trap:
    """Unpickling it runs ``_unpickled``: proof that a loader unpickled what a file held."""

    def __reduce__(self):
        return _unpickled, ()


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "table": rng.normal(size=(300, 8)).astype(np.float32),
        "ids": np.arange(1000, dtype=np.int64),
        "fortran": np.asfortranarray(rng.normal(size=(5, 7))),
        "empty": np.zeros((0, 4), np.int32),
        "names": np.asarray(["cooccurrence", "ease"]),
        "scalar": np.asarray(0.25, np.float32),
    }


@pytest.fixture
def storage_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path


def test_a_versions_arrays_are_mapped_from_its_file_not_copied_and_cannot_be_written(storage_settings):
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    loaded = artifacts.load_bundle(folder).weights
    assert set(loaded) == set(arrays())
    for name, expected in arrays().items():
        np.testing.assert_array_equal(loaded[name], expected)
        assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape
    table = loaded["table"]
    # The array is a view of the file's pages (one copy per machine), not memory of its own.
    assert isinstance(table.base, mmap.mmap) and not table.flags.owndata
    assert loaded["fortran"].flags.f_contiguous
    # No request can change the model every worker of the machine serves.
    with pytest.raises(ValueError, match="read-only"):
        table[0, 0] = 1.0


def test_with_a_local_folder_set_even_a_local_storages_version_is_copied_there(
    storage_settings, recorder_settings
):
    """On a network disk (NFS) another host may delete a file under a mapping: the setting
    makes each web server map its own copy."""
    recorder_settings(LOCAL_MODEL_FOLDER=str(storage_settings / "local"))
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    loaded = artifacts.load_bundle(folder).weights
    (copy,) = (storage_settings / "local").iterdir()
    assert copy.name == artifacts._digest(copy)[1] + ".npz"
    artifacts.delete_bundle(folder)  # the storage's files go; the mapped copy serves on
    np.testing.assert_array_equal(loaded["table"], arrays()["table"])


@pytest.mark.django_db
def test_an_object_array_in_a_versions_file_is_refused_not_unpickled(storage_settings):
    weights = {"w": np.ones(3), "trap": np.asarray([Trap()], dtype=object)}
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=weights, vocabulary={}))
    with pytest.raises(artifacts.ArtifactError, match="object arrays are refused"):
        artifacts.load_bundle(folder)
    assert not UNPICKLED


def test_a_compressed_file_is_read_whole(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez_compressed(path, **arrays())
    loaded = artifacts.mapped_arrays(path)
    for name, expected in arrays().items():
        np.testing.assert_array_equal(loaded[name], expected)


def replace(folder: str, name: str, data: bytes, *, in_manifest: bool) -> None:
    """Put ``data`` in the place of a version's file (and its checksum in the manifest)."""
    import hashlib
    import json

    from django.core.files.base import ContentFile

    storage = artifacts.get_storage()
    storage.delete(f"{folder}/{name}")
    storage.save(f"{folder}/{name}", ContentFile(data))
    if in_manifest:
        with storage.open(f"{folder}/{artifacts.MANIFEST}") as handle:
            manifest = json.loads(handle.read())
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        storage.delete(f"{folder}/{artifacts.MANIFEST}")
        storage.save(f"{folder}/{artifacts.MANIFEST}", ContentFile(json.dumps(manifest).encode()))


def test_a_file_that_is_not_an_archive_is_an_artifact_error(storage_settings):
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    # The checksum matches: only the content is wrong.
    replace(folder, "weights.npz", b"PK\x03\x04 not a zip at all", in_manifest=True)
    with pytest.raises(artifacts.ArtifactError, match="corrupt"):
        artifacts.load_bundle(folder)


@pytest.fixture
def remote(settings, storage_settings, recorder_settings):
    """A storage with no local path (as S3's): versions are downloaded to LOCAL_MODEL_FOLDER."""
    settings.STORAGES = {
        **settings.STORAGES,
        "remote": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    recorder_settings(ARTIFACT_STORAGE="remote", LOCAL_MODEL_FOLDER=str(storage_settings / "local"))
    return storage_settings / "local"


def test_a_remote_version_is_downloaded_once_per_machine_and_mapped_by_every_process(remote, monkeypatch):
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={"v": 1}))
    first = artifacts.load_bundle(folder)
    copies = list(remote.iterdir())
    assert len(copies) == 1 and copies[0].suffix == ".npz"  # named by its checksum
    assert first.weights["table"].base is not None and not first.weights["table"].flags.owndata

    storage = artifacts.get_storage()
    opened = []
    real_open = type(storage).open
    monkeypatch.setattr(
        type(storage),
        "open",
        lambda self, name, mode="rb": opened.append(name) or real_open(self, name, mode),
    )
    second = artifacts.load_bundle(folder)  # another worker: the copy is there and verified
    np.testing.assert_array_equal(second.weights["table"], arrays()["table"])
    assert not [name for name in opened if name.endswith("weights.npz")]
    assert list(remote.iterdir()) == copies


def test_a_tampered_local_copy_is_fetched_again_not_served(remote):
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    artifacts.load_bundle(folder)
    (copy,) = remote.iterdir()
    data = bytearray(copy.read_bytes())
    data[-20] ^= 0xFF  # one byte of the table's last row
    copy.write_bytes(bytes(data))
    loaded = artifacts.load_bundle(folder)
    np.testing.assert_array_equal(loaded.weights["ids"], arrays()["ids"])
    np.testing.assert_array_equal(loaded.weights["scalar"], arrays()["scalar"])
    assert artifacts._digest(copy)[1] == copy.stem  # replaced by the verified download


def test_a_corrupt_remote_file_leaves_no_copy_behind(remote):
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    replace(folder, "weights.npz", b"something else", in_manifest=False)
    with pytest.raises(artifacts.ArtifactError, match="checksum"):
        artifacts.load_bundle(folder)
    assert not any(remote.iterdir())


def test_copies_nobody_loaded_for_a_week_are_deleted_when_another_is_downloaded(remote):
    remote.mkdir(parents=True, exist_ok=True)
    stale, recent = remote / ("0" * 64 + ".npz"), remote / ("1" * 64 + ".npz")
    for path in (stale, recent):
        path.write_bytes(b"an older version")
    week = artifacts.LOCAL_COPY_DAYS * 86400
    os.utime(stale, (time.time() - week - 60,) * 2)
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights=arrays(), vocabulary={}))
    artifacts.load_bundle(folder)
    assert not stale.exists() and recent.exists()
    assert len(list(remote.iterdir())) == 2
