"""Prompt templates and tool-use examples, as data files."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["load"]


def load(name: str) -> str:
    """The text of the prompt file ``name`` (e.g. ``"system.md"``) shipped in this package."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
