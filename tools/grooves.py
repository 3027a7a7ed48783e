"""Beat-locked, sample-free genre grooves: the data and the synthesis behind ``genre_shift``.

Each genre is one :class:`GenreStyle`: its tempo, feel (swing, half time), how hard the song
is pumped and its drums ducked, a text prompt for generative backends, and the material for
the synthesiser: drum patterns, a kit, a bass line and a mix-character chain.

**Patterns** are 16 steps per 4/4 bar (sixteenth notes), written four to a beat (spaces and
``|`` only group them), and may run over two bars (32 steps) for a call-and-answer. Drum steps: ``X`` accent, ``x`` normal,
``o`` ghost, ``r`` / ``t`` a roll of two / three hits inside the step, ``.`` rest. Bass steps:
``R`` root, ``O`` octave above, ``F`` fifth above (lower case: softer), ``-`` hold, ``.`` rest.
A 3/4 bar plays the first 12 steps; any other meter runs the steps on, wrapping round.

**Timing.** Every bar's steps are spread evenly over that bar as the caller gives it, so the
groove follows the song's own downbeats when its tempo wavers; off-beat sixteenths are
delayed by the genre's swing. Other lanes than the kick get a little seeded timing and
velocity humanisation; the kick stays on the grid, which is what the song is pumped against.

**Sound.** Every drum hit (kick with pitch sweep and click, snare, clap bursts, metallic
hats, rim, shaker, conga-ish percussion) is synthesised once per render with numpy/scipy and
added at each of its positions; open hats are choked by the next hat. The bass line is
rendered phrase by phrase: a phrase is one note, or a run of 808 notes that slide into each
other, played by one phase-continuous oscillator under a smoothed envelope that rises from
zero on the phrase's first sample and is back at zero before its end, so nothing clicks. Its
voices are an 808 (pitch punch, saturation, glide), a sub sine, a filtered saw, a detuned
reese and an LFO-filtered wobble (filter sweeps as a crossfade between a dark and a bright
low-pass, the LFO locked to the beat).

:func:`bar_roots` reads the chord root of each bar from bass-weighted chroma, so the bass
line plays the song's harmony; :func:`mix_character` gives the song the genre's EQ,
saturation and space through pedalboard, scaled by an amount.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from .audio import Audio
from .effects import polyblep_saw
from .errors import ParameterError

__all__ = [
    "Kit",
    "BassLine",
    "GenreStyle",
    "GENRES",
    "GENRE_ALIASES",
    "genre_style",
    "bar_roots",
    "Groove",
    "render_groove",
    "mix_character",
]

STEPS_PER_BAR = 16
PEAK = 0.5  # drums and bass are each rendered to this peak (-6 dBFS)

_DRUM_VELOCITY = {"X": 1.0, "x": 0.7, "o": 0.4, "r": 0.55, "t": 0.5}
_ROLL_HITS = {"r": 2, "t": 3}
_BASS_INTERVAL = {"r": 0, "o": 12, "f": 7}
_BASS_SOFT = 0.7  # velocity of a lower-case bass note
_VOICES = ("808", "sub", "saw", "reese", "wobble")
_EFFECTS = ("highpass", "lowpass", "saturate", "compress", "chorus", "reverb", "shelf", "crush")


@dataclass(frozen=True)
class Kit:
    """How a genre's drums sound; every hit is synthesised from these.

    Attributes:
        kick_hz: the kick's pitch sweep, start -> end (Hz).
        kick_decay_s: time constant of the kick body.
        kick_click: level of the kick's attack click (0..1).
        kick_drive: saturation of the kick (1 = gentle).
        rumble: level of the low, distorted reverb tail after the kick (techno), 0..1.
        snare_hz: the snare's shell tone (Hz).
        snare_decay_s: time constant of the snare's noise.
        snare_gate_s: length of a gated-reverb tail on the snare (0 = none).
        hat_decay_s: time constant of the closed hat.
        open_decay_s: time constant of the open hat.
        perc_hz: pitch of the conga-ish percussion (the tom sits lower).
        tone_hz: low-pass over the whole kit (a soft, dusty kit is well under 10 kHz).
        humanise_ms: largest timing nudge of the lanes other than the kick.
    """

    kick_hz: tuple[float, float] = (150.0, 50.0)
    kick_decay_s: float = 0.16
    kick_click: float = 0.4
    kick_drive: float = 1.5
    rumble: float = 0.0
    snare_hz: float = 190.0
    snare_decay_s: float = 0.11
    snare_gate_s: float = 0.0
    hat_decay_s: float = 0.035
    open_decay_s: float = 0.18
    perc_hz: float = 330.0
    tone_hz: float = 16000.0
    humanise_ms: float = 2.0


@dataclass(frozen=True)
class BassLine:
    """A genre's bass line, played on each bar's chord root.

    Attributes:
        voice: ``808``, ``sub``, ``saw``, ``reese`` or ``wobble``.
        pattern: 16 or 32 bass steps (see the module docstring).
        low_midi: roots are placed in ``[low_midi, low_midi + 12)`` (MIDI note numbers).
        glide_s: time constant of the pitch glide between notes (0 = none).
        brightness: how far the filter opens (saw, reese, wobble), 0..1.
        wobble: LFO cycles per beat for each beat of the bar (wobble voice).
    """

    voice: str
    pattern: str
    low_midi: int = 33
    glide_s: float = 0.0
    brightness: float = 0.4
    wobble: tuple[float, ...] = ()


@dataclass(frozen=True)
class GenreStyle:
    """A genre: its feel, its prompt, and the data its groove is synthesised from.

    Attributes:
        id: the genre's id (``house``).
        title: how to name it to a listener.
        bpm: typical tempo.
        bpm_range: the usual tempo range.
        half_time: felt in half time (snare on beat 3).
        swing: delay of off-beat sixteenths as a fraction of a sixteenth, 0..0.5.
        sidechain: depth of the pumping applied to the song, 0..1.
        drum_duck: how much the caller ducks the song's own drums, 0..1.
        prompt: a description for a generative model.
        drums: ``(lane, pattern)`` pairs; lanes are kick, snare, clap, rim, hat, open, shaker, perc, tom.
        kit: how the drums sound.
        bass: the bass line.
        character: the mix chain as ``(effect, value at amount 1)`` pairs; effects are highpass
            and lowpass (Hz), saturate (dB of drive), compress (ratio), chorus and reverb (wet
            mix), shelf (dB above 6 kHz) and crush (bits).
    """

    id: str
    title: str
    bpm: float
    bpm_range: tuple[float, float]
    half_time: bool
    swing: float
    sidechain: float
    drum_duck: float
    prompt: str
    drums: tuple[tuple[str, str], ...]
    kit: Kit
    bass: BassLine
    character: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        low, high = self.bpm_range
        if not low <= self.bpm <= high:
            raise ParameterError(f"{self.id}: bpm={self.bpm} must lie in bpm_range={self.bpm_range}")
        limits = (("swing", self.swing, 0.5), ("sidechain", self.sidechain, 1.0), ("drum_duck", self.drum_duck, 1.0))
        for name, value, top in limits:
            if not 0.0 <= value <= top:
                raise ParameterError(f"{self.id}: {name}={value} must be between 0 and {top}")
        for lane, pattern in self.drums:
            if lane not in _LANES:
                raise ParameterError(f"{self.id}: unknown drum lane {lane!r}; expected one of {', '.join(_LANES)}")
            _steps(pattern, "Xxort.", f"{self.id} {lane}")
        steps = _steps(self.bass.pattern, "RrOoFf-.", f"{self.id} bass")
        if steps[0] == "-" or (len(steps) > STEPS_PER_BAR and steps[STEPS_PER_BAR] == "-"):
            raise ParameterError(f"{self.id}: a bass bar cannot begin with a hold ('-')")
        if self.bass.voice not in _VOICES:
            raise ParameterError(f"{self.id}: bass voice {self.bass.voice!r} must be one of {', '.join(_VOICES)}")
        if self.bass.voice == "wobble" and not self.bass.wobble:
            raise ParameterError(f"{self.id}: a wobble bass needs its LFO rates (wobble=...)")
        for effect, _ in self.character:
            if effect not in _EFFECTS:
                raise ParameterError(f"{self.id}: unknown mix effect {effect!r}; expected one of {', '.join(_EFFECTS)}")


@lru_cache(maxsize=256)
def _steps(pattern: str, allowed: str, where: str) -> str:
    """The pattern's steps without the spaces that group them; 16 or 32 of them, from ``allowed``."""
    steps = re.sub(r"[\s|]", "", pattern)
    if len(steps) not in (STEPS_PER_BAR, 2 * STEPS_PER_BAR) or set(steps) - set(allowed):
        raise ParameterError(f"{where}: pattern {pattern!r} must have 16 or 32 steps of {allowed!r}")
    return steps


# Chord roots ------------------------------------------------------------------------------

_ROOTS_SR = 22050
_ROOTS_FFT = 8192
_ROOTS_HOP = 1024
_SILENT_RMS = 1e-3  # bars quieter than -60 dBFS have no harmony
_MIN_MATCH = 0.65  # a bar's chroma must correlate at least this well with a triad (drums alone rarely do)
_BASS_WEIGHT = 1.0  # weight of the bass register's share of the root
_BLIP_MARGIN = 0.12  # a one-bar change is kept only if it beats the neighbours' root by this much


def _chroma_maps(n_fft: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectrum-to-pitch-class maps [shape=(12, bins)]: the full register (55 Hz-2 kHz) and the bass (35-260 Hz)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    pitch = np.zeros(freqs.size, dtype=np.int64)
    audible = freqs > 0
    pitch[audible] = np.round(69.0 + 12.0 * np.log2(freqs[audible] / 440.0)).astype(np.int64) % 12
    one_hot = np.zeros((12, freqs.size))
    one_hot[pitch, np.arange(freqs.size)] = 1.0
    full = one_hot * ((freqs >= 55.0) & (freqs <= 2000.0))
    bass = one_hot * ((freqs >= 35.0) & (freqs <= 260.0))
    return full, bass


def _triad_templates() -> np.ndarray:
    """Zero-mean, unit-norm major and minor triad templates [shape=(2, 12 roots, 12)]."""
    templates = np.zeros((2, 12, 12))
    for quality, third in enumerate((4, 3)):
        for root in range(12):
            templates[quality, root, [root, (root + third) % 12, (root + 7) % 12]] = (1.0, 0.8, 0.9)
    templates -= templates.mean(axis=2, keepdims=True)
    return templates / np.linalg.norm(templates, axis=2, keepdims=True)


def bar_roots(audio: Audio, bar_starts: np.ndarray, bar_ends: np.ndarray) -> list[int | None]:
    """Pitch class (0 = C .. 11 = B) of each bar's chord root; ``None`` where a bar has no clear harmony.

    The mono mix at 22.05 kHz is read through 370 ms windows, folded into a full-register and
    a bass-register chroma, summed per bar, and scored against major and minor triads (the
    correlation with the triad plus the bass register's share of its root). Silent bars and
    bars that match no triad well (drums, noise) give ``None``. A one-bar change between two
    equal roots is taken for a passing chord and smoothed over unless it is clearly stronger;
    a one-bar gap of ``None`` between equal roots is filled.
    """
    starts, ends = _check_bars(bar_starts, bar_ends)
    if starts.size == 0:
        return []
    import soxr

    mono = audio.to_mono().astype(np.float32)
    if audio.sample_rate != _ROOTS_SR:
        mono = soxr.resample(mono, audio.sample_rate, _ROOTS_SR, quality="MQ").astype(np.float32)
    sr = _ROOTS_SR
    lo = max(0, int(starts[0] * sr) - _ROOTS_FFT // 2)
    hi = min(mono.size, int(ends[-1] * sr) + _ROOTS_FFT // 2)
    segment = mono[lo:hi]
    if segment.size < _ROOTS_FFT:
        segment = np.pad(segment, (0, _ROOTS_FFT - segment.size))
    full_map, bass_map = _chroma_maps(_ROOTS_FFT, sr)
    window = np.hanning(_ROOTS_FFT).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(segment, _ROOTS_FFT)[::_ROOTS_HOP]
    full = np.empty((frames.shape[0], 12))
    bass = np.empty((frames.shape[0], 12))
    for i in range(0, frames.shape[0], 256):
        mag = np.abs(np.fft.rfft(frames[i : i + 256] * window, axis=1))
        full[i : i + 256] = mag @ full_map.T
        bass[i : i + 256] = mag @ bass_map.T
    centres = (lo + np.arange(frames.shape[0]) * _ROOTS_HOP + _ROOTS_FFT / 2) / sr
    bar_of_frame = np.searchsorted(starts, centres, side="right") - 1
    inside = (bar_of_frame >= 0) & (centres < ends[np.clip(bar_of_frame, 0, None)])
    templates = _triad_templates()
    scores: list[np.ndarray | None] = []
    for i in range(starts.size):
        bar = segment[max(int(starts[i] * sr) - lo, 0) : max(int(ends[i] * sr) - lo, 0)]
        rms = float(np.sqrt(np.mean(np.square(bar, dtype=np.float64)))) if bar.size else 0.0
        chosen = inside & (bar_of_frame == i)
        if rms < _SILENT_RMS or not chosen.any():
            scores.append(None)
            continue
        chroma = full[chosen].sum(axis=0)
        chroma = chroma - chroma.mean()
        norm = np.linalg.norm(chroma)
        low = bass[chosen].sum(axis=0)
        share = low / max(low.sum(), 1e-12)
        match = (templates @ chroma).max(axis=0) / max(norm, 1e-12)
        scores.append(np.where(match >= _MIN_MATCH, match + _BASS_WEIGHT * share, -np.inf))
    roots: list[int | None] = [
        None if s is None or not np.isfinite(s.max()) else int(np.argmax(s)) for s in scores
    ]
    smoothed = list(roots)
    for i in range(1, len(roots) - 1):
        before, here, after = roots[i - 1], roots[i], roots[i + 1]
        if before is None or before != after or here == before:
            continue
        score = scores[i]
        if here is None:
            if score is not None:
                smoothed[i] = before
        elif score[here] - score[before] < _BLIP_MARGIN:
            smoothed[i] = before
    return smoothed


# Drum hits --------------------------------------------------------------------------------


def _filter(x: np.ndarray, sr: int, kind: str, hz: float | tuple[float, float], order: int = 2) -> np.ndarray:
    """A Butterworth low-, high- or band-pass along the last axis, its edges kept below Nyquist."""
    return signal.sosfilt(_butter(sr, kind, hz, order), x, axis=-1)


@lru_cache(maxsize=64)
def _butter(sr: int, kind: str, hz: float | tuple[float, float], order: int) -> np.ndarray:
    top = 0.45 * sr
    edges = (min(hz[0], 0.5 * top), min(hz[1], top)) if kind == "bandpass" else min(float(hz), top)
    return signal.butter(order, edges, btype=kind, fs=sr, output="sos")


def _norm(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.abs(x).max()), 1e-12)


def _noise(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Stereo white noise [shape=(2, n)] whose channels differ by ``width`` (0 = mono)."""
    mid, side = rng.standard_normal(n), rng.standard_normal(n)
    return np.stack([mid + width * side, mid - width * side]) / math.sqrt(1.0 + width * width)


def _decay(t: np.ndarray, seconds: float) -> np.ndarray:
    return np.exp(-t / seconds)


def _kick(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sine with a falling pitch, a noise click, saturation, and the optional rumble tail."""
    length = max(min(0.8, kit.kick_decay_s * 5.0), 0.45 if kit.rumble else 0.0)
    t = np.arange(int(length * sr)) / sr
    start, end = kit.kick_hz
    freq = end + (start - end) * _decay(t, 0.035)
    body = np.sin(2.0 * np.pi * np.cumsum(freq) / sr) * _decay(t, kit.kick_decay_s)
    click = _norm(_filter(rng.standard_normal(t.size), sr, "bandpass", (1500.0, 7000.0))) * _decay(t, 0.002)
    kick = np.tanh(kit.kick_drive * (body + kit.kick_click * click)) / np.tanh(kit.kick_drive)
    if kit.rumble:
        tail = rng.standard_normal(int(0.3 * sr)) * _decay(np.arange(int(0.3 * sr)) / sr, 0.08)
        wet = _filter(signal.oaconvolve(body, tail)[: t.size], sr, "lowpass", 110.0, order=4)
        wet = np.tanh(2.0 * _norm(wet)) * (1.0 - _decay(t, 0.05))
        kick = kick + kit.rumble * 0.6 * wet * np.clip((0.42 - t) / 0.1, 0.0, 1.0)
    return np.stack([kick, kick])


def _snare(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two shell tones and band-passed noise; a flat, abruptly gated noise tail where the kit has one."""
    length = kit.snare_decay_s * 5.0 + kit.snare_gate_s
    t = np.arange(int(length * sr)) / sr
    tone = (np.sin(2 * np.pi * kit.snare_hz * t) + 0.5 * np.sin(2 * np.pi * 1.6 * kit.snare_hz * t)) * _decay(t, 0.05)
    noise = _norm(_filter(_noise(rng, t.size, 0.15), sr, "bandpass", (1200.0, 9000.0))) * _decay(t, kit.snare_decay_s)
    snare = 0.5 * tone / 1.5 + noise
    if kit.snare_gate_s:
        gate = np.clip(t / 0.01, 0.0, 1.0) * np.clip((kit.snare_gate_s + 0.02 - t) / 0.02, 0.0, 1.0)
        snare = snare + 0.35 * _norm(_filter(_noise(rng, t.size, 0.8), sr, "bandpass", (600.0, 7000.0))) * gate
    return snare


def _clap(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Three quick noise bursts and a longer fourth, band-passed."""
    t = np.arange(int(0.4 * sr)) / sr
    env = np.zeros_like(t)
    for onset in (0.0, 0.010, 0.021):
        env += (t >= onset) * _decay(np.maximum(t - onset, 0.0), 0.004)
    env += (t >= 0.032) * _decay(np.maximum(t - 0.032, 0.0), 0.07)
    return _norm(_filter(_noise(rng, t.size, 0.35), sr, "bandpass", (900.0, 6000.0))) * env


def _hat(which: str) -> Callable[[Kit, int, np.random.Generator], np.ndarray]:
    """The closed (``hat``) or ``open`` hat: six detuned square waves and noise, high-passed."""

    def hat(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
        decay = kit.hat_decay_s if which == "hat" else kit.open_decay_s
        t = np.arange(int(min(1.0, decay * 6.0) * sr)) / sr
        metal = sum(np.sign(np.sin(2 * np.pi * f * 1.6 * t)) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)) / 6.0
        raw = 0.6 * metal + 0.8 * _noise(rng, t.size, 0.35)
        return _norm(_filter(raw, sr, "highpass", 7000.0, order=4)) * _decay(t, decay)

    return hat


def _rim(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A woody click: two short tones and a noise tick."""
    t = np.arange(int(0.08 * sr)) / sr
    tick = _norm(_filter(rng.standard_normal(t.size), sr, "highpass", 2000.0)) * _decay(t, 0.003)
    rim = np.sin(2 * np.pi * 1650 * t) * _decay(t, 0.01) + 0.6 * np.sin(2 * np.pi * 480 * t) * _decay(t, 0.018)
    rim = rim + 0.3 * tick
    return np.stack([rim, rim])


def _shaker(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise with a soft attack."""
    t = np.arange(int(0.25 * sr)) / sr
    env = np.clip(t / 0.006, 0.0, 1.0) * _decay(np.maximum(t - 0.006, 0.0), 0.045)
    return _norm(_filter(_noise(rng, t.size, 0.5), sr, "bandpass", (4500.0, 11000.0))) * env


def _drum_tone(pitch: float, decay_s: float) -> Callable[[Kit, int, np.random.Generator], np.ndarray]:
    """A conga- or tom-like tone at ``pitch`` times the kit's percussion pitch."""

    def tone(kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(int(decay_s * 4.0 * sr)) / sr
        freq = kit.perc_hz * pitch * (1.0 + 0.25 * _decay(t, 0.008))
        slap = _norm(_filter(rng.standard_normal(t.size), sr, "bandpass", (1000.0, 5000.0))) * _decay(t, 0.003)
        body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _decay(t, decay_s) + 0.15 * slap
        return np.stack([body, body])

    return tone


# lane -> (synthesis, level, pan -1..1)
_LANES: dict[str, tuple[Callable[[Kit, int, np.random.Generator], np.ndarray], float, float]] = {
    "kick": (_kick, 1.0, 0.0),
    "snare": (_snare, 0.75, 0.0),
    "clap": (_clap, 0.65, 0.0),
    "rim": (_rim, 0.45, 0.2),
    "hat": (_hat("hat"), 0.28, 0.25),
    "open": (_hat("open"), 0.25, -0.2),
    "shaker": (_shaker, 0.22, 0.35),
    "perc": (_drum_tone(1.0, 0.09), 0.4, -0.3),
    "tom": (_drum_tone(0.55, 0.15), 0.45, -0.15),
}
_CHOKED = ("hat", "open")  # an open hat stops at the next hat


def _hit(lane: str, kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One lane's hit, float32 [shape=(2, n)]: toned, panned, levelled, with a 1 ms fade-in and a fade-out to zero."""
    make, level, pan = _LANES[lane]
    hit = make(kit, sr, rng)
    if kit.tone_hz < 0.45 * sr:
        hit = _filter(hit, sr, "lowpass", kit.tone_hz)
    angle = (pan + 1.0) * np.pi / 4.0
    hit = hit * (level * math.sqrt(2.0) * np.array([[math.cos(angle)], [math.sin(angle)]]))
    return _fade(hit, sr, 0.001, 0.01).astype(np.float32)


def _fade(x: np.ndarray, sr: int, fade_in_s: float, fade_out_s: float) -> np.ndarray:
    """``x`` with a linear fade from zero at its start and to zero at its end (last axis)."""
    n = x.shape[-1]
    a, b = min(n, max(1, int(fade_in_s * sr))), min(n, max(2, int(fade_out_s * sr)))
    x[..., :a] *= np.arange(a) / a
    x[..., n - b :] *= np.linspace(1.0, 0.0, b)
    return x


# The grid ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Groove:
    """A rendered groove, all arrays the length of the output.

    Attributes:
        drums: the synthesised kit, float32 [shape=(2, frames)].
        bass: the bass line, float32 [shape=(2, frames)].
        pump: gain for the song, float32 in (0, 1] [shape=(frames,)]; 1 is no ducking.
    """

    drums: np.ndarray
    bass: np.ndarray
    pump: np.ndarray


def _check_bars(bar_starts: np.ndarray, bar_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.asarray(bar_starts, dtype=np.float64).reshape(-1)
    ends = np.asarray(bar_ends, dtype=np.float64).reshape(-1)
    if starts.shape != ends.shape:
        raise ParameterError(f"bar_starts ({starts.size}) and bar_ends ({ends.size}) must have the same length")
    if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
        raise ParameterError("bar_starts and bar_ends must be finite seconds")
    if (starts < 0).any() or (ends <= starts).any() or (np.diff(starts) <= 0).any():
        raise ParameterError("bars must start at 0 s or later, in increasing order, each ending after it starts")
    return starts, ends


def _step_grid(starts: np.ndarray, ends: np.ndarray, steps: int, swing: float) -> tuple[np.ndarray, np.ndarray]:
    """Start time (s) of each step of each bar [shape=(bars, steps)], off-beat sixteenths swung,
    and each bar's step length (s) [shape=(bars,)].

    A bar much shorter than the one before it (the song's end cutting a bar short) keeps the
    step length of the one before, so its steps are not squeezed; steps past its end go unplayed.
    """
    length = ends - starts
    nominal = length.copy()
    cut = np.flatnonzero(length[1:] < 0.75 * length[:-1]) + 1
    nominal[cut] = length[cut - 1]
    step = nominal / steps
    position = np.arange(steps) + swing * (np.arange(steps) % 2)
    return starts[:, None] + step[:, None] * position[None, :], step


def _bar_steps(pattern: str, bar: int, steps: int) -> str:
    """The steps one bar plays of a one- or two-bar pattern."""
    cycle = _steps(pattern, "XxortRrOoFf-.", "pattern")
    offset = (bar % (len(cycle) // STEPS_PER_BAR)) * STEPS_PER_BAR
    return "".join(cycle[offset + i % STEPS_PER_BAR] for i in range(steps))


def _drum_events(
    pattern: str, grid: np.ndarray, step: np.ndarray, ends: np.ndarray, sr: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions and velocities of one lane's hits over all bars (a roll splits its step)."""
    positions: list[float] = []
    velocities: list[float] = []
    bars, steps = grid.shape
    for bar in range(bars):
        for i, char in enumerate(_bar_steps(pattern, bar, steps)):
            if char == ".":
                continue
            hits = _ROLL_HITS.get(char, 1)
            for k in range(hits):
                when = grid[bar, i] + step[bar] * k / hits
                if when < ends[bar]:
                    positions.append(when * sr)
                    velocities.append(_DRUM_VELOCITY[char])
    return np.asarray(positions), np.asarray(velocities)


def _place(
    out: np.ndarray, hit: np.ndarray, positions: np.ndarray, gains: np.ndarray, stops: np.ndarray, fade_frames: int
) -> None:
    """Add ``hit`` into ``out`` at each position, scaled; a hit choked before its end fades out over ``fade_frames``."""
    frames, size = out.shape[1], hit.shape[1]
    fade = np.linspace(1.0, 0.0, max(2, min(size, fade_frames)), dtype=np.float32)
    for at, gain, stop in zip(positions, gains, stops):
        length = min(size, stop - at, frames - at)
        if length <= 0:
            continue
        part = np.float32(gain) * hit[:, :length]
        if stop - at < size:
            tail = min(length, fade.size)
            part[:, length - tail :] *= fade[fade.size - tail :]
        out[:, at : at + length] += part


# The bass line ----------------------------------------------------------------------------


def _bass_notes(
    bass: BassLine, grid: np.ndarray, ends: np.ndarray, roots: list[int | None], sr: int
) -> list[tuple[int, int, float, float]]:
    """``(start, end, frequency, velocity)`` of every note, in samples, on bars with a root."""
    notes: list[tuple[int, int, float, float]] = []
    bars, steps = grid.shape
    for bar in range(bars):
        root = roots[bar]
        if root is None:
            continue
        base = bass.low_midi + (root - bass.low_midi) % 12
        row = np.append(grid[bar], ends[bar])
        chars = _bar_steps(bass.pattern, bar, steps)
        for i, char in enumerate(chars):
            if char in "-.":
                continue
            j = i + 1
            while j < steps and chars[j] == "-":
                j += 1
            start, stop = int(round(row[i] * sr)), int(round(min(row[j], ends[bar]) * sr))
            if stop > start:
                midi = base + _BASS_INTERVAL[char.lower()]
                velocity = 1.0 if char.isupper() else _BASS_SOFT
                notes.append((start, stop, 440.0 * 2.0 ** ((midi - 69) / 12.0), velocity))
    return notes


def _phrases(bass: BassLine, notes: list[tuple[int, int, float, float]]) -> list[list[tuple[int, int, float, float]]]:
    """The notes grouped into phrases: a gliding voice's note that runs into the next at another
    pitch slides into it (one phrase, no release, no new attack); every other note is a phrase."""
    phrases: list[list[tuple[int, int, float, float]]] = []
    for note in notes:
        last = phrases[-1][-1] if phrases else None
        if bass.glide_s and last is not None and last[1] >= note[0] and last[2] != note[2]:
            phrases[-1].append(note)
        else:
            phrases.append([note])
    return phrases


def _phrase(
    bass: BassLine,
    notes: list[tuple[int, int, float, float]],
    sr: int,
    beats: Callable[[int, int], np.ndarray],
    beats_per_bar: int,
) -> np.ndarray:
    """One phrase of the bass line, from its first note's start to its last note's end [shape=(n,)].

    One phase-continuous oscillator; the amplitude is the notes' gate smoothed by a 3 ms causal
    moving average, so it ramps up from zero on the first note and is back at zero 3 ms before
    the end of the last.
    """
    first = notes[0][0]
    n = notes[-1][1] - first
    onsets = np.array([note[0] - first for note in notes])
    lengths = np.diff(np.append(onsets, n))
    freq = np.repeat([note[2] for note in notes], lengths)
    gate = np.repeat([note[3] for note in notes], lengths)
    gate[n - min(int(0.006 * sr), n // 3) :] = 0.0
    since_attack = np.arange(n, dtype=np.float64)
    since_note = since_attack - np.repeat(onsets, lengths)
    if len(notes) > 1:  # the slides: log-frequency through a one-pole low-pass
        pole = math.exp(-1.0 / (bass.glide_s * sr))
        log_f = np.log2(freq)
        freq = 2.0 ** signal.lfilter([1.0 - pole], [1.0, -pole], log_f, zi=[pole * log_f[0]])[0]
    if bass.voice == "808":
        freq = freq * (1.0 + 0.6 * np.exp(-since_attack / (0.012 * sr)))  # the punch
        shape = np.exp(-since_attack / (1.2 * sr))
    elif bass.voice == "saw":
        shape = 0.75 + 0.25 * np.exp(-since_note / (0.15 * sr))
    else:
        shape = 1.0
    half = max(1, int(0.0015 * sr))
    amp = uniform_filter1d(gate * shape, size=2 * half + 1, mode="constant", origin=half)
    increment = freq / sr
    phase = 0.5 + np.cumsum(increment)  # half a cycle in, where the saw and the sine both start at zero
    sine = np.sin(2.0 * np.pi * phase)
    if bass.voice == "808":
        return np.tanh(1.8 * amp * sine) / np.tanh(1.8)
    if bass.voice == "sub":
        return amp * (sine + 0.2 * np.sin(4.0 * np.pi * phase))
    if bass.voice == "reese":
        detune = 2.0 ** (0.12 / 12.0)
        saws = polyblep_saw(phase * detune, increment * detune) + polyblep_saw(phase / detune, increment / detune)
        return amp * (0.35 * _filter(saws, sr, "lowpass", 250.0 + 800.0 * bass.brightness) + 0.6 * sine)
    saw = polyblep_saw(phase, increment)
    if bass.voice == "saw":  # the filter opens at each note and closes again
        dark = _filter(saw, sr, "lowpass", 220.0)
        bright = _filter(saw, sr, "lowpass", 300.0 + 2500.0 * bass.brightness)
        opening = bass.brightness * np.exp(-since_note / (0.09 * sr))
        return amp * (0.7 * (dark + opening * (bright - dark)) + 0.5 * sine)
    # wobble: an LFO, synced to the beat and restarted at the note, sweeps the filter
    dark = _filter(saw, sr, "lowpass", 110.0)
    bright = _filter(saw, sr, "lowpass", 300.0 + 3000.0 * bass.brightness, order=4)
    beat = beats(first, first + n)
    beat_of_bar = np.floor(beat).astype(np.int64) % beats_per_bar
    rates = np.asarray(bass.wobble)[beat_of_bar % len(bass.wobble)]
    cycles = np.cumsum(rates * np.gradient(beat)) if n > 1 else np.zeros(n)
    sweep = 0.5 - 0.5 * np.cos(2.0 * np.pi * (cycles - cycles[0]))
    return amp * (0.8 * (dark + sweep * (bright - dark)) + 0.5 * sine)


# The pump ---------------------------------------------------------------------------------

_PUMP_DROP_S = 0.004  # the fall to full ducking, kept short but click-free
_PUMP_HOLD_S = 0.04  # fully ducked from the kick for this long
_PUMP_RELEASE = 0.6  # then back up over this fraction of a beat


def _pump(kicks: np.ndarray, depth: float, beat_s: float, frames: int, sr: int) -> np.ndarray:
    """The sidechain gain: a smooth dip to ``1 - depth`` at every kick."""
    pump = np.ones(frames, dtype=np.float32)
    if depth <= 0 or kicks.size == 0:
        return pump
    floor = max(1.0 - depth, 0.01)
    drop, hold = int(_PUMP_DROP_S * sr), int(_PUMP_HOLD_S * sr)
    release = max(int(_PUMP_RELEASE * beat_s * sr), 1)
    down = 0.5 + 0.5 * np.cos(np.pi * np.arange(drop) / drop)
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    curve = np.concatenate([down, np.zeros(max(hold - drop, 0)), up])
    dip = (floor + (1.0 - floor) * curve).astype(np.float32)
    for at in kicks:
        if 0 <= at < frames:
            end = min(frames, at + dip.size)
            np.minimum(pump[at:end], dip[: end - at], out=pump[at:end])
    return pump


# The render -------------------------------------------------------------------------------


def render_groove(
    style: GenreStyle,
    bar_starts: np.ndarray,
    bar_ends: np.ndarray,
    beats_per_bar: int,
    roots: list[int | None],
    sample_rate: int,
    frames: int,
    seed: int = 0,
) -> Groove:
    """Synthesise the genre's groove on the given bars (seconds, in the output's time).

    Each bar's steps (four per beat) are spread evenly over that bar, with the genre's swing,
    so the groove follows the song's downbeats; the bass plays each bar's root (silent on
    bars whose root is ``None``); the pump dips at every kick by the genre's sidechain depth.
    Drums and bass each peak at -6 dBFS; everything is silent before the first bar and after
    the last. The same seed gives the same samples; it sets the small timing and velocity
    humanisation and the noise of the hits.

    Raises:
        ParameterError: bars that are not increasing finite seconds, a ``roots`` list of the
            wrong length or with values outside 0..11, or a bad meter, rate or length.
    """
    starts, ends = _check_bars(bar_starts, bar_ends)
    if not isinstance(beats_per_bar, (int, np.integer)) or not 1 <= beats_per_bar <= 12:
        raise ParameterError(f"beats_per_bar={beats_per_bar!r} must be an integer from 1 to 12")
    if len(roots) != starts.size:
        raise ParameterError(f"roots has {len(roots)} entries; expected one per bar ({starts.size})")
    if any(root is not None and not (isinstance(root, (int, np.integer)) and 0 <= root <= 11) for root in roots):
        raise ParameterError("roots must be pitch classes 0..11 (0 = C) or None")
    if not isinstance(sample_rate, (int, np.integer)) or not 8000 <= sample_rate <= 384000:
        raise ParameterError(f"sample_rate={sample_rate!r} must be an integer between 8000 and 384000")
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ParameterError(f"frames={frames!r} must be a positive integer")
    sr, frames = int(sample_rate), int(frames)
    drums = np.zeros((2, frames), dtype=np.float32)
    bass = np.zeros((2, frames), dtype=np.float32)
    if starts.size == 0:
        return Groove(drums, bass, np.ones(frames, dtype=np.float32))

    rng = np.random.default_rng(seed)
    grid, step = _step_grid(starts, ends, 4 * int(beats_per_bar), style.swing)
    kicks = _render_drums(drums, style, grid, step, starts, ends, sr, rng)
    _render_bass(bass, style.bass, grid, starts, ends, int(beats_per_bar), roots, sr)
    for part in (drums, bass):
        _keep_inside(part, starts[0], ends[-1], sr)
        peak = max(float(part.max()), -float(part.min()))
        if peak > 0:
            part *= np.float32(PEAK / peak)
    beat_s = float(np.median(ends - starts)) / beats_per_bar
    return Groove(drums, bass, _pump(kicks, style.sidechain, beat_s, frames, sr))


def _render_drums(
    out: np.ndarray,
    style: GenreStyle,
    grid: np.ndarray,
    step: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add every lane's hits into ``out``, humanised (the kick's timing excepted); returns the kick positions."""
    frames = out.shape[1]
    humanise = style.kit.humanise_ms / 1000.0 * sr
    placed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lane, pattern in style.drums:
        positions, velocities = _drum_events(pattern, grid, step, ends, sr)
        if lane != "kick":
            bar_start = starts[np.searchsorted(starts * sr, positions, side="right") - 1] * sr
            positions = np.maximum(positions + rng.uniform(-humanise, humanise, positions.size), bar_start)
        spread = 0.03 if lane == "kick" else 0.08
        velocities = velocities * (1.0 + rng.uniform(-spread, spread, velocities.size))
        placed[lane] = (np.round(positions).astype(np.int64), velocities)
    # An open hat rings until the next hat of either kind.
    hats = np.sort(np.concatenate([np.zeros(0, np.int64)] + [placed[lane][0] for lane in _CHOKED if lane in placed]))
    choke_at = np.append(hats, frames)
    for lane, (positions, velocities) in placed.items():
        stops = np.full_like(positions, frames)
        if lane == "open":
            stops = choke_at[np.searchsorted(hats, positions, side="right")]
        _place(out, _hit(lane, style.kit, sr, rng), positions, velocities, stops, int(0.004 * sr))
    return placed["kick"][0] if "kick" in placed else np.zeros(0, np.int64)


def _render_bass(
    out: np.ndarray,
    bass: BassLine,
    grid: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    beats_per_bar: int,
    roots: list[int | None],
    sr: int,
) -> None:
    """Add the bass line into ``out``, phrase by phrase (so memory stays small on long songs)."""
    frames = out.shape[1]
    bar_lines = np.append(starts, ends[-1]) * sr

    def beat_position(lo: int, hi: int) -> np.ndarray:
        """Beats since the first bar line at each sample of ``[lo, hi)``."""
        return np.interp(np.arange(lo, hi), bar_lines, np.arange(starts.size + 1) * float(beats_per_bar))

    for phrase in _phrases(bass, _bass_notes(bass, grid, ends, roots, sr)):
        first = phrase[0][0]
        if first < frames:
            line = _phrase(bass, phrase, sr, beat_position, beats_per_bar)[: frames - first]
            out[:, first : first + line.size] += line.astype(np.float32)


def _keep_inside(part: np.ndarray, start_s: float, end_s: float, sr: int) -> None:
    """Silence ``part`` before ``start_s`` and after ``end_s``, with a 5 ms fade into the end."""
    frames = part.shape[1]
    end = min(int(round(end_s * sr)), frames)
    part[:, : int(round(start_s * sr))] = 0.0
    part[:, end:] = 0.0
    fade_from = max(0, end - int(0.005 * sr))
    part[:, fade_from:end] *= np.linspace(1.0, 0.0, end - fade_from, dtype=np.float32)


# Mix character ----------------------------------------------------------------------------


def _effect(kind: str, value: float, amount: float, sr: int) -> list:
    """The pedalboard plugins for one ``(effect, value at amount 1)`` of a character, at ``amount``."""
    import pedalboard as pb

    top = 0.45 * sr
    if kind == "highpass":
        return [pb.HighpassFilter(cutoff_frequency_hz=min(20.0 * (value / 20.0) ** amount, top))]
    if kind == "lowpass":
        return [pb.LowpassFilter(cutoff_frequency_hz=min(20000.0 * (value / 20000.0) ** amount, top))]
    if kind == "saturate":
        return [pb.Distortion(drive_db=value * amount), pb.Gain(gain_db=-value * amount)]
    if kind == "compress":
        return [pb.Compressor(threshold_db=-18.0, ratio=1.0 + (value - 1.0) * amount, attack_ms=10.0, release_ms=120.0)]
    if kind == "chorus":
        return [pb.Chorus(rate_hz=0.6, depth=0.25, centre_delay_ms=7.0, feedback=0.0, mix=value * amount)]
    if kind == "reverb":
        return [pb.Reverb(room_size=0.6, damping=0.5, wet_level=value * amount, dry_level=0.5, width=1.0)]
    if kind == "shelf":
        return [pb.HighShelfFilter(cutoff_frequency_hz=min(6000.0, top), gain_db=value * amount)]
    return [pb.Bitcrush(bit_depth=24.0 - (24.0 - value) * amount)]  # crush


def mix_character(audio: Audio, style: GenreStyle, amount: float) -> Audio:
    """The genre's mix character (EQ, saturation, space) scaled by ``amount`` in 0..1.

    Amount 0 returns ``audio`` itself; at 1 each effect reaches the value its genre gives it
    (filters sweep in geometrically from the edges of the audible range, drive, ratio and
    wet levels linearly). Same channels and length as the input.

    Raises:
        ParameterError: ``amount`` is not a number in 0..1.
    """
    if not isinstance(amount, (int, float, np.floating)) or not 0.0 <= float(amount) <= 1.0:
        raise ParameterError(f"amount={amount!r} must be a number from 0 to 1")
    if amount == 0 or not style.character:
        return audio
    import pedalboard as pb

    plugins = [p for kind, value in style.character for p in _effect(kind, value, float(amount), audio.sample_rate)]
    board = pb.Pedalboard(plugins)
    out = board(np.ascontiguousarray(audio.samples), audio.sample_rate, reset=True)
    out = np.nan_to_num(np.asarray(out, dtype=np.float32)[:, : audio.frames], nan=0.0, posinf=0.0, neginf=0.0)
    if out.shape[1] < audio.frames:
        out = np.pad(out, ((0, 0), (0, audio.frames - out.shape[1])))
    return Audio.trusted(np.ascontiguousarray(out), audio.sample_rate)


# The genres -------------------------------------------------------------------------------

_STYLES = (
    GenreStyle(
        id="house", title="house", bpm=124.0, bpm_range=(118.0, 130.0), half_time=False, swing=0.08,
        sidechain=0.6, drum_duck=0.7,
        prompt="classic deep house, four-on-the-floor kick, offbeat open hats, claps on two and four, warm bassline",
        drums=(
            ("kick",   "X... X... X... X..."),
            ("clap",   ".... X... .... X..."),
            ("hat",    "xo.. xo.. xo.. xo.."),
            ("open",   "..X. ..X. ..X. ..X."),
            ("shaker", "..o. ..o. ..o. ..oo"),
        ),
        kit=Kit(kick_hz=(140.0, 48.0), kick_decay_s=0.17),
        bass=BassLine("saw", "..R- ..O- ..R- ..O-", low_midi=33, brightness=0.3),
        character=(("highpass", 80.0), ("compress", 2.0)),
    ),
    GenreStyle(
        id="techno", title="techno", bpm=130.0, bpm_range=(124.0, 140.0), half_time=False, swing=0.0,
        sidechain=0.7, drum_duck=0.8,
        prompt="driving warehouse techno, pounding rumble kick, rolling bassline, offbeat hats, hypnotic and dark",
        drums=(
            ("kick", "X... X... X... X..."),
            ("clap", ".... x... .... x..."),
            ("hat",  "oo.. oo.. oo.. oo.."),
            ("open", "..X. ..X. ..X. ..X."),
            ("rim",  "...o .... .o.. ..o."),
        ),
        kit=Kit(kick_hz=(160.0, 45.0), kick_decay_s=0.15, kick_drive=2.5, rumble=0.6, hat_decay_s=0.025),
        bass=BassLine("saw", ".RRr .RRr .RRr .RRr", low_midi=31, brightness=0.2),
        character=(("highpass", 110.0), ("saturate", 4.0)),
    ),
    GenreStyle(
        id="trap", title="trap", bpm=140.0, bpm_range=(130.0, 160.0), half_time=True, swing=0.0,
        sidechain=0.25, drum_duck=0.8,
        prompt="hard trap beat, booming 808 bass with glides, crisp hi-hat rolls, snappy clap on three, dark",
        drums=(
            ("kick",  "X... ..X. .... .... | X... ..X. ..X. ...."),
            ("clap",  ".... .... X... .... | .... .... X... ...."),
            ("snare", ".... .... x... .... | .... .... x... ...."),
            ("hat",   "x.x. x.x. x.x. xrx. | x.x. x.t. x.x. xrxr"),
            ("open",  ".... .... .... .... | .... .... .... ..o."),
        ),
        kit=Kit(kick_hz=(180.0, 55.0), kick_decay_s=0.12, kick_click=0.6, hat_decay_s=0.025, humanise_ms=0.5),
        bass=BassLine("808", "R--- ..R- ---- ---- | R--- ..R- --O- ----", low_midi=29, glide_s=0.035),
        character=(("highpass", 60.0), ("shelf", 2.0)),
    ),
    GenreStyle(
        id="drum_and_bass", title="drum and bass", bpm=174.0, bpm_range=(160.0, 180.0), half_time=False, swing=0.0,
        sidechain=0.3, drum_duck=0.8,
        prompt="energetic liquid drum and bass, fast two-step breakbeat, deep reese bass, shuffling hats",
        drums=(
            ("kick",   "X... .... ..X. .... | X... .... ..X. .X.."),
            ("snare",  ".... X... .o.. X..o | .... X..o .... X..."),
            ("hat",    "x.x. x.x. x.x. x.x."),
            ("shaker", "oooo oooo oooo oooo"),
        ),
        kit=Kit(kick_hz=(170.0, 55.0), kick_decay_s=0.1, snare_hz=210.0, snare_decay_s=0.09, hat_decay_s=0.03),
        bass=BassLine("reese", "R--- ---- ..R- ---- | R--- ---- ..R- -O--", low_midi=31, brightness=0.4),
        character=(("highpass", 90.0), ("compress", 3.0), ("shelf", 2.0)),
    ),
    GenreStyle(
        id="lofi_hiphop", title="lo-fi hip hop", bpm=80.0, bpm_range=(70.0, 95.0), half_time=False, swing=0.3,
        sidechain=0.15, drum_duck=0.6,
        prompt="mellow lo-fi hip hop, lazy swung dusty drums, soft kick and snare, warm sub bass, vinyl crackle",
        drums=(
            ("kick",  "X... .... ..X. .... | X... ...x ..X. ...."),
            ("snare", ".... x... .... x..."),
            ("hat",   "x.o. x.oo x.o. x.o."),
            ("rim",   ".... .... .... ..o. | .... .... .... ...."),
        ),
        kit=Kit(kick_hz=(110.0, 48.0), kick_decay_s=0.14, kick_click=0.1, kick_drive=1.0, snare_decay_s=0.13,
                hat_decay_s=0.04, tone_hz=4500.0, humanise_ms=7.0),
        bass=BassLine("sub", "R--- ---- ..R- --..", low_midi=33),
        character=(("lowpass", 3500.0), ("saturate", 8.0), ("crush", 12.0)),
    ),
    GenreStyle(
        id="reggaeton", title="reggaeton", bpm=95.0, bpm_range=(88.0, 100.0), half_time=False, swing=0.0,
        sidechain=0.3, drum_duck=0.8,
        prompt="modern reggaeton, dembow rhythm, punchy kick, snappy snare, 808 bass, latin percussion",
        drums=(
            ("kick",  "X... X... X... X..."),
            ("snare", "...X ..X. ...X ..X."),
            ("hat",   "x.x. x.x. x.x. x.x."),
            ("perc",  ".... ..o. .... o.o."),
        ),
        kit=Kit(kick_hz=(160.0, 52.0), kick_decay_s=0.13, snare_hz=220.0, snare_decay_s=0.08),
        bass=BassLine("808", "R--. ..R- R--. ..R-", low_midi=29),
        character=(("highpass", 50.0), ("compress", 2.5)),
    ),
    GenreStyle(
        id="disco", title="disco", bpm=118.0, bpm_range=(110.0, 128.0), half_time=False, swing=0.05,
        sidechain=0.15, drum_duck=0.7,
        prompt="1970s disco, four-on-the-floor, open hi-hats on the offbeat, octave-bouncing bass, lush and funky",
        drums=(
            ("kick",  "X... X... X... X..."),
            ("snare", ".... X... .... X..."),
            ("hat",   "xo.o xo.o xo.o xo.o"),
            ("open",  "..X. ..X. ..X. ..X."),
        ),
        kit=Kit(kick_hz=(120.0, 52.0), kick_decay_s=0.14, kick_click=0.25, snare_hz=180.0, snare_decay_s=0.14),
        bass=BassLine("saw", "R.O. R.O. R.O. R.O.", low_midi=33, brightness=0.55),
        character=(("compress", 2.0), ("shelf", 2.0), ("reverb", 0.12)),
    ),
    GenreStyle(
        id="boom_bap", title="boom bap", bpm=90.0, bpm_range=(84.0, 100.0), half_time=False, swing=0.25,
        sidechain=0.0, drum_duck=0.8,
        prompt="90s boom bap hip hop, hard swung drums, dusty kick and cracking snare, round bass",
        drums=(
            ("kick",  "X... .... ..X. ..x. | X... ...x ..X. ...."),
            ("snare", ".... X... .... X..."),
            ("hat",   "x.o. x.o. x.o. x.o."),
        ),
        kit=Kit(kick_hz=(130.0, 50.0), kick_decay_s=0.15, kick_drive=2.0, snare_hz=200.0, snare_decay_s=0.13,
                tone_hz=9000.0, humanise_ms=4.0),
        bass=BassLine("sub", "R--- --.. ..R- -...", low_midi=31),
        character=(("highpass", 45.0), ("lowpass", 7000.0), ("saturate", 4.0)),
    ),
    GenreStyle(
        id="afrobeats", title="afrobeats", bpm=105.0, bpm_range=(95.0, 115.0), half_time=False, swing=0.15,
        sidechain=0.2, drum_duck=0.7,
        prompt="afrobeats, bouncy syncopated kick, rim clave, shakers and congas, warm bass, sunny and danceable",
        drums=(
            ("kick",   "X... ..X. X... ..x."),
            ("rim",    "X..X ..X. ..X. X..."),
            ("clap",   ".... .... .... X..."),
            ("shaker", "xoxo xoxo xoxo xoxo"),
            ("perc",   "...o ..x. .o.. x..."),
            ("tom",    ".... .... ..o. ...o"),
        ),
        kit=Kit(kick_hz=(140.0, 52.0), kick_decay_s=0.14, perc_hz=320.0, humanise_ms=3.0),
        bass=BassLine("saw", "R--. ..R. ..O- .R..", low_midi=31, brightness=0.35),
        character=(("highpass", 40.0), ("shelf", 1.5), ("reverb", 0.1)),
    ),
    GenreStyle(
        id="synthwave", title="synthwave", bpm=100.0, bpm_range=(80.0, 118.0), half_time=False, swing=0.0,
        sidechain=0.3, drum_duck=0.8,
        prompt="1980s synthwave, gated reverb snare, driving eighth-note synth bass, retro analog synths, neon",
        drums=(
            ("kick",  "X... .... X... ...."),
            ("snare", ".... X... .... X..."),
            ("hat",   "x.x. x.x. x.x. x.x."),
        ),
        kit=Kit(kick_hz=(130.0, 50.0), kick_decay_s=0.18, snare_hz=170.0, snare_decay_s=0.12, snare_gate_s=0.22),
        bass=BassLine("saw", "R.R. R.R. R.R. O.O.", low_midi=33, brightness=0.6),
        character=(("chorus", 0.45), ("reverb", 0.3)),
    ),
    GenreStyle(
        id="dubstep", title="dubstep", bpm=140.0, bpm_range=(136.0, 150.0), half_time=True, swing=0.0,
        sidechain=0.6, drum_duck=0.8,
        prompt="heavy dubstep, half-time drums, huge snare on three, wobbling LFO bass, sub drops",
        drums=(
            ("kick",  "X... .... .... .... | X... .... .... ..X."),
            ("snare", ".... .... X... ...."),
            ("clap",  ".... .... x... ...."),
            ("hat",   "..x. ..x. ..x. ..x."),
        ),
        kit=Kit(kick_hz=(170.0, 50.0), kick_decay_s=0.15, kick_drive=2.2, snare_hz=200.0, snare_decay_s=0.15),
        bass=BassLine("wobble", "R--- ---- R--- --O-", low_midi=28, brightness=0.7, wobble=(2.0, 2.0, 4.0, 3.0)),
        character=(("highpass", 120.0), ("saturate", 3.0)),
    ),
    GenreStyle(
        id="reggae", title="reggae", bpm=80.0, bpm_range=(70.0, 90.0), half_time=True, swing=0.2,
        sidechain=0.0, drum_duck=0.6,
        prompt="roots reggae one drop, kick and rim on beat three, offbeat skank, deep round bass",
        drums=(
            ("kick",  ".... .... X... ...."),
            ("rim",   ".... .... X... ...."),
            ("hat",   "x.o. x.o. x.o. x.oo"),
            ("open",  ".... .... .... ..o."),
        ),
        kit=Kit(kick_hz=(120.0, 55.0), kick_decay_s=0.15, kick_click=0.2, humanise_ms=4.0),
        bass=BassLine("sub", "..R- ..R- ..O- ..R-", low_midi=33),
        character=(("lowpass", 9000.0), ("reverb", 0.12)),
    ),
    GenreStyle(
        id="funk", title="funk", bpm=108.0, bpm_range=(95.0, 120.0), half_time=False, swing=0.12,
        sidechain=0.0, drum_duck=0.7,
        prompt="tight 70s funk, syncopated kick, ghost-note snare, sixteenth hats, slap bass, groovy",
        drums=(
            ("kick",  "X..X ..X. ..X. ...."),
            ("snare", ".... X..o .o.. X..o"),
            ("hat",   "xoxo xoxo xoxo xoxo"),
            ("open",  ".... .... .... ..x."),
        ),
        kit=Kit(kick_hz=(120.0, 55.0), kick_decay_s=0.12, kick_click=0.3, snare_hz=210.0, snare_decay_s=0.1,
                humanise_ms=3.0),
        bass=BassLine("saw", "R..R ..O. R.F. .O.r", low_midi=28, brightness=0.75),
        character=(("compress", 3.0), ("shelf", 1.5)),
    ),
    GenreStyle(
        id="uk_garage", title="UK garage", bpm=132.0, bpm_range=(128.0, 138.0), half_time=False, swing=0.3,
        sidechain=0.35, drum_duck=0.7,
        prompt="UK garage two-step, shuffled swung hats, skippy kick, snare on two and four, sub bass",
        drums=(
            ("kick",   "X... .... ..X. ...x | X... .... ...X ...."),
            ("snare",  ".... X... .... X..."),
            ("hat",    "..x. .ox. ..x. .ox."),
            ("shaker", "oooo oooo oooo oooo"),
        ),
        kit=Kit(kick_hz=(150.0, 52.0), kick_decay_s=0.12, snare_hz=220.0, snare_decay_s=0.08, humanise_ms=2.5),
        bass=BassLine("sub", "R-.. ..R. ..R- .O..", low_midi=31),
        character=(("highpass", 80.0), ("compress", 2.0)),
    ),
)

GENRES: dict[str, GenreStyle] = {style.id: style for style in _STYLES}

GENRE_ALIASES: dict[str, str] = {
    "deep house": "house", "tech house": "house", "garage house": "house", "edm": "house", "dance": "house",
    "minimal": "techno", "minimal techno": "techno", "warehouse": "techno",
    "drill": "trap", "latin trap": "trap",
    "dnb": "drum_and_bass", "d&b": "drum_and_bass", "drum and bass": "drum_and_bass", "drum n bass": "drum_and_bass",
    "jungle": "drum_and_bass", "liquid": "drum_and_bass",
    "lofi": "lofi_hiphop", "lo-fi hip hop": "lofi_hiphop", "chillhop": "lofi_hiphop",
    "dembow": "reggaeton", "dancehall": "reggaeton", "perreo": "reggaeton",
    "nu disco": "disco",
    "hip hop": "boom_bap", "old school hip hop": "boom_bap",
    "afrobeat": "afrobeats", "afro": "afrobeats", "afropop": "afrobeats",
    "retrowave": "synthwave", "outrun": "synthwave", "80s": "synthwave", "synthpop": "synthwave",
    "brostep": "dubstep", "riddim": "dubstep",
    "roots reggae": "reggae", "one drop": "reggae", "dub": "reggae",
    "funky": "funk", "p funk": "funk",
    "garage": "uk_garage", "ukg": "uk_garage", "2 step": "uk_garage", "two step": "uk_garage",
}
"""Other names listeners use, matched like ids: case, spaces, hyphens and "&" / "and" do not matter."""

_FILLER_WORDS = {"music", "style", "genre", "groove", "beat", "beats", "vibe", "vibes", "version", "remix"}


def _key(name: str) -> str:
    """A name squashed for lookup: lower case without accents, '&' as 'and', letters and digits only."""
    plain = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]", "", plain.replace("&", "and"))


_LOOKUP: dict[str, str] = {_key(alias): genre for alias, genre in GENRE_ALIASES.items()}
_LOOKUP.update({_key(style.id): style.id for style in _STYLES})
_LOOKUP.update({_key(style.title): style.id for style in _STYLES})


def genre_style(name: str) -> GenreStyle:
    """The genre named by an id, a title or an alias.

    Case, accents, spaces, hyphens and a trailing filler word ("house music", "trap beat") do not matter.

    Raises:
        ParameterError: the name is no known genre; the message lists the genre ids.
    """
    if isinstance(name, str):
        words = re.split(r"[\s_\-/]+", name.strip().lower())
        while words and words[-1] in _FILLER_WORDS and _key(" ".join(words)) not in _LOOKUP:
            words = words[:-1]
        genre = _LOOKUP.get(_key(" ".join(words)))
        if genre is not None:
            return GENRES[genre]
    raise ParameterError(
        f"genre={name!r} is not a known genre; expected one of: {', '.join(GENRES)} (or an alias such as 'dnb')"
    )
