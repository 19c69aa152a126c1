"""The blob store the settings choose: a directory by default, an S3-compatible bucket for `s3://` URLs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from profiler_server.blobs.directory import DirectoryBlobStore
from profiler_server.blobs.store import BlobStore, BlobStoreUnavailable


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return parts.netloc, parts.path.strip("/")


def open_blob_store(
    blob_url: str | None, blob_dir: Path, *, s3_endpoint_url: str | None, s3_timeout_s: float
) -> BlobStore:
    """The bucket of `blob_url` when set, else the directory `blob_dir`. Makes no request."""
    if blob_url is None:
        return DirectoryBlobStore(blob_dir)
    bucket, prefix = parse_s3_url(blob_url)
    try:
        from profiler_server.blobs import s3  # boto3 is imported only for a server that uses S3
    except ImportError as exc:
        raise BlobStoreUnavailable(
            f"PROFILER_BLOB_URL={blob_url} needs boto3: pip install 'fbnet-lut[s3]' ({exc})"
        ) from exc
    return s3.connect(bucket, prefix, endpoint_url=s3_endpoint_url, timeout_s=s3_timeout_s)
