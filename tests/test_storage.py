"""Model files on any Django storage: a version saved to, served from and deleted on an S3 API
(moto's server on a loopback port, reached through django-storages and boto3, as a shop's web
servers reach S3), with nothing written to the local media folder; the web server maps its
own download of the arrays."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("storages", reason="django-storages is not installed")
boto3 = pytest.importorskip("boto3")

BUCKET = "shop-models"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path):
    """moto's S3 API server on a free loopback port (started here, stopped here)."""
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError((tmp_path / "moto.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def test_a_version_lives_on_s3(s3_endpoint, catalogue, settings, recorder_settings, tmp_path):
    pytest.importorskip("keras", reason="the ml extra is not installed")
    from recommendations import artifacts
    from recommendations.identity import Shopper
    from recommendations.serving import loader, services
    from tests import factories, serving_world

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=CREDENTIALS["access_key"],
        aws_secret_access_key=CREDENTIALS["secret_key"],
        region_name=CREDENTIALS["region_name"],
    )
    client.create_bucket(Bucket=BUCKET)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "models": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": s3_endpoint, **CREDENTIALS},
        },
    }
    recorder_settings(ARTIFACT_STORAGE="models", LOCAL_MODEL_FOLDER=str(tmp_path / "local"))

    version = serving_world.install_version()
    stored = {entry["Key"] for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert f"{version.artifact_path}/manifest.json" in stored and len(stored) >= 3
    assert not (tmp_path / "media").exists()  # nothing on this machine's disk

    loader.reset()  # a web server that starts now reads the version from S3
    assert loader.active_model().version_id == version.pk
    # Its arrays were downloaded once to this machine's folder, and are mapped from there.
    (copy,) = (tmp_path / "local").iterdir()
    assert copy.suffix == ".npz" and copy.stat().st_size > 0
    user = factories.user("s3-shopper")
    for item in serving_world.items_of("electronics.smartphone")[:3]:
        factories.event("view", item_id=item, user=user)
    assert services.for_you(Shopper(user_id=user.pk), 5).source.startswith("model")

    artifacts.delete_bundle(version.artifact_path)
    assert not client.list_objects_v2(Bucket=BUCKET).get("Contents")
