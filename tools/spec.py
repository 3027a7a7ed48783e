"""RemixSpec: the typed recipe of a remix. Tools edit it; ``render`` turns it into audio."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "StemName",
    "StyleTarget",
    "StemSettings",
    "StyleSettings",
    "GenreSettings",
    "ArrangementItem",
    "Arrangement",
    "TempoSettings",
    "PitchSettings",
    "MasterSettings",
    "VoiceSettings",
    "RemixSpec",
    "section_key",
]

StemName = Literal["vocals", "drums", "bass", "other"]
StyleTarget = Literal["mix", "vocals", "drums", "bass", "other"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def is_default(self) -> bool:
        return self == type(self)()


class StemSettings(_Section):
    """Level of one stem in the stem mix."""

    gain_db: float = Field(0.0, ge=-60.0, le=24.0, description="gain applied to the stem, in dB")
    mute: bool = Field(False, description="silence the stem entirely")


class StyleSettings(_Section):
    """One style preset applied with an intensity."""

    amount: float = Field(0.5, ge=0.0, le=1.0, description="0 is no effect, 1 the full preset")
    target: StyleTarget = Field("mix", description="apply to the whole mix or to one stem")
    section: str | None = Field(None, max_length=64, description="only in this section ('chorus' means every chorus)")


class VoiceSettings(_Section):
    """One vocal style (or voice model) on the vocals stem, with an intensity and an optional section."""

    amount: float = Field(0.6, ge=0.0, le=1.0, description="0 is the voice as sung, 1 the full change")
    section: str | None = Field(None, max_length=64, description="only in this section ('chorus' means every chorus)")


class GenreSettings(_Section):
    """A genre shift: groove, tempo and mix character of another genre."""

    name: str | None = Field(None, description="genre id; None means no genre shift")
    bpm: float | None = Field(None, gt=20.0, le=300.0, description="target tempo; None for the genre's typical bpm")
    amount: float = Field(1.0, ge=0.0, le=1.0, description="blend from the original (0) to the full shift (1)")


class ArrangementItem(_Section):
    """One entry of the new running order: a source section (or span) played ``repeats`` times."""

    section: str | None = Field(None, description="section name or id from the analysis, e.g. 'chorus 2' or 's3'")
    start: float | None = Field(None, ge=0.0, description="explicit span start in source seconds")
    end: float | None = Field(None, gt=0.0, description="explicit span end in source seconds")
    repeats: int = Field(1, ge=1, le=64)

    @model_validator(mode="after")
    def _one_reference(self) -> "ArrangementItem":
        has_span = self.start is not None or self.end is not None
        if self.section is None and not (self.start is not None and self.end is not None):
            raise ValueError("an arrangement item needs a section name or both start and end")
        if self.section is not None and has_span:
            raise ValueError("an arrangement item takes a section name or a start/end span, not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"span end {self.end} must be after its start {self.start}")
        return self


class Arrangement(_Section):
    """The running order of source sections, and fades."""

    items: tuple[ArrangementItem, ...] | None = Field(
        None, description="ordered source sections with repeats; None keeps the original order"
    )
    fade_in_s: float = Field(0.0, ge=0.0, le=120.0)
    fade_out_s: float = Field(0.0, ge=0.0, le=120.0)

    def order_part(self) -> dict:
        return {"items": None if self.items is None else [i.model_dump(mode="json") for i in self.items]}

    def fades_part(self) -> dict:
        return {"fade_in_s": self.fade_in_s, "fade_out_s": self.fade_out_s}


class TempoSettings(_Section):
    """Tempo change with pitch kept: a ratio to the original, or a target bpm (which wins)."""

    ratio: float = Field(1.0, ge=0.25, le=4.0, description="speed factor: 1.1 is 10% faster, 0.5 half speed")
    bpm: float | None = Field(None, gt=20.0, le=300.0, description="target tempo in bpm; overrides ratio")


class PitchSettings(_Section):
    """Pitch shift with tempo kept."""

    semitones: float = Field(0.0, ge=-24.0, le=24.0)


class MasterSettings(_Section):
    """Final loudness and peak control."""

    enabled: bool = True
    target_lufs: float = Field(-14.0, ge=-40.0, le=-5.0, description="integrated loudness target")
    ceiling_dbtp: float = Field(-1.0, ge=-12.0, le=0.0, description="true-peak ceiling")


class RemixSpec(_Section):
    """The whole recipe of a remix. ``RemixSpec()`` (JSON ``{}``) is the untouched song."""

    stems: dict[StemName, StemSettings] = Field(default_factory=dict)
    styles: dict[str, StyleSettings] = Field(default_factory=dict)
    voices: dict[str, VoiceSettings] = Field(default_factory=dict)
    genre: GenreSettings = Field(default_factory=GenreSettings)
    arrangement: Arrangement = Field(default_factory=Arrangement)
    tempo: TempoSettings = Field(default_factory=TempoSettings)
    pitch: PitchSettings = Field(default_factory=PitchSettings)
    master: MasterSettings = Field(default_factory=MasterSettings)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, so equal specs give equal text."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "RemixSpec":
        return cls.model_validate_json(text)

    def update(self, **changes) -> "RemixSpec":
        """A validated copy with top-level sections replaced."""
        data = {name: getattr(self, name) for name in type(self).model_fields}
        data.update(changes)
        return type(self).model_validate(data)

    def effective_stems(self) -> dict[str, StemSettings]:
        """Stem settings that differ from the default (unity gain, not muted)."""
        return {name: s for name, s in self.stems.items() if not s.is_default()}

    def effective_voices(self) -> dict[str, VoiceSettings]:
        """Vocal styles with a non-zero amount, in name order (the render applies them in its own order)."""
        return {name: v for name, v in sorted(self.voices.items()) if v.amount > 0}

    def effective_styles(self) -> dict[str, StyleSettings]:
        """Styles with a non-zero amount, in name order (the render applies them in its own order)."""
        return {name: s for name, s in sorted(self.styles.items()) if s.amount > 0}


def section_key(*parts) -> str:
    """A stable hash of JSON-able parts: the memo key of a render stage."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
