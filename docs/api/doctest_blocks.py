"""A griffe extension for the API reference: every doctest in a docstring is shown as code.

The docstrings are Google-style (``Args:``, ``Returns:``, ``Attributes:``) with doctests written
under ``Example:`` or straight in the text, as ``pytest --doctest-modules`` runs them. Markdown would
read a bare ``>>>`` line as a nested quote (and ``[a][b]`` in its output as a link), so this wraps
each run of doctest lines (from a ``>>>`` line to the next blank line or dedent) in a ``pycon``
fence before the docstring is parsed, and turns the reST roles the docstrings use
(``:class:`~channels.AWGNChannel```) into code spans. The docstrings themselves stay as they are.
mkdocs.yml loads it (``extensions:`` of the python handler); ``exclude_docs`` keeps it off the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|obj|exc):`~?([^`]+)`")


def fence_doctests(text: str) -> str:
    r"""``text`` with each doctest run fenced as ``pycon`` and reST roles as code spans.

    >>> fence_doctests("Sum.\n\n>>> 1 + 1\n2\n\nEnd.").split("\n")
    ['Sum.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'End.']
    >>> fence_doctests("See :class:`~channels.AWGNChannel`.")
    'See ``channels.AWGNChannel``.'
    """
    out: list[str] = []
    lines = ROLE.sub(r"``\1``", text).split("\n")
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not (stripped == ">>>" or stripped.startswith(">>> ")):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the doctests of every docstring griffe loads (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
