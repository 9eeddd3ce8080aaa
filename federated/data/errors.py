"""Errors shared by the data loaders."""

__all__ = ["DataError"]


class DataError(RuntimeError):
    """Data that cannot be found, fetched or read; the message says what to do."""
