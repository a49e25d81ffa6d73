"""The S3-compatible backend (AWS S3, MinIO, Ceph RGW, rclone serve s3).

Uploads stream from a local file in multipart chunks (memory stays at a few chunks whatever the
size); an object exists only once its upload completed, so publication is atomic. Every object
carries its sha256 as metadata, which keys the local cache and checks what was read.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import CHUNK, NotFound, StorageUnavailable, Store, check_key
from .cache import ChecksumCache, file_digest

PART = 16 * 1024 * 1024


class S3Store(Store):
    def __init__(self, bucket: str, prefix: str = "", *, cache: ChecksumCache, endpoint_url: str | None = None,
                 region: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not bucket:
            raise ValueError("STORAGE_URL names no bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache
        self.scratch = cache.root.parent
        self.endpoint_url = endpoint_url
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None,
            region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60))
        self.transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4,
                                       use_threads=True)
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url!r})"

    def name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, key: str):
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound") or status == 404:
                raise NotFound(key) from None
            if status is not None and status >= 500:
                raise StorageUnavailable(f"object store answered {status} for {key}") from exc
            raise
        except S3UploadFailedError as exc:
            raise StorageUnavailable(f"object store upload of {key} failed: {exc}") from exc
        except BotoCoreError as exc:  # connection refused, reset, timed out
            raise StorageUnavailable(f"object store unreachable for {key}: {exc}") from exc

    def ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        with self._errors(self.bucket):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                self.client.create_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    def put_file(self, key: str, path: str | Path, *, move: bool = False) -> None:
        self.ensure_bucket()
        digest = file_digest(path)
        with self._errors(key):
            self.client.upload_file(str(path), self.bucket, self.name(key), Config=self.transfer,
                                    ExtraArgs={"Metadata": {"sha256": digest}})
        if move:
            Path(path).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        with self._errors(key):
            body = self.client.get_object(Bucket=self.bucket, Key=self.name(key))["Body"]
        return _Stream(body, self, key)

    def _head(self, key: str) -> dict:
        with self._errors(key):
            return self.client.head_object(Bucket=self.bucket, Key=self.name(key))

    def digest_of(self, key: str) -> tuple[str, str]:
        """(digest, algorithm) of the stored object: its sha256 metadata, else a plain MD5 ETag."""
        head = self._head(key)
        sha = (head.get("Metadata") or {}).get("sha256")
        if sha:
            return sha, "sha256"
        etag = head.get("ETag", "").strip('"')
        if etag and "-" not in etag:
            return etag, "md5"
        raise NotFound(f"{key}: the object store keeps no digest for it")

    def local_path(self, key: str, checksum: str | None = None) -> Path:
        algorithm = "sha256"
        if checksum is None:
            checksum, algorithm = self.digest_of(key)

        def fetch(tmp: Path) -> None:
            with self._errors(key):
                self.client.download_file(self.bucket, self.name(key), str(tmp), Config=self.transfer)

        return self.cache.get(checksum, Path(key).name, fetch, algorithm)

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def modified(self, key: str) -> float:
        return self._head(key)["LastModified"].timestamp()

    def delete(self, key: str) -> None:
        try:
            with self._errors(key):
                self.client.delete_object(Bucket=self.bucket, Key=self.name(key))
        except NotFound:
            pass  # S3 answers 204 for a missing key; some compatible servers answer 404

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.name(prefix) if prefix.strip("/") else self.prefix
        if base and prefix.endswith("/") or (base and not prefix):
            base = base.rstrip("/") + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._errors(prefix or "/"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base or ""):
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]

    def url(self, key: str, *, filename: str | None = None, mimetype: str | None = None,
            ttl_seconds: int = 300) -> str | None:
        params = {"Bucket": self.bucket, "Key": self.name(key)}
        if filename:
            params["ResponseContentDisposition"] = filename
        if mimetype:
            params["ResponseContentType"] = mimetype
        with self._errors(key):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)


class _Stream:
    """A streamed body that reads in chunks and turns a dropped connection into StorageUnavailable."""

    def __init__(self, body, store: S3Store, key: str):
        self._body, self._store, self._key = body, store, key

    def read(self, n: int = -1) -> bytes:
        with self._store._errors(self._key):
            return self._body.read(None if n is None or n < 0 else n)

    def __iter__(self):
        while chunk := self.read(CHUNK):
            yield chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
