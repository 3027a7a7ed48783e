"""The project's exceptions: one root, and a subclass for bad input."""

from __future__ import annotations

__all__ = ["RemixError", "ParameterError", "BackendUnavailable"]


class RemixError(Exception):
    """Root of every error the remix engine raises on purpose."""


class ParameterError(RemixError, ValueError):
    """Bad input: says what was given and what was expected."""


class BackendUnavailable(RemixError):
    """A requested capability or backend is not available here, and why."""
