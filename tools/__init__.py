"""The audio engine: Audio type and I/O, analysis, tools, render pipeline."""

from .audio import Audio, load, save
from .errors import ParameterError, RemixError

__all__ = ["Audio", "load", "save", "RemixError", "ParameterError"]
