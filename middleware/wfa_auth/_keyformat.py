"""The Workflow Automation key format: Key IDs, Key Secrets and the secret's checksum.

A Key ID is ``wfak_`` and 20 base62 characters; it is public. A Key Secret is ``wfas_``,
32 base62 characters from :mod:`secrets` (about 190 bits) and a 6-character base62 CRC32
of those 32 characters. The prefix lets secret scanners spot a leaked secret; the checksum
lets them, and this middleware, reject a mistyped or made-up secret without touching the
database or running argon2.
"""

from __future__ import annotations

import re
import secrets
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_PREFIX = "wfak_"
SECRET_PREFIX = "wfas_"  # noqa: S105 -- a public prefix, not a secret
KEY_ID_BODY_LENGTH = 20
SECRET_BODY_LENGTH = 32
CHECKSUM_LENGTH = 6

KEY_ID_PATTERN = re.compile(r"\Awfak_[0-9A-Za-z]{20}\Z")
SECRET_PATTERN = re.compile(r"\Awfas_([0-9A-Za-z]{32})([0-9A-Za-z]{6})\Z")
#: For secret scanners: matches a Key Secret anywhere in a text.
SECRET_SCAN_REGEX = r"\bwfas_[0-9A-Za-z]{38}\b"  # noqa: S105 -- a pattern


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def base62_checksum(body: str) -> str:
    """The CRC32 of ``body`` in base62, left-padded to 6 characters (62**6 > 2**32)."""
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, rest = divmod(value, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits))


def generate_key_id() -> str:
    """A new random Key ID (about 119 bits, so IDs are not guessable either)."""
    return KEY_ID_PREFIX + _random_base62(KEY_ID_BODY_LENGTH)


def generate_key_secret() -> str:
    """A new random Key Secret with its checksum; callers hash it and then forget it."""
    body = _random_base62(SECRET_BODY_LENGTH)
    return SECRET_PREFIX + body + base62_checksum(body)


def is_valid_key_id(value: str) -> bool:
    """True when ``value`` has the shape of a Key ID."""
    return KEY_ID_PATTERN.match(value) is not None


def is_valid_key_secret(value: str) -> bool:
    """True when ``value`` has the Key Secret prefix, length and a matching checksum."""
    match = SECRET_PATTERN.match(value)
    if match is None:
        return False
    body, checksum = match.groups()
    return secrets.compare_digest(base62_checksum(body), checksum)
