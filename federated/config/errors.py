"""The configuration's error: one line naming the key, the value and what is accepted."""

from __future__ import annotations

__all__ = ["ConfigError", "check"]


class ConfigError(ValueError):
    """A bad configuration: ``key``, ``value`` and what is ``accepted``."""

    def __init__(self, key: str, value: object, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key} = {value!r} is not accepted; expected {accepted}")

    def under(self, section: str) -> ConfigError:
        return ConfigError(f"{section}.{self.key}", self.value, self.accepted)


def check(ok: bool, key: str, value: object, accepted: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(key, value, accepted)
