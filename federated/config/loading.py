"""From YAML files and ``key.sub=value`` overrides to a checked :class:`~federated.config.Config`,
and back to plain dicts (what a run directory stores).

Example:
    >>> config = load_config(None, ["compressor.name=zsgd", "power.energy=1e3", "rounds=10"])
    >>> config.compressor.name, config.power.energy, config.rounds
    ('zsgd', 1000.0, 10)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from federated.config.errors import ConfigError
from federated.config.run import Config
from federated.config.shipped import find_config

__all__ = ["load_config", "same_config", "config_to_dict", "config_from_dict", "parse_yaml"]


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0]).removeprefix("an ").removeprefix("a ") + "s"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        type(None): "null",
    }.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (from YAML or a command-line string), or a ConfigError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(key, value, option)
            except ConfigError:
                pass
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    elif tp is type(None):
        if value is None or value in ("null", "None", "~"):
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e3" as a string
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(key, value, _describe(tp))


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "config", data, "a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                prefix + str(key), value, "a known key: " + ", ".join(prefix + n for n in names)
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            # a type hint: a dataclass type, never an instance (which is_dataclass's TypeIs also admits)
            kwargs[key] = _build(typing.cast(type, tp), value, prefix + key + ".")
        else:
            kwargs[key] = _coerce(prefix + key, value, tp)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.under(prefix.rstrip(".")) if prefix else error from None


def parse_yaml(text: str, key: str, where: str) -> Any:
    """YAML ``text`` as data, refusing anchors and aliases (``&a`` / ``*a``: a small file can expand
    into gigabytes, and no configuration needs them) and bad YAML with a ConfigError naming ``key``."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ConfigError(
                    key, where, "YAML without anchors or aliases (&name, *name): write values out"
                )
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(key, where, f"valid YAML ({str(error).splitlines()[0]})") from None


def _set_path(tree: dict, override: str) -> None:
    if "=" not in override:
        raise ConfigError("override", override, "key.sub=value")
    path, raw = override.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ConfigError("override", override, "key.sub=value")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(path, raw, "a key inside a section")
    node[keys[-1]] = parse_yaml(raw, path, raw) if raw.strip() else ""


def _migrate(tree: Any) -> Any:
    """A configuration written by an earlier version, in today's keys: ``optimizer.beta1`` and
    ``optimizer.beta2`` became ``optimizer.betas`` (so old run directories still resume)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("optimizer"), dict):
        return tree
    optimizer = dict(tree["optimizer"])
    if "beta1" in optimizer or "beta2" in optimizer:
        betas = list(optimizer.pop("betas", [0.9, 0.95]))
        betas = [optimizer.pop("beta1", betas[0]), optimizer.pop("beta2", betas[1])]
        optimizer["betas"] = betas
    return {**tree, "optimizer": optimizer}


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (``None``: the defaults; a name: the shipped config, see
    :func:`~federated.config.shipped.find_config`), apply ``key.sub=value`` overrides, validate."""
    tree: dict = {}
    if path is not None:
        path = find_config(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError("config", str(path), "a UTF-8 text file") from None
        tree = parse_yaml(text, "config", str(path)) or {}
        if not isinstance(tree, dict):
            raise ConfigError("config", str(path), "a YAML mapping of keys to values at the top level")
    for override in overrides or []:
        _set_path(tree, override)
    return _build(Config, _migrate(tree), "")


def config_from_dict(tree: Any) -> Config:
    """The configuration a stored dict describes (a run directory's ``config.yaml``, a checkpoint's):
    keys written by earlier versions migrated, keys added since at their defaults; ConfigError if
    it is not one."""
    return _build(Config, _migrate(tree), "")


def same_config(stored: dict, config: Config) -> bool:
    """Whether a stored configuration (a run directory's ``config.yaml``, a checkpoint's) is ``config``,
    keys added to the schema since it was written counting as their defaults.

    >>> same_config({"seed": 0}, load_config(None)), same_config({"seed": 1}, load_config(None))
    (True, False)
    """
    try:
        return _build(Config, _migrate(stored), "") == config
    except ConfigError:
        return False


def config_to_dict(config: Config) -> dict:
    """A plain dict of the whole resolved configuration (what a run directory stores; lists, not tuples)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))
