"""Tokens: generation, hashing, and who a bearer token belongs to."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass


class Role(enum.StrEnum):
    admin = "admin"
    enroll = "enroll"
    device = "device"


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    device_id: int | None = None

    def require_device(self) -> int:
        """The device's id (a device principal always names its device)."""
        if self.device_id is None:
            raise ValueError(f"a {self.role.value} principal has no device")
        return self.device_id


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    # Tokens are 256 random bits, so a plain (unsalted) hash is enough to make a leaked table useless.
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
