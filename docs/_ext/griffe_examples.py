"""Griffe extension: read a Google-style ``Example:`` section as an ``Examples`` section.

Griffe's Google parser knows ``Examples:`` as a section (its ``>>>`` lines become code,
rendered by mkdocstrings as highlighted ``pycon``) but reads the singular ``Example:`` as an
admonition whose body is Markdown, where each ``>>>`` line is a triple-nested blockquote.
jaxclust's docstrings say ``Example:`` (doctests and the Google style guide accept both);
this extension renames the section title before griffe parses the docstring, so the
docstrings stay as written. Loaded from ``mkdocs.yml`` (mkdocstrings ``extensions`` option).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# A line that is only "Example:" (any indentation): the section title, never text inside it.
_EXAMPLE_TITLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


def rename_example_sections(text: str) -> str:
    """Return ``text`` with every ``Example:`` section title read as ``Examples:``."""
    return _EXAMPLE_TITLE.sub(r"\g<indent>Examples:", text)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None:
            docstring.value = rename_example_sections(docstring.value)
