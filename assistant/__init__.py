"""The agent: planners, sessions and version tree, voice notes, settings."""

__all__: list[str] = []
