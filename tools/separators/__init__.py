"""Separation backends: Spleeter vocals, Demucs, signal-processing splits."""
