"""The configurations shipped inside the package (``federated/configs``, also reachable as
``configs/`` in a checkout), found by name after any install.

A config argument is a path if that file exists; otherwise a shipped name: ``mnist1d_laser``,
``mnist1d_laser.yaml``, ``paper/gpt2_laser`` and ``configs/mnist1d_laser.yaml`` (the README's
spelling, so its commands work outside a checkout) all name a shipped file.

>>> find_config("mnist1d_laser").name
'mnist1d_laser.yaml'
>>> find_config("configs/paper/gpt2_laser.yaml").parent.name
'paper'
>>> "quickstart" in shipped_configs()
True
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from federated.config.errors import ConfigError

__all__ = ["SHIPPED_DIR", "find_config", "shipped_configs", "describe"]

SHIPPED_DIR = Path(str(resources.files("federated") / "configs"))


def _shipped_name(path: Path) -> str:
    """``configs/paper/gpt2_laser.yaml`` -> ``paper/gpt2_laser``: the name below ``configs/``."""
    parts = list(path.parts)
    if "configs" in parts:
        parts = parts[len(parts) - parts[::-1].index("configs") :]
    name = "/".join(parts)
    return name.removesuffix(".yaml").removesuffix(".yml")


def find_config(path: str | Path, what: str = "config") -> Path:
    """The file ``path`` names: itself if it exists, else the shipped config of that name; else
    ConfigError naming ``what``, the value and both places looked in."""
    given = Path(path)
    if given.is_file():
        return given
    if not given.is_absolute() and given.suffix in ("", ".yaml", ".yml"):
        candidate = SHIPPED_DIR / f"{_shipped_name(given)}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        what,
        str(path),
        f"an existing YAML file, or the name of a shipped config (looked in {Path.cwd()} and "
        f"{SHIPPED_DIR}; `laser configs` lists them)",
    )


def describe(path: Path, width: int = 160) -> str:
    """A config's one-line description: its leading comment up to the first ``Run:``-style line,
    cut to ``width`` characters. The first line always belongs to it, whatever word it starts with
    (the quickstart's opens with ``Quickstart:``, which once read as a label and left it empty)."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text or (words and re.match(r"[A-Z][a-z]+( \(.*\))?:", text)):
            break
        words.append(text)
    description = " ".join(words)
    return description if len(description) <= width else description[: width - 3].rstrip() + "..."


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by name (``paper/`` names for the paper's full-scale ones), sorted."""
    return {
        p.relative_to(SHIPPED_DIR).with_suffix("").as_posix(): p
        for p in sorted(SHIPPED_DIR.rglob("*.yaml"), key=lambda p: (len(p.parts), p))
    }
