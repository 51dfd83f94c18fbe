"""Sealing link messages (DESIGN.md contract 3): every message, a command or its response, is the
msgpack array `[counter, body, mac]`, where `mac` is HMAC-SHA256 under the pre-shared key of the
frame type, the counter (u64, big-endian) and `body`, so a response cannot be passed off as a
command, nor one command's body as another's. And the key: a file holding it as hex.

The counter's range: the wire carries a u64, but the payload takes counters below COUNTER_TOP
(2^56 microseconds: the year 4253 of the ground's clock) and no more than COUNTER_WINDOW (2^42 us,
about 51 days) ahead of the last it accepted; COUNTER_TOP itself is kept for a re-key, so the link
can be re-keyed even once its counters are spent. A re-key derives the next key on both ends as
`rekeyed(key, nonce)`, HMAC-SHA256 under the current key of "orbitlite rekey" and the nonce the
command carries: no key material crosses the link (onboard/link/endpoint.py)."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from onboard.errors import LinkError
from onboard.link.framing import Frame, FrameType

KEY_BYTES = 32  # the length of key this module generates, and the least it accepts is 16
COUNTER_TOP = 1 << 56  # commands count below it; a re-key may use it
COUNTER_WINDOW = 1 << 42  # the furthest a command may jump past the last accepted counter
NONCE_BYTES = 16  # of a re-key's nonce
REKEY_LABEL = b"orbitlite rekey"


def read_key(path: Path) -> bytes:
    """The pre-shared key: a file holding it as hex (e.g. from `orbitlite hil link keygen`)."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise LinkError(f"key file {path} cannot be read: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise LinkError(f"key file {path} must hold the key as hexadecimal digits") from None
    if len(key) < 16:
        raise LinkError(f"key file {path} holds {len(key)} bytes; a link key has at least 16")
    return key


def new_key() -> str:
    return os.urandom(KEY_BYTES).hex()


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def rekeyed(key: bytes, nonce: bytes) -> bytes:
    """The key that follows `key` after a re-key with `nonce`, derived alike on both ends."""
    return hmac.new(key, REKEY_LABEL + nonce, hashlib.sha256).digest()


def _mac(key: bytes, kind: FrameType, counter: int, body: bytes) -> bytes:
    return hmac.new(key, bytes([kind]) + counter.to_bytes(8, "big") + body, hashlib.sha256).digest()


def seal(key: bytes, kind: FrameType, counter: int, body: dict[str, Any]) -> bytes:
    packed = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb([counter, packed, _mac(key, kind, counter, packed)], use_bin_type=True)


@dataclass(frozen=True)
class Opened:
    counter: int
    body: dict[str, Any] | None  # None when the MAC did not verify
    raw: bytes


def unseal(key: bytes, frame: Frame) -> Opened | None:
    """The message in a frame; None if it is no message at all. `body` is None if the MAC fails."""
    try:
        counter, packed, mac = msgpack.unpackb(frame.payload, raw=False)
        if not (isinstance(counter, int) and 0 <= counter < 1 << 64 and isinstance(packed, bytes)
                and isinstance(mac, bytes)):
            return None
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not hmac.compare_digest(mac, _mac(key, frame.type, counter, packed)):
        return Opened(counter, None, frame.payload)
    try:
        body = msgpack.unpackb(packed, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return Opened(counter, body if isinstance(body, dict) else None, frame.payload)
