"""User-facing failures: one base type, and subtypes callers can branch on.

The CLI turns a ``ShuffleBitsError`` into a one-line message and a non-zero exit,
so raise it (or a subclass) with a message a user can act on.
"""


class ShuffleBitsError(Exception):
    """A failure caused by the caller's input (file, key, dtype, shape...)."""


class InvalidInputError(ShuffleBitsError, ValueError):
    """A value the caller passed is malformed (also a ``ValueError``, as numpy callers expect)."""


class IntegrityError(ShuffleBitsError):
    """Ciphertext failed authentication, or was made with another key."""


class WrongKeyError(IntegrityError):
    """Ciphertext carries another key's fingerprint: decrypting it with this key cannot succeed."""
