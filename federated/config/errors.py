"""The configuration's error: one line naming the key, the value and what is accepted."""

from __future__ import annotations

import reprlib

__all__ = ["ConfigError", "check", "shown"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def shown(value: object) -> str:
    """``repr(value)``, bounded (long strings and containers are cut), for one-line messages.

    >>> shown("x" * 1000)[:12], len(shown("x" * 1000)) < 100
    ("'xxxxxxxxxxx", True)
    """
    return _REPR.repr(value)


class ConfigError(ValueError):
    """A bad configuration: ``key``, ``value`` and what is ``accepted``."""

    def __init__(self, key: str, value: object, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key} = {shown(value)} is not accepted; expected {accepted}")

    def under(self, section: str) -> ConfigError:
        return ConfigError(f"{section}.{self.key}", self.value, self.accepted)


def check(ok: bool, key: str, value: object, accepted: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(key, value, accepted)
