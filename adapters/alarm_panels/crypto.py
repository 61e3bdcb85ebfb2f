"""AES-CBC as used by SIA DC-09 encrypted messages, and account key parsing.

DC-09 encrypts the region after ``[`` with AES-CBC, an all-zero IV and no padding scheme of
its own: the sender prepends pseudo-random pad bytes so the plaintext is a multiple of the
block size. The pad never contains ``|``, ``[`` or ``]``.
"""

from __future__ import annotations

import secrets
import string
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
KEY_SIZES = (16, 24, 32)
_ZERO_IV = bytes(BLOCK)
# Pad characters a receiver emits: plain alphanumerics are safe with every panel firmware.
_PAD_ALPHABET = (string.ascii_letters + string.digits).encode("ascii")

KeyEncoding = Literal["ascii", "hex"]


class InvalidKey(ValueError):
    """A configured key is not a valid DC-09 AES key."""


def parse_key(text: str, encoding: KeyEncoding) -> bytes:
    """Turn a configured key into AES key bytes.

    ``encoding`` must be given explicitly: a 32-character string is a valid ASCII key (256 bits)
    and also a valid hex key (128 bits), so the format cannot be guessed.
    """
    if encoding == "ascii":
        try:
            key = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidKey("ASCII key contains non-ASCII characters") from exc
        if len(key) not in KEY_SIZES:
            raise InvalidKey(f"ASCII key must be 16, 24 or 32 characters, got {len(key)}")
        return key
    if encoding == "hex":
        if len(text) not in (2 * n for n in KEY_SIZES):
            raise InvalidKey(f"hex key must be 32, 48 or 64 hex digits, got {len(text)}")
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidKey("hex key contains non-hex characters") from exc
    raise InvalidKey(f"unknown key encoding {encoding!r}")


def check_key(key: bytes) -> None:
    """Raise ``InvalidKey`` unless ``key`` has an AES key size."""
    if len(key) not in KEY_SIZES:
        raise InvalidKey(f"AES key must be 16, 24 or 32 bytes, got {len(key)}")


def encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-CBC encrypt ``plaintext`` (already a multiple of 16 bytes) with a zero IV."""
    if len(plaintext) % BLOCK:
        raise ValueError("plaintext is not a multiple of the AES block size")
    enc = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return enc.update(plaintext) + enc.finalize()


def decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """AES-CBC decrypt with a zero IV. The caller checks the plaintext makes sense."""
    if not ciphertext or len(ciphertext) % BLOCK:
        raise ValueError("ciphertext is not a positive multiple of the AES block size")
    dec = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    return dec.update(ciphertext) + dec.finalize()


def pad_length(content_len: int) -> int:
    """Pad bytes to put before ``content_len`` bytes: 1..16, a full block if already aligned."""
    return BLOCK - (content_len % BLOCK)


def random_pad(length: int) -> bytes:
    """Pseudo-random pad of ``length`` bytes, never containing ``|``, ``[`` or ``]``."""
    return bytes(secrets.choice(_PAD_ALPHABET) for _ in range(length))
