"""The storage contract, run against both backends: a local directory and a real S3 server."""
from __future__ import annotations

import hashlib
import os
import time
import urllib.request
import uuid

import pytest

from storage import NotFound, StorageUnavailable, check_key, open_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return open_store(None, tmp_path / "root")
    server = request.getfixturevalue("object_store")
    for name, value in server.env("contract").items():
        monkeypatch.setenv(name, value)
    return open_store(f"s3://contract/{uuid.uuid4().hex[:8]}", tmp_path / "scratch", endpoint_url=server.endpoint,
                      cache_max_bytes=64 * 1024 * 1024)


def test_put_open_roundtrip_streams_chunks(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    store.put_file("videos/a.avi", src)
    assert src.exists(), "without move the source stays"
    assert store.exists("videos/a.avi") and store.size("videos/a.avi") == len(data)
    got = bytearray()
    with store.open("videos/a.avi") as fh:
        while chunk := fh.read(1 << 20):
            assert len(chunk) <= 1 << 20
            got += chunk
    assert bytes(got) == data


def test_put_move_takes_the_file(store, tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(b"moved")
    store.put_file("imports/x/m.bin", src, move=True)
    assert not src.exists()
    assert store.read_bytes("imports/x/m.bin") == b"moved"


def test_missing_key_is_not_found(store):
    assert not store.exists("videos/none.avi")
    with pytest.raises(NotFound):
        store.open("videos/none.avi").read()
    with pytest.raises(NotFound):
        store.size("videos/none.avi")
    with pytest.raises(NotFound):
        store.local_path("videos/none.avi")
    store.delete("videos/none.avi")  # deleting what is gone is not an error


def test_modified_says_when_an_object_was_written(store):
    before = time.time()
    store.put_bytes("imports/y/m.bin", b"m")
    assert before - 5 <= store.modified("imports/y/m.bin") <= time.time() + 5  # S3 keeps whole seconds
    with pytest.raises(NotFound):
        store.modified("imports/y/none.bin")


def test_staged_publishes_only_on_success(store):
    with pytest.raises(RuntimeError):
        with store.staged("exports/e.zip") as path:
            path.write_bytes(b"half")
            raise RuntimeError("export failed")
    assert not store.exists("exports/e.zip")
    with store.staged("exports/e.zip") as path:
        path.write_bytes(b"whole")
        assert not store.exists("exports/e.zip"), "not visible before the block ends"
    assert store.read_bytes("exports/e.zip") == b"whole"
    assert not any(store.scratch.joinpath("tmp").iterdir())


def test_local_path_matches_checksum(store, tmp_path):
    data = os.urandom(200_000)
    store.put_bytes("videos/v.avi", data)
    digest = hashlib.sha256(data).hexdigest()
    path = store.local_path("videos/v.avi", digest)
    assert path.read_bytes() == data
    assert store.local_path("videos/v.avi").read_bytes() == data  # digest from the store itself


def test_keys_and_delete_prefix(store):
    for key in ("reports/s1/j1/a.png", "reports/s1/j1/b.png", "reports/s1/j2/a.png", "reports/s2/a.png"):
        store.put_bytes(key, key.encode())
    assert sorted(store.keys("reports/s1/")) == ["reports/s1/j1/a.png", "reports/s1/j1/b.png",
                                                 "reports/s1/j2/a.png"]
    assert store.delete_prefix("reports/s1/j1/") == 2
    assert sorted(store.keys("reports/")) == ["reports/s1/j2/a.png", "reports/s2/a.png"]


def test_copy(store):
    store.put_bytes("reports/s/j/x.matches", b"m" * 1000)
    store.copy("reports/s/j/x.matches", "runs/r/v.matches")
    assert store.read_bytes("runs/r/v.matches") == b"m" * 1000


def test_keys_cannot_escape(store):
    for bad in ("../etc/passwd", "/abs", "a/../../b", ""):
        with pytest.raises(ValueError):
            check_key(bad)
        with pytest.raises(ValueError):
            store.exists(bad)


def test_url_is_presigned_or_none(store):
    store.put_bytes("exports/u.json", b'{"a": 1}')
    url = store.url("exports/u.json", filename='attachment; filename="u.json"', mimetype="application/json")
    if store.__class__.__name__ == "LocalStore":
        assert url is None
        return
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b'{"a": 1}'
        assert "u.json" in resp.headers["Content-Disposition"]


def test_cache_refuses_a_tampered_copy(tmp_path, object_store, monkeypatch):
    for name, value in object_store.env("cache").items():
        monkeypatch.setenv(name, value)
    s3 = open_store("s3://cache/t", tmp_path / "scratch", endpoint_url=object_store.endpoint)
    data = os.urandom(100_000)
    s3.put_bytes("videos/t.avi", data)
    digest = hashlib.sha256(data).hexdigest()
    first = s3.local_path("videos/t.avi", digest)
    assert s3.local_path("videos/t.avi", digest) == first and s3.cache.hits == 1
    first.write_bytes(b"tampered" + data[8:])
    again = s3.local_path("videos/t.avi", digest)
    assert again.read_bytes() == data and s3.cache.refused == 1
    with pytest.raises(ValueError):
        s3.local_path("videos/t.avi", hashlib.sha256(b"other").hexdigest())  # the store's bytes do not match


def test_cache_is_bounded_lru(tmp_path, object_store, monkeypatch):
    for name, value in object_store.env("lru").items():
        monkeypatch.setenv(name, value)
    s3 = open_store("s3://lru/t", tmp_path / "scratch", endpoint_url=object_store.endpoint,
                    cache_max_bytes=250_000)
    digests = []
    for i in range(4):
        data = os.urandom(100_000)
        s3.put_bytes(f"videos/{i}.avi", data)
        digests.append(hashlib.sha256(data).hexdigest())
    s3.local_path("videos/0.avi", digests[0])
    s3.local_path("videos/1.avi", digests[1])
    s3.local_path("videos/0.avi", digests[0])  # 0 used last: 1 is the oldest now
    s3.local_path("videos/2.avi", digests[2])
    cached = {p.name for p in s3.cache.root.iterdir()}
    assert cached == {digests[0], digests[2]}
    assert s3.cache.total_bytes() <= 250_000


def test_store_down_is_unavailable_and_leaves_no_object(tmp_path, monkeypatch):
    from objectstore import ObjectStoreServer

    server = ObjectStoreServer(tmp_path / "down").start()
    for name, value in server.env("down").items():
        monkeypatch.setenv(name, value)
    s3 = open_store("s3://down/p", tmp_path / "scratch", endpoint_url=server.endpoint)
    s3.put_bytes("videos/ok.avi", b"ok")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    server.stop()
    with pytest.raises(StorageUnavailable):
        s3.put_file("videos/big.avi", big)
    with pytest.raises(StorageUnavailable):
        s3.exists("videos/ok.avi")
    server.start()
    assert not s3.exists("videos/big.avi")
    assert s3.read_bytes("videos/ok.avi") == b"ok"
    server.stop()
