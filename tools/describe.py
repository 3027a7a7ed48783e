"""The ``describe`` tool's answer: the song and the remix in plain words, from the analysis and the spec."""

from __future__ import annotations

from .spec import RemixSpec
from .voices import MODEL_PREFIX, VOICE_PRESETS

__all__ = ["describe"]


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}"


def describe(analysis, spec: RemixSpec | None = None) -> str:
    """A short description: tempo, key, length and form of the song, then what the remix changes.

    When the remix rearranges the song, its new form and length are given as well.
    """
    from .arrange import describe_order

    spec = spec or RemixSpec()
    tempo = f"{analysis.tempo:.0f} bpm" if analysis.tempo else "no steady beat"
    lines = [
        f"The song is {_clock(analysis.duration_s)} long, {tempo}, in {analysis.key} {analysis.mode}, "
        f"{analysis.beats_per_bar} beats to the bar.",
        f"Its form: {', '.join(analysis.section_names())}.",
    ]
    changes = []
    if spec.arrangement.items is not None:
        lines.append(f"The remix plays: {describe_order(spec, analysis)}.")
    if spec.arrangement.fade_in_s:
        changes.append(f"a {spec.arrangement.fade_in_s:g} s fade-in")
    if spec.arrangement.fade_out_s:
        changes.append(f"a {spec.arrangement.fade_out_s:g} s fade-out")
    for name, stem in sorted(spec.effective_stems().items()):
        changes.append(f"{name} muted" if stem.mute else f"{name} {stem.gain_db:+g} dB")
    if spec.genre.name and spec.genre.amount > 0:
        bpm = f" at {spec.genre.bpm:g} bpm" if spec.genre.bpm else ""
        changes.append(f"shifted to {spec.genre.name.replace('_', ' ')}{bpm} (amount {spec.genre.amount:g})")
    if spec.tempo.bpm is not None:
        changes.append(f"tempo {spec.tempo.bpm:g} bpm")
    elif spec.tempo.ratio != 1.0:
        changes.append(f"{(spec.tempo.ratio - 1) * 100:+.0f}% tempo")
    if spec.pitch.semitones:
        changes.append(f"pitch {spec.pitch.semitones:+g} semitones")
    for name, style in spec.effective_styles().items():
        where = "" if style.target == "mix" else f" on the {style.target}"
        where += f" in the {style.section}" if style.section else ""
        changes.append(f"{name.replace('_', ' ')} {style.amount:g}{where}")
    for name, voice in spec.effective_voices().items():
        title = f"sung by the voice model {name[len(MODEL_PREFIX):]}" if name.startswith(MODEL_PREFIX) else VOICE_PRESETS[name].title
        where = f" in the {voice.section}" if voice.section else ""
        changes.append(f"{title} {voice.amount:g} on the vocals{where}")
    lines.append(f"Applied: {'; '.join(changes)}." if changes else "Nothing is changed yet: this is the original.")
    return " ".join(lines)
