"""Prompt templates and tool-use examples, as data files."""
