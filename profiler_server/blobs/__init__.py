"""Op models' bytes, content-addressed by sha256, outside the database.

- store.py: the `BlobStore` protocol every store implements, and its errors;
- directory.py: the default store, a directory (`PROFILER_BLOB_DIR`);
- s3.py: an S3-compatible bucket (`PROFILER_BLOB_URL=s3://bucket/prefix`; needs the `[s3]` extra);
- factory.py: the store the settings choose.
"""

from profiler_server.blobs.directory import DirectoryBlobStore, default_blob_dir
from profiler_server.blobs.factory import open_blob_store, parse_s3_url
from profiler_server.blobs.store import BlobMissing, BlobStore, BlobStoreUnavailable, StoredBlob, check_sha256

__all__ = [
    "BlobMissing",
    "BlobStore",
    "BlobStoreUnavailable",
    "DirectoryBlobStore",
    "StoredBlob",
    "check_sha256",
    "default_blob_dir",
    "open_blob_store",
    "parse_s3_url",
]
