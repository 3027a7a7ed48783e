"""Generative genre-shift backends (MusicGen melody through transformers)."""
