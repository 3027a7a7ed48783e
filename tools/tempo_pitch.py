"""The ``tempo_pitch`` tool: change tempo with pitch kept, shift pitch with tempo kept.

Both run through the Rubber Band engine that pedalboard ships (``pedalboard.time_stretch``),
in its high-quality mode with crisp transients and formant preservation, in one pass, so a
combined tempo and pitch change is processed once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .audio import Audio
from .errors import ParameterError
from .spec import PitchSettings, RemixSpec, TempoSettings

__all__ = ["TempoPitchArgs", "apply", "resolve_ratio", "stretch"]

MIN_RATIO, MAX_RATIO = 0.25, 4.0


class TempoPitchArgs(BaseModel):
    """Change the song's speed without changing its key, or its key without changing its speed.

    Give a target tempo (`bpm`), a relative tempo change in percent (`tempo_pct`: +10 is 10 %
    faster, -50 is half speed), a pitch shift in semitones (`semitones`: -2 is a whole tone
    lower), or a tempo and a pitch change together. Pitch shifts add to the current shift.
    """

    model_config = ConfigDict(extra="forbid")

    bpm: float | None = Field(None, gt=20.0, le=300.0, description="target tempo in beats per minute")
    tempo_pct: float | None = Field(
        None, gt=-75.0, le=300.0, description="relative tempo change in percent: +10 faster, -50 half speed"
    )
    semitones: float | None = Field(
        None, ge=-24.0, le=24.0, description="pitch shift in semitones, tempo kept (negative is lower)"
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> "TempoPitchArgs":
        if self.bpm is None and self.tempo_pct is None and self.semitones is None:
            raise ValueError("give at least one of bpm, tempo_pct or semitones")
        if self.bpm is not None and self.tempo_pct is not None:
            raise ValueError("give either a target bpm or a tempo_pct change, not both")
        return self


def apply(spec: RemixSpec, args: TempoPitchArgs) -> RemixSpec:
    """The spec with this call applied: a target bpm replaces the tempo, a percentage scales it."""
    tempo, pitch = spec.tempo, spec.pitch
    if args.bpm is not None:
        tempo = TempoSettings(bpm=args.bpm)
    elif args.tempo_pct is not None:
        factor = 1.0 + args.tempo_pct / 100.0
        if tempo.bpm is not None:
            tempo = TempoSettings(bpm=min(300.0, tempo.bpm * factor))
        else:
            ratio = tempo.ratio * factor
            if not MIN_RATIO <= ratio <= MAX_RATIO:
                raise ParameterError(
                    f"tempo_pct={args.tempo_pct:g} would make the speed {ratio:.2f}x the original; "
                    f"expected between {MIN_RATIO}x and {MAX_RATIO}x"
                )
            tempo = TempoSettings(ratio=ratio)
    if args.semitones is not None:
        total = pitch.semitones + args.semitones
        if not -24.0 <= total <= 24.0:
            raise ParameterError(
                f"semitones={args.semitones:g} would shift the pitch {total:g} semitones; expected within +-24"
            )
        pitch = PitchSettings(semitones=total)
    return spec.update(tempo=tempo, pitch=pitch)


def resolve_ratio(tempo: TempoSettings, source_bpm: float | None) -> float:
    """The speed factor the tempo settings ask for, given the tempo of the input."""
    if tempo.bpm is None:
        return tempo.ratio
    if not source_bpm or source_bpm <= 0:
        raise ParameterError(
            f"a target tempo of {tempo.bpm:g} bpm needs a song with a detectable beat; "
            "ask for a relative change instead (for example 10% faster)"
        )
    ratio = tempo.bpm / source_bpm
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ParameterError(
            f"{tempo.bpm:g} bpm is {ratio:.2f}x the song's {source_bpm:.1f} bpm; "
            f"expected between {MIN_RATIO}x and {MAX_RATIO}x"
        )
    return ratio


def stretch(audio: Audio, ratio: float = 1.0, semitones: float = 0.0) -> Audio:
    """Time-stretch by ``ratio`` (2.0 is twice as fast, half as long) and shift pitch by ``semitones``.

    Args:
        audio: input.
        ratio: speed factor; the output has ``round(frames / ratio)`` frames.
        semitones: pitch shift; tempo is kept.

    Returns:
        The processed audio at the same sample rate and channel count.
    """
    if ratio == 1.0 and semitones == 0.0:
        return audio
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ParameterError(f"ratio={ratio} must be between {MIN_RATIO} and {MAX_RATIO}")
    import numpy as np
    import pedalboard

    out = pedalboard.time_stretch(
        np.ascontiguousarray(audio.samples),
        float(audio.sample_rate),
        stretch_factor=float(ratio),
        pitch_shift_in_semitones=float(semitones),
        high_quality=True,
        transient_mode="crisp",
        preserve_formants=True,
    )
    want = int(round(audio.frames / ratio))
    if out.shape[1] > want:
        out = out[:, :want]
    elif out.shape[1] < want:
        out = np.pad(out, ((0, 0), (0, want - out.shape[1])))
    return Audio(out, audio.sample_rate)
