"""Server settings: one typed object, read from `PROFILER_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fbnet_core.stats import UNSTABLE_IQR_RATIO
from profiler_server.blobs import BlobStore, default_blob_dir, open_blob_store, parse_s3_url

MIN_TOKEN_CHARS = 16


class DatabaseSettings(BaseSettings):
    """What `profiler-server migrate` needs: only the database."""

    model_config = SettingsConfigDict(env_prefix="PROFILER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./profiler.sqlite3"
    # Op models' files (profiler_server/blobs/); default: next to a SQLite file, else ./profiler-blobs. Every
    # replica of a server must see the same directory (a shared volume).
    blob_dir: Path | None = None
    # `s3://bucket/prefix`: the models in an S3-compatible bucket instead (blob_dir is then unused). Credentials
    # and region: boto3's AWS_* variables; the endpoint of a store other than AWS: s3_endpoint_url.
    blob_url: str | None = None
    s3_endpoint_url: str | None = None
    # Connect and read timeout of each S3 request (3 attempts at most): how long an upload or download waits on
    # a store that does not answer before its 503.
    s3_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("blob_url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if not value:  # `PROFILER_BLOB_URL=` (e.g. compose's `${PROFILER_BLOB_URL:-}`) means unset
            return None
        parse_s3_url(value)
        return value

    def blob_root(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else default_blob_dir(self.database_url)

    def blob_store(self) -> BlobStore:
        """The store these settings choose (no request is made: a store that is down fails on first use)."""
        return open_blob_store(
            self.blob_url,
            self.blob_root(),
            s3_endpoint_url=self.s3_endpoint_url,
            s3_timeout_s=self.s3_timeout_s,
        )


class Settings(DatabaseSettings):
    admin_token: SecretStr | None = None
    enroll_token: SecretStr | None = None
    # Dev mode tolerates missing tokens (the CLI generates them) and is the only mode that does.
    dev: bool = False
    migrate_on_start: bool = True

    lease_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    max_lease_tasks: int = Field(default=100, ge=1)

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_samples_per_result: int = Field(default=100_000, ge=1)
    max_results_per_request: int = Field(default=1_000, ge=1)
    max_keys_per_job: int = Field(default=100_000, ge=1)
    # Per-token rate limit (profiler_server/ratelimit.py; the admin token is exempt): a request costs 1 plus 1
    # per MiB of body. 0 turns it off. A well-behaved agent needs a few requests per op measured.
    rate_limit_per_s: float = Field(default=50.0, ge=0)
    rate_limit_burst: float = Field(default=200.0, ge=1)
    # Requests whose caller is not known without the database (no token, an unverified token), per client address.
    anonymous_rate_limit_per_s: float = Field(default=50.0, ge=0)
    anonymous_rate_limit_burst: float = Field(default=200.0, ge=1)

    # An entry is flagged unstable when IQR / median reaches this (fbnet_core.stats.is_unstable).
    unstable_iqr_ratio: float = Field(default=UNSTABLE_IQR_RATIO, gt=0)
    # Database work: at most `db_connections` requests at once, each in one worker thread with one pooled
    # connection; a request waits at most `db_queue_timeout_s` for its turn (SQLite: for this process's write turn
    # too), else 503 + Retry-After. SQLite waits at most the busy timeout for another process's write lock.
    db_connections: int = Field(default=10, ge=1)
    db_queue_timeout_s: float = Field(default=5.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5_000, ge=0)
    # The read-only HTML dashboard at `/` (no token needed to view it; it shows no secrets).
    dashboard_enabled: bool = True

    @model_validator(mode="after")
    def _require_tokens_outside_dev(self) -> Settings:
        for name in ("admin_token", "enroll_token"):
            token: SecretStr | None = getattr(self, name)
            if token is None:
                if not self.dev:
                    raise ValueError(
                        f"PROFILER_{name.upper()} is required (or run `profiler-server serve --dev`)"
                    )
            elif len(token.get_secret_value()) < MIN_TOKEN_CHARS:
                raise ValueError(f"PROFILER_{name.upper()} must be at least {MIN_TOKEN_CHARS} characters")
        if self.admin_token is not None and self.admin_token == self.enroll_token:
            raise ValueError("PROFILER_ADMIN_TOKEN and PROFILER_ENROLL_TOKEN must differ")
        return self


async def get_settings(request: Request) -> Settings:
    """FastAPI dependency: the settings the app was created with (async: no worker thread for a lookup)."""
    return request.app.state.settings
