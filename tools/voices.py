"""The ``revoice`` tool: vocal styles on the vocals stem, mixed back over the untouched band.

Every preset is built on one analysis of the vocal (:mod:`tools.pitch`: Praat's f0 track,
voiced/unvoiced decisions) and on Praat's PSOLA resynthesis (pitch-synchronous overlap-add,
through ``praat-parselmouth``): the voice's own glottal periods are cut out at its pulses and
laid down again at the periods of a new pitch contour. PSOLA keeps the voice's timbre and
timing exactly, and it leaves unvoiced stretches (consonants, breaths) as they were, so a
breath is never turned into a tone. It runs at several hundred times real time.

- ``autotune``: each voiced frame's pitch is pulled to the nearest note of the song's key and
  scale (detected by the analysis). ``amount`` sets how hard: the correction is smoothed over
  a retune time that falls from 150 ms (gentle: the average offset is fixed, vibrato and
  slides stay) to 0 (hard-tuned: flat notes that step, the effect heard on records since
  1998), and its strength rises from 35 % to 100 %. Note choices are median-filtered so a
  note held between two scale notes does not flicker.
- ``female`` / ``male`` / ``child``: pitch and formants move independently. PSOLA resynthesises
  the voice ``k`` times longer with its pitch divided by ``k``; resampling it back to the
  original length multiplies every frequency by ``k``: the formants end ``k`` times higher
  (a shorter vocal tract) and the pitch at the asked interval. The pitch moves by an octave
  or not at all (so the melody stays in the band's key), and only when the voice sits
  outside the target's range: a woman's voice made "female" gets brighter formants alone.
- ``harmony``: voices a diatonic third above and a fifth (above for a low voice, below for a
  high one), in the song's key, following the melody note by note with its vibrato.
- ``double``: two copies detuned by a few cents, late by 12 and 23 ms with a slowly wandering
  delay, panned hard left and right; their consonants are kept low (doubled "s" sounds fake).
- ``choir``: three to six voices of different "singers" (formants scattered by up to 12 %,
  detuned 8-25 cents, 5-25 ms late), spread across the stereo field, an octave voice at high
  amounts, in a wide ensemble reverb, gated: its tail rings 120 ms past a phrase and falls
  away over 250 ms, so pauses stay clear.
- ``whisper``: aperiodic resynthesis. The vocal's spectral envelope (cepstrally smoothed, so
  the harmonics are gone) shapes fresh noise frame by frame; blended in by ``amount``.

Presets stack in a fixed order (voice model, gender, autotune, whisper, then the copies, which
follow the corrected lead). ``section`` limits a preset to some sections (every chorus, say),
with 30 ms crossfades. Output keeps the input's length, channels and overall level.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import effects as fx
from . import pitch as pitch_tracking
from .audio import Audio
from .errors import BackendUnavailable, ParameterError
from .sections import section_spans
from .spec import RemixSpec, VoiceSettings

__all__ = [
    "VOICES_VERSION",
    "VOICE_PRESETS",
    "VOICE_ALIASES",
    "VoicePreset",
    "VoiceContext",
    "RevoiceArgs",
    "apply",
    "resolve_voice",
    "revoice",
    "gender_shift",
    "scale_pitch_classes",
    "melody_scale",
    "MODEL_PREFIX",
]

VOICES_VERSION = 3
DEFAULT_STEP = 0.2
MODEL_PREFIX = "model:"
FADE_S = 0.03
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class VoicePreset:
    id: str
    title: str
    description: str
    order: int
    default_amount: float
    group: str = ""  # presets of one group replace each other (a voice is one gender)


_PRESET_LIST = (
    VoicePreset("female", "female voice", "a man's voice an octave up, formants up to 17 % higher", 10, 1.0, "gender"),
    VoicePreset("male", "male voice", "a woman's voice an octave down, formants up to 13 % lower", 11, 1.0, "gender"),
    VoicePreset("child", "child's voice", "an octave up, formants up to 28 % higher", 12, 1.0, "gender"),
    VoicePreset("autotune", "autotune", "pitch pulled onto the key's notes; hard and fast at full amount", 20, 0.6),
    VoicePreset("whisper", "whisper", "the voice's envelope on breath noise: no pitch left", 30, 1.0),
    VoicePreset("harmony", "harmonies", "a third and a fifth in key, following the melody", 40, 0.6),
    VoicePreset("double", "double-tracked", "two detuned, late copies panned wide", 50, 0.6),
    VoicePreset("choir", "choir", "three to six singers spread wide in an ensemble reverb", 60, 0.6),
)
VOICE_PRESETS: dict[str, VoicePreset] = {p.id: p for p in _PRESET_LIST}

VOICE_ALIASES: dict[str, str] = {
    "auto tune": "autotune", "auto-tune": "autotune", "autotuned": "autotune", "auto tuned": "autotune",
    "t pain": "autotune", "t-pain": "autotune", "tpain": "autotune", "pitch correction": "autotune",
    "pitch corrected": "autotune", "tuned": "autotune", "in tune": "autotune",
    "woman": "female", "women": "female", "girl": "female", "lady": "female", "feminine": "female",
    "female voice": "female", "female singer": "female", "her": "female",
    "man": "male", "men": "male", "guy": "male", "masculine": "male", "male voice": "male",
    "male singer": "male", "him": "male",
    "kid": "child", "kids": "child", "children": "child", "little kid": "child", "young": "child",
    "harmonies": "harmony", "harmonize": "harmony", "harmonise": "harmony", "harmonized": "harmony",
    "backing vocals": "harmony", "backing voices": "harmony",
    "doubled": "double", "doubles": "double", "double tracked": "double", "double track": "double",
    "double-tracked": "double", "stacked": "double", "stack": "double",
    "choral": "choir", "chorale": "choir", "gospel choir": "choir", "ensemble": "choir", "choirs": "choir",
    "whispered": "whisper", "whispering": "whisper", "whispers": "whisper", "breathy": "whisper",
}  # fmt: skip

_ALL = {"all", "everything", "original", "none", "natural", "normal", "every voice", "all voices"}
_MODEL_NAME = re.compile(r"^[\w][\w .'-]{0,63}$")


def _canonical(text: str) -> str:
    return " ".join(str(text).strip().lower().replace("_", " ").split())


def resolve_voice(name: str) -> str | None:
    """The preset id for a preset name or alias ("T-Pain" -> "autotune"); None for anything else."""
    key = _canonical(name)
    if key in VOICE_PRESETS:
        return key
    return VOICE_ALIASES.get(key) or VOICE_ALIASES.get(key.replace(" ", ""))


def model_key(name: str) -> str:
    """The spec key of a voice model: ``model:`` and its canonical name."""
    return MODEL_PREFIX + _canonical(name).replace(" ", "_")


class RevoiceArgs(BaseModel):
    """Change how the singer sounds: autotune, a female, male or child voice, harmonies, a double, a choir, a whisper; or a voice model for a cover.

    Works on the vocals stem only; the band is untouched. `change`: `set` applies the voice at
    `amount` (defaults: 1 for female/male/child/whisper, 0.6 for the others); `more` / `less`
    step it by `step` (default 0.2); `remove` takes it off (`voice` "all" takes every vocal
    style off). `section` limits it to a part of the song ("chorus" means every chorus).
    """

    model_config = ConfigDict(extra="forbid")

    voice: str = Field(
        description="vocal preset id (autotune, female, male, child, harmony, double, choir, whisper) or a voice model name"
    )
    amount: float | None = Field(None, ge=0.0, le=1.0, description="intensity 0..1")
    change: Literal["set", "more", "less", "remove"] = Field("set", description="set, step up or down, or remove")
    section: str | None = Field(None, description="only in this section, e.g. 'chorus' (every chorus) or 'verse 2'")
    step: float | None = Field(None, gt=0.0, le=1.0, description="size of a more/less step (default 0.2)")

    @field_validator("voice", mode="before")
    @classmethod
    def _known_voice(cls, value):
        if not isinstance(value, str) or not value.strip():
            raise ParameterError(f"voice must be a preset ({', '.join(VOICE_PRESETS)}) or a voice model name")
        preset = resolve_voice(value)
        if preset is not None:
            return preset
        if _canonical(value) in _ALL:
            return "all"
        if not _MODEL_NAME.match(value.strip()):
            raise ParameterError(
                f"unknown voice {value!r}; the vocal presets are: {', '.join(VOICE_PRESETS)} (or the name of a voice model)"
            )
        return model_key(value)

    @field_validator("section", mode="before")
    @classmethod
    def _section_text(cls, value):
        if value is None:
            return None
        text = _canonical(value)
        return None if text in {"", "all", "everywhere", "whole song", "the whole song"} else text


def _title(key: str) -> str:
    if key.startswith(MODEL_PREFIX):
        return f"the voice model {key[len(MODEL_PREFIX):]}"
    return VOICE_PRESETS[key].title if key in VOICE_PRESETS else key


def _check_section(section: str | None, analysis) -> None:
    if section is not None and analysis is not None:
        section_spans(section, analysis)  # raises ParameterError listing the sections


def _check_model(key: str, settings) -> None:
    from .settings import get_settings
    from .voice_models import find_voice_model, voice_model_info

    settings = settings or get_settings()
    name = key[len(MODEL_PREFIX) :]
    if find_voice_model(name, settings) is None:
        voice_model_info(name, settings)  # raises VoiceModelMissing: where to put the files


def apply(spec: RemixSpec, args: RevoiceArgs, analysis=None, settings=None) -> RemixSpec:
    """The spec with this revoice applied (``analysis`` checks sections, ``settings`` voice models)."""
    voices = dict(spec.voices)
    step = args.step if args.step is not None else DEFAULT_STEP
    if args.voice == "all":
        if args.change != "remove":
            raise ParameterError("say which voice to use: " + ", ".join(VOICE_PRESETS))
        if not voices:
            raise ParameterError("no vocal style is applied, so there is nothing to take off")
        return spec.update(voices={})
    is_model = args.voice.startswith(MODEL_PREFIX)
    preset = VOICE_PRESETS.get(args.voice)
    default = preset.default_amount if preset else 1.0
    current = voices.get(args.voice)
    _check_section(args.section, analysis)
    if args.change == "remove":
        if current is None:
            applied = ", ".join(_title(k) for k in voices) or "none"
            raise ParameterError(f"{_title(args.voice)} is not applied, so it cannot be taken off (applied: {applied})")
        del voices[args.voice]
        return spec.update(voices=voices)
    if args.change == "set" or current is None:
        if args.change == "less":
            raise ParameterError(f"{_title(args.voice)} is not applied, so there is nothing to reduce")
        amount = args.amount if args.amount is not None else default
        section = args.section
    else:
        amount = current.amount + step if args.change == "more" else current.amount - step
        section = args.section if args.section is not None else current.section
    if is_model:
        _check_model(args.voice, settings)
    if preset is not None and preset.group:
        for other in [k for k in voices if k in VOICE_PRESETS and VOICE_PRESETS[k].group == preset.group]:
            if other != args.voice:
                del voices[other]
    if is_model:  # one voice model at a time
        for other in [k for k in voices if k.startswith(MODEL_PREFIX) and k != args.voice]:
            del voices[other]
    amount = min(1.0, max(0.0, amount))
    if amount <= 1e-9:
        voices.pop(args.voice, None)
    else:
        voices[args.voice] = VoiceSettings(amount=round(amount, 6), section=section)
    return spec.update(voices=voices)


def ordered(voices: dict[str, VoiceSettings]) -> dict[str, VoiceSettings]:
    """Voices in processing order: the voice model first, then the presets by their order."""

    def rank(item):
        key = item[0]
        return (-1 if key.startswith(MODEL_PREFIX) else VOICE_PRESETS[key].order if key in VOICE_PRESETS else 99, key)

    return dict(sorted(voices.items(), key=rank))


# ------------------------------------------------------------------------------ music helpers

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def scale_pitch_classes(key_pitch_class: int, mode: str) -> np.ndarray:
    """The seven pitch classes of a major or (natural) minor key."""
    steps = _MAJOR if mode == "major" else _MINOR
    return np.array(sorted((key_pitch_class + s) % 12 for s in steps))


def melody_scale(midi: np.ndarray, voiced: np.ndarray, key_pcs: np.ndarray, share: float = 0.08) -> np.ndarray:
    """The key's pitch classes, plus any other the singer holds for at least ``share`` of the voiced time.

    A key detector can be a fifth off, and a melody can borrow a note from outside its key;
    pulling a note the singer clearly means to another would be heard as a wrong note.
    """
    if not voiced.any():
        return np.asarray(key_pcs)
    held = np.round(midi[voiced]).astype(int) % 12
    counts = np.bincount(held, minlength=12) / held.size
    extra = [pc for pc in range(12) if counts[pc] >= share and pc not in set(int(p) for p in key_pcs)]
    return np.array(sorted(set(int(p) for p in key_pcs) | set(extra)))


def _scale_notes(pcs: np.ndarray) -> np.ndarray:
    """Every MIDI note 0..127 in the scale, ascending."""
    notes = np.arange(128)
    return notes[np.isin(notes % 12, pcs)]


def _nearest_scale_note(midi: np.ndarray, notes: np.ndarray) -> np.ndarray:
    index = np.clip(np.searchsorted(notes, midi), 1, len(notes) - 1)
    lower, upper = notes[index - 1], notes[index]
    return np.where(midi - lower <= upper - midi, lower, upper).astype(np.float64)


def _median_filter_runs(values: np.ndarray, voiced: np.ndarray, width: int) -> np.ndarray:
    """A running median within each voiced run (notes must not flicker at a boundary)."""
    out = values.copy()
    half = width // 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        run = values[start:stop]
        if len(run) <= 2:
            continue
        padded = np.pad(run, half, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, width)
        out[start:stop] = np.median(windows, axis=1)
    return out


def _smooth_runs(values: np.ndarray, voiced: np.ndarray, tau_frames: float) -> np.ndarray:
    """Zero-phase one-pole smoothing within each voiced run (the retune time)."""
    if tau_frames <= 0.5:
        return values.copy()
    alpha = 1.0 - math.exp(-1.0 / tau_frames)
    out = values.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        run = values[start:stop].copy()
        for direction in (1, -1):
            seq = run if direction == 1 else run[::-1]
            acc = seq[0]
            smoothed = np.empty_like(seq)
            for i, v in enumerate(seq):
                acc += alpha * (v - acc)
                smoothed[i] = acc
            run = smoothed if direction == 1 else smoothed[::-1]
        out[start:stop] = run
    return out


def autotune_midi(midi: np.ndarray, voiced: np.ndarray, amount: float, notes: np.ndarray, hop_s: float) -> np.ndarray:
    """The corrected pitch (MIDI) of voiced frames; unvoiced frames are returned unchanged."""
    out = midi.copy()
    if not voiced.any():
        return out
    target = np.where(voiced, _nearest_scale_note(np.where(voiced, midi, 60.0), notes), 0.0)
    target = _median_filter_runs(target, voiced, 5)
    target = _nearest_scale_note(np.where(voiced, target, 60.0), notes)  # a median of two notes is not a note
    correction = np.where(voiced, target - np.where(voiced, midi, 0.0), 0.0)
    tau_s = fx.lerp(0.15, 0.0, amount)
    correction = _smooth_runs(correction, voiced, tau_s / hop_s)
    strength = min(1.0, 0.35 + 0.65 * amount)
    out[voiced] = midi[voiced] + strength * correction[voiced]
    return out


OCTAVE_FROM_AMOUNT = 0.25  # below this amount a gender preset only moves the formants


def gender_shift(preset: str, amount: float, median_hz: float | None) -> tuple[float, float]:
    """``(semitones, formant ratio)`` of a gender or age preset for a voice whose median f0 is given.

    The pitch moves by whole octaves only: any other interval would put the melody in another
    key from the band it is mixed back over. A voice outside the target's range (a man's
    voice, under 190 Hz, made female or a child's, under 250 Hz; a woman's, over 190 Hz, made
    male) moves an octave once ``amount`` reaches 0.25; one already in the range keeps its
    pitch. The formants follow ``amount`` all the way: up to 17 % higher for a woman, 13 %
    lower for a man, 28 % higher for a child (half that for a voice already in the range),
    which is what makes the change sound like another singer rather than a sped-up tape.
    """
    median = median_hz or 150.0
    if preset == "female":
        octave, ratio = (12.0, 1.17) if median < 190.0 else (0.0, 1.08)
    elif preset == "male":
        octave, ratio = (-12.0, 0.87) if median > 190.0 else (0.0, 0.93)
    elif preset == "child":
        octave, ratio = (12.0, 1.28) if median < 250.0 else (0.0, 1.14)
    else:
        raise ParameterError(f"{preset!r} is not a gender or age preset")
    semitones = octave if amount >= OCTAVE_FROM_AMOUNT else 0.0
    return semitones, 1.0 + amount * (ratio - 1.0)


# ---------------------------------------------------------------------------------- sections


def _mask(spans: list[tuple[float, float]] | None, frames: int, sr: int) -> np.ndarray | None:
    """A 0..1 gain per sample that is 1 inside the spans, with short ramps; None for everywhere."""
    if spans is None:
        return None
    mask = np.zeros(frames, dtype=np.float32)
    ramp = max(1, int(FADE_S * sr))
    for start, end in spans:
        a, b = max(0, int(round(start * sr))), min(frames, int(round(end * sr)))
        if b <= a:
            continue
        mask[a:b] = 1.0
        rise = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        head = mask[a : min(b, a + ramp)]
        mask[a : a + len(head)] = np.minimum(head, rise[: len(head)]) if a > 0 else head
        tail = mask[max(a, b - ramp) : b]
        if b < frames:
            mask[b - len(tail) : b] = np.minimum(tail, rise[::-1][-len(tail) :])
    return mask


# --------------------------------------------------------------------------------- the engine


@dataclass
class VoiceContext:
    """What the presets may know about the song: key, scale, sections, tempo, seed, caches."""

    key_pitch_class: int = 9
    mode: str = "minor"
    analysis: object | None = None
    bpm: float | None = None
    seed: int = 0
    cache_key: str | None = None  # source and separator; None keeps nothing on disk
    cache_folder: object | None = None
    settings: object | None = None
    notes: list[str] = field(default_factory=list)
    credits: list[str] = field(default_factory=list)
    progress: Callable[[float, str], None] | None = None  # (fraction, words), for the slow voice models


_PRAAT_RANDOM = threading.Lock()


class _Psola:
    """PSOLA resynthesis of one channel at any pitch contour and formant ratio (Praat's overlap-add)."""

    def __init__(self, samples: np.ndarray, sr: int, pulses):
        import parselmouth
        from parselmouth.praat import call

        self.sr = sr
        self.frames = len(samples)
        sound = parselmouth.Sound(np.asarray(samples, dtype=np.float64), sampling_frequency=float(sr))
        self.xmin, self.xmax = sound.xmin, sound.xmax  # the Manipulation keeps its own copy of the samples
        # The Manipulation's own pitch analysis is replaced at once (the pulses below, a pitch
        # tier per render), so it runs coarse: a tenth of the cost of a full one.
        self.manipulation = call(sound, "To Manipulation", 0.1, 300.0, 600.0)
        call([pulses, self.manipulation], "Replace pulses")
        self.lock = threading.Lock()

    def render(self, times: np.ndarray, f0: np.ndarray, formant_ratio: float = 1.0) -> np.ndarray:
        """The channel with its pitch moved onto ``f0`` (Hz at ``times``; frames <= 0 are left out)."""
        from parselmouth.praat import call, run

        keep = f0 > 0
        k = float(formant_ratio)
        with self.lock:
            tier = _pitch_tier(times[keep], f0[keep] / k, self.xmin, self.xmax)
            call([tier, self.manipulation], "Replace pitch tier")
            duration = call("Create DurationTier", "d", self.xmin, self.xmax)
            call(duration, "Add point", self.xmin, k)
            call([duration, self.manipulation], "Replace duration tier")
            # PSOLA cuts unvoiced stretches at random lengths with Praat's one global generator:
            # seeded from the contour, under one lock, a recipe renders the same every time.
            seed = zlib.crc32(np.ascontiguousarray(f0, dtype=np.float64).tobytes() + repr(k).encode())
            with _PRAAT_RANDOM:
                run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
                resynthesis = call(self.manipulation, "Get resynthesis (overlap-add)")
            out = np.asarray(resynthesis.values[0], dtype=np.float64)
        if abs(k - 1.0) > 1e-6:
            # Play it back k times faster: every frequency x k, the length back to the original.
            ratio = Fraction(1.0 / k).limit_denominator(400)
            from scipy.signal import resample_poly

            out = resample_poly(out, ratio.numerator, ratio.denominator)
        if len(out) >= self.frames:
            return out[: self.frames].astype(np.float32)
        return np.pad(out, (0, self.frames - len(out))).astype(np.float32)


def _pitch_tier(times: np.ndarray, values: np.ndarray, xmin: float, xmax: float):
    """A Praat PitchTier from arrays, read from a short text file (thousands of points at once)."""
    import parselmouth

    lines = ['File type = "ooTextFile"', 'Object class = "PitchTier"', "", repr(float(xmin)), repr(float(xmax)), str(len(times))]
    body = "\n".join(f"{t!r}\n{v!r}" for t, v in zip(times.tolist(), values.tolist()))
    handle, path = tempfile.mkstemp(suffix=".PitchTier")
    try:
        with os.fdopen(handle, "w") as f:
            f.write("\n".join(lines) + "\n" + body + "\n")
        return parselmouth.read(path)
    finally:
        os.unlink(path)


_ENGINES: "OrderedDict[tuple, tuple]" = OrderedDict()
_ENGINES_LOCK = threading.Lock()


def _engines(x: np.ndarray, sr: int, cache_key: str | None, cache_folder):
    """``(track, mid engine, channel engines)`` for a vocal; the last few are kept in memory."""
    memo = (cache_key, x.shape, sr) if cache_key else None
    if memo is not None:
        with _ENGINES_LOCK:
            if memo in _ENGINES:
                _ENGINES.move_to_end(memo)
                return _ENGINES[memo]
    mid = x.mean(axis=0)
    if not np.any(mid):
        track = pitch_tracking.track(mid, sr)
        return track, None, []
    # One pitch analysis of the mid serves the track and the glottal pulses of every channel.
    track, _, pulses = pitch_tracking.analyse(mid, sr, cache_key, cache_folder)
    mid_engine = _Psola(mid, sr, pulses)
    channels = [mid_engine] if x.shape[0] == 1 else [_Psola(x[c], sr, pulses) for c in range(x.shape[0])]
    result = (track, mid_engine, channels)
    if memo is not None:
        with _ENGINES_LOCK:
            _ENGINES[memo] = result
            while len(_ENGINES) > 2:
                _ENGINES.popitem(last=False)
    return result


def _frame_mask(mask: np.ndarray | None, times: np.ndarray, sr: int) -> np.ndarray:
    if mask is None:
        return np.ones(len(times))
    index = np.clip((times * sr).astype(int), 0, len(mask) - 1)
    return mask[index].astype(np.float64)


def _voicing_gain(track, frames: int, sr: int, floor: float = 0.0) -> np.ndarray:
    """1 in voiced stretches, ``floor`` elsewhere, with 20 ms ramps (copies carry no consonants)."""
    sample_times = np.arange(frames) / sr
    gain = np.interp(sample_times, track.times, track.voiced.astype(np.float64))
    width = max(1, int(0.02 * sr))
    running = np.concatenate([[0.0], np.cumsum(gain)])  # a 20 ms moving average, O(n)
    half = width // 2
    index = np.arange(frames)
    gain = (running[np.minimum(frames, index + width - half)] - running[np.maximum(0, index - half)]) / width
    return (floor + (1.0 - floor) * np.clip(gain, 0.0, 1.0)).astype(np.float32)


TAIL_HOLD_S = 0.12  # the choir's reverb rings on this long at full level after a phrase
TAIL_RELEASE_S = 0.25  # then falls to nothing over this


def _tail_gate(track, frames: int, sr: int) -> np.ndarray:
    """A gain per sample for a reverb tail: 1 while the voice sings and ``TAIL_HOLD_S`` after,
    then a linear fall over ``TAIL_RELEASE_S``; 0 in the rest of a pause."""
    voiced = np.asarray(track.voiced, dtype=bool)
    if not voiced.any():
        return np.zeros(frames, dtype=np.float32)
    times = np.asarray(track.times, dtype=np.float64)
    last = np.maximum.accumulate(np.where(voiced, np.arange(voiced.size), -1))  # last voiced frame so far
    since = np.where(last >= 0, times - times[np.maximum(last, 0)], np.inf)
    gain = np.clip(1.0 - (since - TAIL_HOLD_S) / TAIL_RELEASE_S, 0.0, 1.0)
    return np.interp(np.arange(frames) / sr, times, gain).astype(np.float32)


def _pan(mono: np.ndarray, position: float, channels: int) -> np.ndarray:
    """Constant-power pan of a mono signal, ``position`` -1 (left) .. 1 (right)."""
    if channels == 1:
        return mono[None, :]
    angle = (position + 1.0) * math.pi / 4.0
    gains = [math.cos(angle), math.sin(angle)] + [math.sqrt(0.5)] * (channels - 2)
    return np.stack([mono * np.float32(g * math.sqrt(2.0)) for g in gains])


def _delay(mono: np.ndarray, sr: int, seconds: float, wander_ms: float, seed: int) -> np.ndarray:
    shift = int(round(seconds * sr))
    delayed = np.concatenate([np.zeros(shift, dtype=np.float32), mono[: len(mono) - shift]]) if shift else mono
    if wander_ms > 0:
        delayed = fx.modulated_delay(delayed[None, :], sr, wander_ms, 0.0, seed, wow_hz=0.3)[0]
    return delayed.astype(np.float32)


def whisper(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """Aperiodic resynthesis: each frame's smoothed spectral envelope imposed on fresh noise."""
    import torch

    n_fft = 2048 if sr > 32000 else 1024
    hop = n_fft // 4
    window = torch.hann_window(n_fft)
    lifter = max(8, int(0.0008 * sr))  # quefrencies under 0.8 ms: the envelope, not the harmonics
    generator = torch.Generator().manual_seed(seed & 0x7FFFFFFF)
    out = np.empty_like(x)
    for channel in range(x.shape[0]):
        signal = torch.from_numpy(np.ascontiguousarray(x[channel], dtype=np.float32))
        spectrum = torch.stft(signal, n_fft, hop, window=window, return_complex=True)
        magnitude = spectrum.abs() + 1e-7
        cepstrum = torch.fft.irfft(torch.log(magnitude), dim=0)
        cepstrum[lifter:-lifter] = 0.0
        envelope = torch.exp(torch.fft.rfft(cepstrum, dim=0).real[: magnitude.shape[0]])
        # Match each frame's energy to the original's (the log-domain envelope sits low).
        envelope *= torch.sqrt((magnitude**2).sum(0, keepdim=True) / ((envelope**2).sum(0, keepdim=True) + 1e-12))
        noise = torch.complex(
            torch.randn(magnitude.shape, generator=generator), torch.randn(magnitude.shape, generator=generator)
        ) / math.sqrt(2.0)
        y = torch.istft(noise * envelope, n_fft, hop, window=window, length=x.shape[1])
        out[channel] = y.numpy()
    out = fx.highpass(out, sr, 180.0, order=2)
    return out.astype(np.float32)


def _level(x: np.ndarray, sr: int) -> float:
    """RMS of the louder half of 100 ms blocks, over all channels (wide copies count in full)."""
    return fx.louder_half_rms(x, max(1, int(0.1 * sr)), every_channel=True)


def revoice(vocals: Audio, voices: dict[str, VoiceSettings], ctx: VoiceContext) -> Audio:
    """The vocals stem with the given voices applied (see the module docstring)."""
    voices = {k: v for k, v in ordered(voices).items() if v.amount > 0}
    if not voices:
        return vocals
    sr = vocals.sample_rate
    x = np.asarray(vocals.samples, dtype=np.float32)
    channels, frames = x.shape
    level = _level(x, sr)
    if level < 1e-5:
        ctx.notes.append("the vocals stem is silent here, so there was no voice to change")
        return vocals

    def spans(setting: VoiceSettings):
        if setting.section is None or ctx.analysis is None:
            return None
        return section_spans(setting.section, ctx.analysis)

    cache_key = ctx.cache_key
    for key, setting in voices.items():
        if key.startswith(MODEL_PREFIX):
            x = _convert(x, sr, key[len(MODEL_PREFIX) :], setting, _mask(spans(setting), frames, sr), ctx)
            cache_key = None  # the converted voice is analysed afresh

    track, mid_engine, engines = _engines(x, sr, cache_key, ctx.cache_folder if cache_key else None)
    times, voiced = track.times, track.voiced
    median = track.median_hz()
    if median is None:
        ctx.notes.append("no sung or spoken pitch was found in the vocals, so the voice was left as it is")
        return vocals
    midi = track.midi()
    pitch_classes = melody_scale(midi, voiced, scale_pitch_classes(ctx.key_pitch_class, ctx.mode))
    notes = _scale_notes(pitch_classes)
    key_name = f"{PITCH_CLASSES[ctx.key_pitch_class]} {ctx.mode}"
    extra_notes = [PITCH_CLASSES[pc] for pc in pitch_classes if pc not in scale_pitch_classes(ctx.key_pitch_class, ctx.mode)]
    if extra_notes:
        key_name += f" (with the {', '.join(extra_notes)} the singer holds)"

    # The lead: gender and autotune move its pitch contour; the formant ratio comes with gender.
    lead_midi = np.where(voiced, midi, 0.0)
    formant, gender_mask = 1.0, None
    gender = next((k for k in voices if k in VOICE_PRESETS and VOICE_PRESETS[k].group == "gender"), None)
    if gender is not None:
        semitones, formant = gender_shift(gender, voices[gender].amount, median)
        gender_mask = _mask(spans(voices[gender]), frames, sr)
        lead_midi = lead_midi + semitones * _frame_mask(gender_mask, times, sr)
        moved = f"an octave {'up' if semitones > 0 else 'down'}" if semitones else "pitch kept"
        ctx.notes.append(
            f"{VOICE_PRESETS[gender].title}: {moved}, formants x{formant:.2f} (the voice's median was {median:.0f} Hz)"
        )
    if "autotune" in voices:
        amount = voices["autotune"].amount
        tuned = autotune_midi(lead_midi, voiced, amount, notes, track.hop_s)
        weight = _frame_mask(_mask(spans(voices["autotune"]), frames, sr), times, sr)
        lead_midi = np.where(voiced, weight * tuned + (1.0 - weight) * lead_midi, lead_midi)
        ctx.notes.append(f"autotune to {key_name} at {amount:.0%} (retune {fx.lerp(150.0, 0.0, amount):.0f} ms)")
    lead_f0 = np.where(voiced, 440.0 * 2.0 ** ((lead_midi - 69.0) / 12.0), 0.0)

    lead_keys = [k for k in voices if k == "autotune" or k == gender]
    out = x.copy()
    if lead_keys:
        lead = np.stack([engine.render(times, lead_f0, formant) for engine in engines])
        if gender_mask is not None and abs(formant - 1.0) > 1e-6:
            plain = np.stack([engine.render(times, lead_f0, 1.0) for engine in engines])
            lead = gender_mask * lead + (1.0 - gender_mask) * plain
        masks = [_mask(spans(voices[k]), frames, sr) for k in lead_keys]
        where = None if any(m is None for m in masks) else np.maximum.reduce(masks)
        out = lead if where is None else where * lead + (1.0 - where) * x

    if "whisper" in voices:
        amount = voices["whisper"].amount
        airy = whisper(out, sr, ctx.seed)
        airy = fx.equal_power_blend(out, airy, amount)
        where = _mask(spans(voices["whisper"]), frames, sr)
        out = airy if where is None else where * airy + (1.0 - where) * out
        ctx.notes.append(f"whisper at {amount:.0%}")

    copy_formant = formant if gender_mask is None else 1.0
    rng = np.random.default_rng(ctx.seed)
    extra = np.zeros_like(out)
    gate = _voicing_gain(track, frames, sr)
    for key in ("harmony", "double", "choir"):
        if key not in voices:
            continue
        amount = voices[key].amount
        where = _mask(spans(voices[key]), frames, sr)
        layer = np.zeros_like(out)
        if key == "harmony":
            lead_note = _median_filter_runs(
                np.where(voiced, _nearest_scale_note(np.where(voiced, lead_midi, 60.0), notes), 0.0), voiced, 5
            )
            lead_note = _nearest_scale_note(np.where(voiced, lead_note, 60.0), notes)
            # Harmony notes come from the key alone: a held note from outside it gets the key's third.
            key_notes = _scale_notes(scale_pitch_classes(ctx.key_pitch_class, ctx.mode))
            index = np.searchsorted(key_notes, _nearest_scale_note(lead_note, key_notes))
            fifth_up = median < 200.0
            parts = [(2, -0.35, "a third above")] + ([(4 if fifth_up else -4, 0.35, "a fifth above" if fifth_up else "a fifth below")] if amount > 0.3 else [])
            gain = fx.lerp(0.25, 0.6, amount)
            for degrees, position, _ in parts:
                target_note = key_notes[np.clip(index + degrees, 0, len(key_notes) - 1)]
                harmony_f0 = np.where(voiced, lead_f0 * 2.0 ** ((target_note - lead_note) / 12.0), 0.0)
                voice = mid_engine.render(times, harmony_f0, copy_formant) * gate
                layer += _pan(voice * np.float32(gain), position, channels)[:channels]
            ctx.notes.append(f"harmony: {' and '.join(p[2] for p in parts)} in {key_name}, at {amount:.0%}")
        elif key == "double":
            gain = fx.lerp(0.35, 0.8, amount)
            consonants = _voicing_gain(track, frames, sr, floor=0.3)
            for cents, delay_s, position, seed in ((6 + 6 * amount, 0.012, -1.0, 1), (-(6 + 6 * amount), 0.023, 1.0, 2)):
                voice = mid_engine.render(times, np.where(voiced, lead_f0 * 2.0 ** (cents / 1200.0), 0.0), copy_formant)
                voice = _delay(voice * consonants, sr, delay_s, 2.0, ctx.seed + seed)
                layer += _pan(voice * np.float32(gain), position, channels)[:channels]
            ctx.notes.append(f"double-tracked at {amount:.0%}: two copies {6 + 6 * amount:.0f} cents apart, panned wide")
        else:  # choir
            singers = int(round(fx.lerp(3, 6, amount)))
            gain = fx.lerp(0.5, 0.8, amount) / math.sqrt(singers)
            for i in range(singers):
                cents = rng.uniform(8.0, 25.0) * (1 if i % 2 else -1)
                ratio = copy_formant * rng.uniform(0.9, 1.12)
                position = fx.lerp(-0.8, 0.8, i / max(1, singers - 1))
                voice = mid_engine.render(times, np.where(voiced, lead_f0 * 2.0 ** (cents / 1200.0), 0.0), ratio)
                voice = _delay(voice * gate, sr, rng.uniform(0.005, 0.025), 0.0, ctx.seed + 10 + i)
                layer += _pan(voice * np.float32(gain), position, channels)[:channels]
            if amount > 0.6:
                octave = -12.0 if median > 180.0 else 12.0
                voice = mid_engine.render(times, np.where(voiced, lead_f0 * 2.0 ** (octave / 12.0), 0.0), copy_formant)
                layer += _pan(voice * gate * np.float32(0.5 * gain), 0.0, channels)[:channels]
            import pedalboard

            wet = fx.lerp(0.15, 0.35, amount)
            room = pedalboard.Reverb(room_size=0.8, damping=0.5, wet_level=wet, dry_level=0.0, width=1.0)
            tail = np.asarray(room(np.ascontiguousarray(layer), float(sr)), dtype=np.float32)[:, :frames]
            # A gated hall: the tail rings on through a phrase and for a moment after it, then
            # falls away, so the pauses between phrases stay clear instead of humming.
            layer = layer + tail * _tail_gate(track, frames, sr)
            out = out * np.float32(fx.lerp(1.0, 0.75, amount))
            ctx.notes.append(f"choir of {singers} voices{' and an octave voice' if amount > 0.6 else ''} at {amount:.0%}")
        extra += layer if where is None else layer * where
    out = out + extra
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    # The vocal sits in the mix where it did: the same overall level as before.
    new_level = _level(out, sr)
    if new_level > 1e-9:
        out *= np.float32(level / new_level)
    return Audio.trusted(np.ascontiguousarray(out, dtype=np.float32), sr)


def _convert(x: np.ndarray, sr: int, name: str, setting: VoiceSettings, mask, ctx: VoiceContext) -> np.ndarray:
    """The vocal sung in a voice model's timbre (the learned backend of :mod:`tools.voice_models`)."""
    if ctx.settings is None:
        raise BackendUnavailable(f"the voice model {name!r} needs the settings to find its files")
    from .voice_models import load_voice_model

    converter = load_voice_model(name, ctx.settings)
    track = pitch_tracking.track(x.mean(axis=0), sr)
    converted = converter.convert(x, sr, track.f0, track.times, 0.0, seed=ctx.seed, progress=ctx.progress)
    converted = converted * np.float32(fx.rms(x) / max(fx.rms(converted), 1e-9))
    mixed = fx.equal_power_blend(x, converted.astype(np.float32), setting.amount)
    info = converter.info
    ctx.notes.append(f"sung in the timbre of the voice model {info.name} at {setting.amount:.0%}")
    ctx.credits.append(f"voice model {info.name} ({info.version}, sha256 {info.sha256[:12]}); licence: {info.licence}")
    return mixed if mask is None else mask * mixed + (1.0 - mask) * x
