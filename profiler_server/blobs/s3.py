"""An S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...): one object per model, `<prefix>/<sha256>`.

Chosen by `PROFILER_BLOB_URL=s3://bucket/prefix` (profiler_server/blobs/factory.py imports this module, and so
boto3, only then). Credentials and region come from boto3's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE, AWS_DEFAULT_REGION, an instance role); `PROFILER_S3_ENDPOINT_URL` points at a
store other than AWS. A successful PUT is durable, so an object is stored before the row naming it is committed.
Every error of S3 or of the connection becomes `BlobStoreUnavailable` here, once, with a message that says what
to fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from profiler_server.blobs.store import BlobMissing, BlobStoreUnavailable, StoredBlob, check_sha256

# S3 answers at most 1,000 keys per listing page.
DEFAULT_LIST_PAGE_SIZE = 1000
# Attempts per request, with boto3's standard retry mode (backoff on throttling and dropped connections): enough
# to ride out a blip, few enough that a request to a store that is down fails in seconds, not minutes.
MAX_ATTEMPTS = 3
# Codes for a key that is not there: GetObject says NoSuchKey; HeadObject has no body, so only its status.
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_ACCESS_CODES = frozenset(
    {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    def __init__(
        self, client: BaseClient, bucket: str, prefix: str = "", list_page_size: int = DEFAULT_LIST_PAGE_SIZE
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.list_page_size = list_page_size

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}/{sha256}" if self.prefix else sha256

    def put(self, sha256: str, content: bytes) -> None:
        key = self.key(sha256)
        with self._translated("store"):
            # Content-addressed: an object under this key already holds these bytes; skip sending them again.
            if self._size_bytes(key) is not None:
                return
            self.client.put_object(Bucket=self.bucket, Key=key, Body=content)

    def get(self, sha256: str) -> bytes:
        key = self.key(sha256)
        with self._translated("read"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise BlobMissing(sha256) from exc
                raise
            return response["Body"].read()

    def delete(self, sha256: str) -> int:
        key = self.key(sha256)
        with self._translated("remove"):
            size_bytes = self._size_bytes(key)
            if size_bytes is None:
                return 0
            self.client.delete_object(Bucket=self.bucket, Key=key)
            return size_bytes

    def stored(self) -> Iterator[StoredBlob]:
        key_prefix = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=key_prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        with self._translated("list"):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(key_prefix) :]
                    try:
                        check_sha256(name)
                    except ValueError:
                        continue  # not a model of this store (another tool's object, a deeper prefix)
                    yield StoredBlob(name, item["Size"], item["LastModified"].timestamp())

    def _size_bytes(self, key: str) -> int | None:
        """The object's size, None if there is none."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """S3's and the connection's errors -> one `BlobStoreUnavailable` saying what to check."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                reason = "the bucket does not exist (create it, or correct PROFILER_BLOB_URL)"
            elif code in _ACCESS_CODES:
                reason = (
                    f"access denied ({code}): check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "or AWS_PROFILE) and the bucket's policy"
                )
            else:
                message = exc.response.get("Error", {}).get("Message", "")
                reason = f"{code}: {message}" if message else str(exc)
            raise BlobStoreUnavailable(f"cannot {action} models in {self.location}: {reason}") from exc
        except BotoCoreError as exc:  # unreachable endpoint, timeout, no credentials, a broken connection
            raise BlobStoreUnavailable(f"cannot {action} models in {self.location}: {exc}") from exc


def connect(
    bucket: str,
    prefix: str,
    *,
    endpoint_url: str | None,
    timeout_s: float,
    list_page_size: int = DEFAULT_LIST_PAGE_SIZE,
) -> S3BlobStore:
    """A store on a new boto3 client (thread-safe: the server's worker threads share it); no request is made."""
    config = Config(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        # S3-compatible servers (MinIO, Ceph) answer at <endpoint>/<bucket>; the virtual-host style AWS prefers
        # would need a DNS name per bucket.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # A session of its own: boto3's default session is not thread-safe to create clients from.
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
    return S3BlobStore(client, bucket, prefix, list_page_size)
