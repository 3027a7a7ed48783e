"""Where a named section plays, for the changes a listener keeps to one part of the song.

"Harmonies in the chorus" and "reverb only on the intro" name a section; these give its
time spans in a song's analysis and a gain that fades a change in and out around them.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["section_spans", "section_mask"]


def section_spans(section: str, analysis) -> list[tuple[float, float]]:
    """The time spans (seconds) a section name covers: a bare label means every such section.

    Raises:
        ParameterError: the analysis has no such section (the message lists the sections).
    """
    text = re.sub(r"^the ", "", " ".join(str(section).strip().lower().replace("_", " ").split()))
    for suffix in ("es", "s", ""):
        label = text[: len(text) - len(suffix)] if suffix and text.endswith(suffix) else text
        spans = [(s.start, s.end) for s in analysis.sections if s.label == label]
        if spans:
            return spans
    found = analysis.find_section(section)
    return [(found.start, found.end)]


def section_mask(
    spans: list[tuple[float, float]], frames: int, sr: int, attack_s: float = 0.03, release_s: float = 0.3
) -> np.ndarray:
    """A 0..1 gain per sample for an effect kept to ``spans``: 1 inside, rising over ``attack_s``
    from each span's start and falling over ``release_s`` after its end, so an effect comes in
    without a click and a reverb or echo rings on briefly instead of stopping dead."""
    mask = np.zeros(frames, dtype=np.float32)
    attack, release = max(1, int(attack_s * sr)), max(1, int(release_s * sr))
    for start, end in spans:
        a, b = max(0, int(round(start * sr))), min(frames, int(round(end * sr)))
        if b <= a:
            continue
        gain = np.ones(b - a + release, dtype=np.float32)
        if a > 0:
            rise = min(attack, b - a)
            gain[:rise] = np.linspace(0.0, 1.0, rise + 1, dtype=np.float32)[1:]
        gain[b - a :] = np.linspace(1.0, 0.0, release + 1, dtype=np.float32)[1:]
        stop = min(frames, b + release)
        mask[a:stop] = np.maximum(mask[a:stop], gain[: stop - a])
    return mask
