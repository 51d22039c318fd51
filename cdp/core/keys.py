"""Random secrets: write keys and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_write_key() -> str:
    """32 alphanumeric characters (~190 bits): safe in URLs, Basic auth and snippets."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def new_api_token() -> str:
    return "cdp_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
