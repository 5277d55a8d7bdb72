"""One exception type for every user-facing failure.

The CLI turns a ``ShuffleBitsError`` into a one-line message and a non-zero exit,
so raise it (or a subclass) with a message a user can act on.
"""


class ShuffleBitsError(Exception):
    """A failure caused by the caller's input (file, key, dtype, shape...)."""


class MissingDependencyError(ShuffleBitsError):
    """An optional dependency needed for this operation is not installed."""


class IntegrityError(ShuffleBitsError):
    """Ciphertext failed authentication, or was made with another key."""
