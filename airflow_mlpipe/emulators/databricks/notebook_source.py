"""Notebooks as Databricks stores them, split into the cells the emulator executes.

Two formats reach the workspace: the ``.py`` *source* format that Databricks exports and imports
(``# Databricks notebook source`` first, cells separated by ``# COMMAND ----------``, magic cells written as
``# MAGIC %sql`` lines), and Jupyter ``.ipynb`` JSON. Both become a list of :class:`Cell` with a language
(``python``, ``sql``, ``md``, ``sh``, ``pip``, ``run`` ...), so the executor does not care where a cell came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SOURCE_HEADER = "# Databricks notebook source"
CELL_SEPARATOR = re.compile(r"^# COMMAND -+\s*$", re.MULTILINE)
_MAGIC_PREFIX = "# MAGIC"
_MAGIC_LANGUAGES = {"%python": "python", "%sql": "sql", "%md": "md", "%sh": "sh", "%pip": "pip", "%run": "run",
                    "%fs": "fs", "%scala": "scala", "%r": "r", "%md-sandbox": "md"}


@dataclass(frozen=True)
class Cell:
    """One notebook cell: its language and its code without the magic line."""

    language: str
    source: str
    index: int


_INLINE_MAGICS = ("run", "pip", "fs")


def _magic_text(cell: Cell) -> str:
    """A non-Python cell as its magic command and body (``%run``/``%pip`` keep their argument inline)."""
    if cell.language in _INLINE_MAGICS:
        return f"%{cell.language} {cell.source}"
    return f"%{cell.language}\n{cell.source}"


def looks_like_ipynb(content: bytes | str) -> bool:
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return False
    try:
        return isinstance(json.loads(stripped).get("cells"), list)
    except (ValueError, AttributeError):
        return False


def is_source_notebook(content: bytes | str) -> bool:
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    return text.lstrip("\ufeff").startswith(SOURCE_HEADER)


def parse_notebook(content: bytes | str) -> list[Cell]:
    """The cells of a notebook in either format (plain Python without the header is one Python cell)."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    if looks_like_ipynb(text):
        return _parse_ipynb(text)
    return _parse_source(text)


def _split_magic(code: str, index: int, default: str = "python") -> Cell:
    stripped = code.strip("\n")
    first, _, rest = stripped.partition("\n")
    token = first.strip().split(maxsplit=1)[0] if first.strip() else ""
    if token in _MAGIC_LANGUAGES:
        language = _MAGIC_LANGUAGES[token]
        inline = first.strip()[len(token):].strip()
        body = (inline + "\n" + rest) if inline else rest
        return Cell(language, body.strip("\n"), index)
    return Cell(default, stripped, index)


def _parse_source(text: str) -> list[Cell]:
    text = text.lstrip("\ufeff")
    if text.startswith(SOURCE_HEADER):
        text = text[len(SOURCE_HEADER):]
    cells: list[Cell] = []
    for chunk in CELL_SEPARATOR.split(text):
        lines = chunk.strip("\n").splitlines()
        if not any(line.strip() for line in lines):
            continue
        magic = [line for line in lines if line.strip()]
        if magic and all(line.startswith(_MAGIC_PREFIX) for line in magic):
            body = "\n".join(line[len(_MAGIC_PREFIX):][1:] if line.startswith(_MAGIC_PREFIX + " ")
                             else line[len(_MAGIC_PREFIX):] for line in lines)
            cells.append(_split_magic(body, len(cells)))
        else:
            cells.append(Cell("python", "\n".join(lines), len(cells)))
    return cells


def _parse_ipynb(text: str) -> list[Cell]:
    document = json.loads(text)
    language = (document.get("metadata", {}).get("language_info", {}).get("name") or "python").lower()
    cells: list[Cell] = []
    for raw in document.get("cells", []):
        source = raw.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if raw.get("cell_type") == "markdown":
            cells.append(Cell("md", source, len(cells)))
        elif raw.get("cell_type") == "code" and source.strip():
            cells.append(_split_magic(source, len(cells), default=language))
    return cells


def to_source_format(content: bytes | str) -> str:
    """A notebook in the Databricks ``.py`` source format (what ``workspace/export`` with SOURCE returns)."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    if is_source_notebook(text):
        return text
    parts = []
    for cell in parse_notebook(text):
        if cell.language == "python":
            parts.append(cell.source)
        else:
            lines = _magic_text(cell).splitlines()
            parts.append("\n".join(f"# MAGIC {line}".rstrip() for line in lines))
    return SOURCE_HEADER + "\n" + "\n\n# COMMAND ----------\n\n".join(parts) + "\n"


def to_ipynb(content: bytes | str, name: str) -> str:
    """A notebook as Jupyter JSON (what ``workspace/export`` with JUPYTER returns)."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    if looks_like_ipynb(text):
        return text
    cells = []
    for cell in parse_notebook(text):
        if cell.language == "md":
            cells.append({"cell_type": "markdown", "metadata": {}, "source": cell.source})
        else:
            source = cell.source if cell.language == "python" else _magic_text(cell)
            cells.append({"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
                          "execution_count": None})
    return json.dumps({"cells": cells, "metadata": {"language_info": {"name": "python"},
                                                    "application/vnd.databricks.v1+notebook": {"notebookName": name}},
                       "nbformat": 4, "nbformat_minor": 0}, indent=1)
