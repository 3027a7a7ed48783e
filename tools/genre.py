"""The ``genre_shift`` tool: the song played as another genre, at that genre's tempo.

The render does, in order:

1. **Tempo**: the song is time-stretched (key kept) to the asked bpm, or the genre's typical
   bpm. A song felt in half or double time is conformed the short way (a 65 bpm ballad
   becomes 130 for techno rather than being doubled in speed).
2. **Stems**: the song is separated (once, cached) so its own drums can be ducked under the
   new groove, and the harmony read without them.
3. **Groove**: a sample-free, beat-locked groove for the genre (kick, snare, hats, an 808 or
   bass line that follows the song's chord roots per bar) is laid on the song's own
   downbeats, stretched like the song, and the song is pumped by a sidechain envelope where
   the genre has one.
4. **Mix character**: the genre's EQ, saturation and space over the whole.

``amount`` blends from the original (0) to the full shift (1): the groove level, the drum
ducking, the pumping and the mix character all scale with it. The tempo is conformed
whenever a genre is applied, since a listener who names a bpm means it.

With MusicGen melody weights on disk (``REMIX_GENERATOR`` = ``auto`` or ``musicgen``) the
accompaniment is instead regenerated in the genre from the song's chroma and mixed under the
song's own vocals; the render's notes say which backend was used, and the weights' licence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import effects as fx
from .audio import Audio
from .errors import BackendUnavailable, ParameterError
from .grooves import GENRES, bar_roots, genre_style, mix_character, render_groove
from .spec import GenreSettings, RemixSpec, StemSettings
from .styles import end_like

__all__ = [
    "GENRE_VERSION",
    "GenreShiftArgs",
    "apply",
    "TempoPlan",
    "plan_tempo",
    "beat_grid",
    "conform",
    "run_genre",
    "genre_backend",
    "align_beats",
    "follow_level",
]

# Bump when the genre render's sound changes (here or in the grooves): it is part of the cache key.
GENRE_VERSION = 4
DEFAULT_STEP = 0.2
GROOVE_LEVEL_DB = -3.0  # the groove's level against the song's, at amount 1

GenreId = Literal[tuple(GENRES)]  # type: ignore[valid-type]


class GenreShiftArgs(BaseModel):
    """Play the song as another genre: its groove, its tempo and its mix (house, trap, drum and bass, ...).

    `bpm` sets the tempo (default: the genre's typical tempo); `amount` blends from the
    original (0) to the full shift (1, the default); `change` = `more` / `less` steps the
    amount by `step` (default 0.2), `remove` goes back to the song's own genre.
    """

    model_config = ConfigDict(extra="forbid")

    genre: GenreId | None = Field(None, description="genre id (needed unless change is remove, more or less)")
    bpm: float | None = Field(None, gt=20.0, le=300.0, description="target tempo in bpm")
    amount: float | None = Field(None, ge=0.0, le=1.0, description="blend 0..1 from the original to the full shift")
    change: Literal["set", "more", "less", "remove"] = Field("set")
    step: float | None = Field(None, gt=0.0, le=1.0, description="size of a more/less step (default 0.2)")

    @field_validator("genre", mode="before")
    @classmethod
    def _known_genre(cls, value):
        return genre_style(value).id if isinstance(value, str) else value

    @model_validator(mode="after")
    def _genre_for_set(self) -> "GenreShiftArgs":
        if self.change == "set" and self.genre is None:
            raise ValueError(f"name a genre to shift to: {', '.join(GENRES)}")
        return self


def apply(spec: RemixSpec, args: GenreShiftArgs) -> RemixSpec:
    """The spec with this genre shift applied."""
    current = spec.genre
    if args.change == "remove":
        if current.name is None:
            raise ParameterError("no genre shift is applied, so there is nothing to remove")
        return spec.update(genre=GenreSettings())
    if args.change == "set":
        amount = args.amount if args.amount is not None else 1.0
        return spec.update(genre=GenreSettings(name=args.genre, bpm=args.bpm, amount=amount))
    step = args.step if args.step is not None else DEFAULT_STEP
    same = current.name is not None and args.genre in (None, current.name)
    if not same:
        if args.change == "less" or args.genre is None:
            raise ParameterError("no such genre shift is applied, so there is nothing to make more or less of")
        amount = args.amount if args.amount is not None else 1.0
        return spec.update(genre=GenreSettings(name=args.genre, bpm=args.bpm, amount=amount))
    amount = min(1.0, max(0.0, current.amount + (step if args.change == "more" else -step)))
    if amount <= 1e-9:
        return spec.update(genre=GenreSettings())
    bpm = args.bpm if args.bpm is not None else current.bpm
    return spec.update(genre=GenreSettings(name=current.name, bpm=bpm, amount=round(amount, 6)))


@dataclass(frozen=True)
class TempoPlan:
    """How the song meets the target tempo.

    Attributes:
        song_bpm: the song's tempo as its beats give it.
        target_bpm: the groove's tempo.
        speed: time-stretch factor applied to the song (1.1 is 10 % faster).
        beats_per_song_beat: 1, or 2 when the song is felt in half time (0.5 in double time).
    """

    song_bpm: float
    target_bpm: float
    speed: float
    beats_per_song_beat: float


def plan_tempo(song_bpm: float, target_bpm: float) -> TempoPlan:
    """Choose the gentlest stretch: the song's beat may become one, two or half a groove beat."""
    if song_bpm <= 0:
        return TempoPlan(0.0, target_bpm, 1.0, 1.0)
    options = [(target_bpm / (song_bpm * f), f) for f in (1.0, 2.0, 0.5)]
    speed, factor = min(options, key=lambda o: (abs(math.log(o[0])) + (0.0 if o[1] == 1.0 else 0.15)))
    if not 0.25 <= speed <= 4.0:
        raise ParameterError(
            f"{target_bpm:g} bpm is too far from the song's {song_bpm:.1f} bpm to reach by time-stretching"
        )
    return TempoPlan(song_bpm, target_bpm, speed, factor)


def _song_tempo(beats: np.ndarray, fallback: float) -> float:
    """The song's average tempo from a line fitted through its beats (what a listener tapping along gets)."""
    if len(beats) >= 8:
        period = float(np.polyfit(np.arange(len(beats)), beats, 1)[0])
        if period > 0:
            return 60.0 / period
    return fallback


def conform(beats: np.ndarray, frames: int, sr: int, plan: TempoPlan) -> tuple[np.ndarray | float, np.ndarray]:
    """A time warp that puts the song's beats on a steady grid at the target tempo.

    Each stretch of the song between two beats gets its own speed, so that every beat lands
    exactly one groove beat (or two, or half) after the previous one: a song that drifts or
    breathes is conformed to the groove rather than the groove wandering with the song.
    Tracker slips are not followed: no stretch differs from the average by more than 10 %.

    Returns:
        The speed per input frame (or the plain speed when the song has too few beats), and
        the output time of each beat in seconds.
    """
    if len(beats) < 8:
        return plan.speed, np.asarray(beats, dtype=np.float64) / plan.speed
    song_beat_s = plan.beats_per_song_beat * 60.0 / plan.target_bpm  # output seconds per song beat
    b = np.clip(np.round(np.asarray(beats) * sr).astype(np.int64), 0, frames - 1)
    speed = np.full(frames, plan.speed)
    ratios = np.clip(np.diff(b) / sr / song_beat_s, 0.9 * plan.speed, 1.1 * plan.speed)
    for (start, stop), ratio in zip(zip(b[:-1], b[1:]), ratios):
        speed[start:stop] = ratio
    speed = fx.blockwise_speed(speed, frames)
    position = np.concatenate([[0.0], np.cumsum(1.0 / speed)])
    return speed, position[b] / sr


def beat_grid(
    beats: np.ndarray,
    downbeats: np.ndarray,
    beats_per_bar: int,
    duration_s: float,
    plan: TempoPlan,
    out_beats: np.ndarray | None = None,
    out_duration_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bars of the groove in output seconds: the song's own beats, stretched, regrouped, extended to the ends.

    ``out_beats`` (from :func:`conform`) gives where the song's beats landed in the output;
    without it they are taken as stretched by the plain speed.
    Returns ``(bar_starts, bar_ends)`` covering the output from the first bar line to its end.
    """
    out_duration = out_duration_s if out_duration_s is not None else duration_s / plan.speed
    period = 60.0 / plan.target_bpm
    if len(beats) < 4:
        starts = np.arange(0.0, out_duration, period * beats_per_bar)
        return starts, np.minimum(starts + period * beats_per_bar, out_duration)
    if out_beats is not None:
        grid = np.asarray(out_beats, dtype=np.float64)
    else:
        grid = _steady(np.asarray(beats, dtype=np.float64)) / plan.speed
    first_down = 0
    if len(downbeats):
        first_down = int(np.argmin(np.abs(np.asarray(beats) - downbeats[0])))
    if plan.beats_per_song_beat == 2.0:
        mids = (grid[:-1] + grid[1:]) / 2.0
        grid = np.sort(np.concatenate([grid, mids]))
        first_down *= 2
    elif plan.beats_per_song_beat == 0.5:
        grid = grid[first_down % 2 :: 2]
        first_down = (first_down - first_down % 2) // 2
    # Extend the beat grid with the local period to cover the whole output.
    head_period = float(np.median(np.diff(grid[:9])))
    tail_period = float(np.median(np.diff(grid[-9:])))
    before = grid[0] - head_period * np.arange(1, int(grid[0] / head_period) + 2)
    after = grid[-1] + tail_period * np.arange(1, int(max(0.0, out_duration - grid[-1]) / tail_period) + 2)
    grid_all = np.concatenate([before[::-1], grid, after])
    first_down += len(before)
    # Bars start every beats_per_bar beats from the first downbeat, backwards and forwards.
    index = np.arange(first_down % beats_per_bar, len(grid_all), beats_per_bar)
    starts = grid_all[index]
    ends = np.append(starts[1:], starts[-1] + (starts[-1] - starts[-2] if len(starts) > 1 else period * beats_per_bar))
    keep = (ends > 0.0) & (starts < out_duration) & (starts >= -1e-9)
    return starts[keep], np.minimum(ends[keep], out_duration)


# The fine onset envelope below peaks this long after a sound's attack (measured on click
# tracks and on the demo song's kicks, whose true beat times are known: 6 and 10 ms).
_FINE_ONSET_LATENCY_S = 0.008


def align_beats(mono: np.ndarray, sr: int, beats: np.ndarray, reach_s: float = 0.06) -> np.ndarray:
    """The beats moved, all together, onto the song's own attacks at 3 ms resolution.

    The analysis places beats on 23 ms frames; a groove laid there can flam against the
    song's own drums. This finds the single offset (within ``reach_s``) that best lines the
    beats up with a fine onset envelope of the first 90 s, and applies it when it is clear.
    """
    import librosa

    if len(beats) < 8:
        return beats
    span = mono[: int(min(len(mono), (beats[min(len(beats) - 1, 200)] + 1.0) * sr, 90 * sr))]
    y = librosa.resample(span, orig_sr=sr, target_sr=22050, res_type="soxr_hq")
    hop = 64
    env = librosa.onset.onset_strength(y=y, sr=22050, hop_length=hop, n_fft=512, n_mels=64)
    rate = 22050 / hop
    inside = beats[beats < len(env) / rate - reach_s]
    if len(inside) < 8:
        return beats
    lags = np.arange(-reach_s, reach_s + 1e-9, 1.0 / rate)
    scores = np.array([env[np.clip(np.round((inside + lag) * rate).astype(int), 0, len(env) - 1)].mean() for lag in lags])
    best = int(np.argmax(scores))
    if scores[best] < 1.5 * float(np.median(scores)):  # no clear attack on the beats: leave them
        return beats
    return beats + (lags[best] - _FINE_ONSET_LATENCY_S)


def _steady(beats: np.ndarray, window: int = 17) -> np.ndarray:
    """Beat times with the tracker's frame jitter smoothed out, tempo drift kept (local quadratic fit)."""
    from scipy.signal import savgol_filter

    window = min(window, len(beats) - (1 - len(beats) % 2))
    if window < 5:
        return beats
    return savgol_filter(beats, window, polyorder=2, mode="interp")


def genre_backend(settings) -> tuple[str, Path | None]:
    """Which backend renders genre shifts: ``("musicgen", weights folder)`` or ``("dsp", None)``.

    ``auto`` takes MusicGen melody when complete weights are on disk; ``musicgen`` insists
    (BackendUnavailable saying what is missing and where to put it); ``dsp`` never uses it.
    """
    choice = settings.generator
    if choice not in ("auto", "musicgen", "dsp"):
        raise ParameterError(f"REMIX_GENERATOR={choice!r} must be auto, musicgen or dsp")
    if choice == "dsp":
        return "dsp", None
    from .generators.musicgen import find_weights, load_generator

    folder = find_weights(settings)
    if folder is None:
        if choice == "musicgen":
            load_generator(settings)  # raises BackendUnavailable saying what is missing and where
            raise BackendUnavailable("MusicGen melody weights are not available")
        return "dsp", None
    return "musicgen", folder


def run_genre(audio: Audio, spec: RemixSpec, context) -> Audio:
    """The genre render stage (see the module docstring)."""
    genre = spec.genre
    style = genre_style(genre.name)
    amount = float(genre.amount)
    sr = audio.sample_rate
    analysis = context.analysis_for(spec)
    beats = align_beats(audio.to_mono(), sr, np.asarray(analysis.beats, dtype=np.float64))
    downbeats = np.asarray(analysis.downbeats, dtype=np.float64) + (beats[0] - analysis.beats[0] if len(beats) else 0.0)
    target = float(genre.bpm or style.bpm)
    plan = plan_tempo(_song_tempo(beats, analysis.tempo), target)

    # The song's own drums, as they sound in this stage's input, to duck under the new groove.
    pre = audio.samples
    stems = context.stems_for(spec)
    if stems:
        drums_level = spec.stems.get("drums", StemSettings())
        gain = 0.0 if drums_level.mute else 10.0 ** (drums_level.gain_db / 20.0)
        duck = amount * style.drum_duck * gain
        if duck > 0:
            pre = pre - np.float32(duck) * stems["drums"].samples

    backend, folder = context.genre_backend()
    beats = _steady(beats) if len(beats) >= 8 else beats
    speed, out_beats = conform(beats, audio.frames, sr, plan)
    song = fx.time_stretch(pre, sr, speed, high_quality=False)
    frames = song.shape[1]
    bar_starts, bar_ends = beat_grid(
        beats, downbeats, analysis.beats_per_bar, audio.duration_s, plan, out_beats, frames / sr
    )

    if backend == "musicgen":
        from .generators.musicgen import load_generator

        generator = load_generator(context.settings, folder)
        vocals = fx.time_stretch(stems["vocals"].samples, sr, speed, high_quality=False)
        # The melody that conditions the model: the voice and the harmony, without drums and bass.
        melody = vocals + fx.time_stretch(stems["other"].samples, sr, speed, high_quality=False)
        backing = song - vocals
        generated = generator.accompaniment(
            Audio.trusted(np.ascontiguousarray(melody), sr), style.prompt, list(bar_starts), plan.target_bpm
        ).samples
        generated = generated * (fx.rms(backing) / max(fx.rms(generated), 1e-9))
        mixed = vocals + amount * generated + (1.0 - amount) * backing
        context.notes.append(
            f"genre {style.id} at {plan.target_bpm:g} bpm, accompaniment regenerated by {generator.model_id} "
            f"under the song's vocals; {generator.licence}"
        )
    else:
        roots = bar_roots(Audio.trusted(np.ascontiguousarray(song), sr), bar_starts, bar_ends)
        seed = int(context.source.key[:8], 16)
        groove = render_groove(style, bar_starts, bar_ends, analysis.beats_per_bar, roots, sr, frames, seed=seed)
        parts = (groove.drums + groove.bass) * follow_level(song, sr)
        if parts.shape[0] != song.shape[0]:
            parts = np.broadcast_to(parts.mean(axis=0, keepdims=True), song.shape)
        level = fx.rms(song) / max(fx.rms(parts), 1e-9) * 10.0 ** (GROOVE_LEVEL_DB / 20.0)
        pump = 1.0 - amount * (1.0 - groove.pump)
        mixed = song * pump + np.float32(amount * level) * parts
        context.notes.append(
            f"genre {style.id} at {plan.target_bpm:g} bpm (song {plan.song_bpm:.1f} bpm, stretched x{plan.speed:.3f}), "
            f"groove synthesised on {len(bar_starts)} bars"
        )
    out = mix_character(Audio.trusted(np.ascontiguousarray(mixed, dtype=np.float32), sr), style, amount)
    return out.replace(end_like(song, out.samples, sr))


def follow_level(song: np.ndarray, sr: int, window_s: float = 0.5) -> np.ndarray:
    """A gain (frames,) in 0..1 that lets the groove follow the song's dynamics.

    1 wherever the song plays at a normal level; falling with it where it fades in or out or
    stops, so the groove neither plays over a fade nor keeps going after the song has ended.
    """
    hop = max(1, int(window_s * sr / 2))
    mono = song.mean(axis=0)
    blocks = len(mono) // hop + 1
    padded = np.pad(mono, (0, blocks * hop - len(mono)))
    level = np.sqrt(np.mean(padded.reshape(blocks, hop) ** 2, axis=1))
    level = np.maximum(level, np.concatenate([level[1:], level[-1:]]))  # look a block ahead: no late entries
    reference = float(np.median(level[level > 1e-6])) if np.any(level > 1e-6) else 1.0
    gain = np.clip(level / (0.15 * reference), 0.0, 1.0)
    centres = (np.arange(blocks) + 0.5) * hop
    return np.interp(np.arange(len(mono)), centres, gain).astype(np.float32)
