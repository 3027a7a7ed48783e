"""A synthesised demo song with its true stems, so the assistant can be tried without a file.

The song ("First Light") is built from scratch, deterministically, in a few seconds:

- form: intro 4 bars, verse 8, chorus 8, verse 8, chorus 8, bridge 4, chorus 8, outro 4
  (52 bars of 4/4 at 128 bpm, 97.5 s), in A minor;
- ``vocals``: a formant-synthesised lead (band-limited sawtooth source with scoop, vibrato,
  jitter and breath, through five vowel resonators, consonant noise at syllable onsets);
  silent in the intro and outro, one melody in the verses, a higher one in the bridge and
  the same, highest melody in every chorus;
- ``drums``: pitch-swept sine kick, noise-and-tone snare, filtered-noise hats and crash,
  a pattern per section and fills into the choruses;
- ``bass``: chord roots in the rhythm of the kick, sine plus low-passed sawtooth;
- ``other``: detuned-sawtooth pads with a slow attack (a progression per section) and a
  plucked arpeggio in the choruses and bridge.

Every stem is quantised to 16-bit and the mix is the exact integer sum of the stems, so the
in-memory values and the WAV files agree and ``sum(stems) == mix`` holds to the last bit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from .audio import STEM_NAMES, Audio
from .effects import polyblep_saw
from .errors import ParameterError, RemixError
from .files import atomic_path, atomic_write_bytes

__all__ = ["DemoSection", "DemoSong", "make_demo", "write_demo", "demo_song_path"]

TITLE = "First Light"
ARTIST = "Remix Assistant demo band"
TEMPO_BPM = 128.0
BEATS_PER_BAR = 4
KEY = "A"
MODE = "minor"
SEED = 20_240_611
MIX_PEAK_DB = -1.5
INT16_SCALE = 32768

# (label, bars) in song order.
FORM: tuple[tuple[str, int], ...] = (
    ("intro", 4),
    ("verse", 8),
    ("chorus", 8),
    ("verse", 8),
    ("chorus", 8),
    ("bridge", 4),
    ("chorus", 8),
    ("outro", 4),
)

# One chord per bar, per section label (A natural minor with a major V for the pull home).
PROGRESSIONS: dict[str, tuple[str, ...]] = {
    "intro": ("Am", "F", "Am", "E"),
    "verse": ("Am", "Am", "F", "G", "Am", "Am", "Dm", "E"),
    "chorus": ("F", "G", "Am", "C", "F", "G", "E", "Am"),
    "bridge": ("Dm", "F", "G", "E"),
    "outro": ("Am", "F", "Am", "Am"),
}

# chord -> (bass MIDI note, pad voicing as MIDI notes); voicings move by small steps.
CHORDS: dict[str, tuple[int, tuple[int, ...]]] = {
    "Am": (45, (57, 60, 64)),
    "F": (41, (57, 60, 65)),
    "C": (36, (55, 60, 64)),
    "G": (43, (55, 59, 62)),
    "Dm": (38, (57, 62, 65)),
    "E": (40, (56, 59, 64)),
}

# Melodies as (onset_beats, duration_beats, MIDI note, syllable) within the section.
# A syllable is an optional consonant (s, t, k, l, n, m, h) then one or two vowels (a e i o u).
VERSE_MELODY: tuple[tuple[float, float, int, str], ...] = (
    (0.5, 0.5, 64, "la"), (1.0, 1.0, 64, "to"), (2.0, 0.5, 65, "ne"), (2.5, 1.5, 64, "ha"),
    (4.0, 1.0, 62, "li"), (5.0, 1.0, 60, "mo"), (6.0, 1.5, 62, "sa"),
    (8.5, 0.5, 60, "te"), (9.0, 1.0, 65, "la"), (10.0, 1.0, 64, "no"), (11.0, 1.0, 62, "ke"),
    (12.0, 2.0, 62, "hai"), (14.0, 1.5, 59, "mu"),
    (16.5, 0.5, 64, "la"), (17.0, 1.0, 69, "sa"), (18.0, 1.0, 67, "te"), (19.0, 1.0, 64, "lo"),
    (20.0, 2.0, 64, "na"), (22.0, 1.0, 62, "mi"), (23.0, 1.0, 60, "ho"),
    (24.0, 1.0, 62, "ke"), (25.0, 1.0, 65, "la"), (26.0, 1.5, 69, "sai"),
    (28.0, 1.0, 68, "no"), (29.0, 2.5, 64, "ao"),
)
CHORUS_MELODY: tuple[tuple[float, float, int, str], ...] = (
    (0.0, 1.5, 72, "ta"), (1.5, 0.5, 72, "le"), (2.0, 1.0, 69, "ka"), (3.0, 1.0, 72, "lo"),
    (4.0, 2.0, 74, "ai"), (6.0, 1.0, 72, "ne"), (7.0, 1.0, 71, "li"),
    (8.0, 3.0, 72, "sao"), (11.0, 1.0, 69, "mo"),
    (12.0, 1.0, 67, "te"), (13.0, 1.0, 69, "la"), (14.0, 1.5, 72, "ho"),
    (16.0, 1.5, 72, "ta"), (17.5, 0.5, 72, "le"), (18.0, 1.0, 69, "ka"), (19.0, 1.0, 72, "lo"),
    (20.0, 1.5, 76, "ai"), (21.5, 0.5, 74, "ne"), (22.0, 2.0, 74, "o"),
    (24.0, 1.0, 71, "li"), (25.0, 1.0, 68, "se"), (26.0, 2.0, 71, "na"),
    (28.0, 3.0, 69, "hao"),
)
BRIDGE_MELODY: tuple[tuple[float, float, int, str], ...] = (
    (0.0, 2.0, 65, "mo"), (2.0, 2.0, 69, "u"),
    (4.0, 2.0, 72, "la"), (6.0, 2.0, 69, "o"),
    (8.0, 1.0, 67, "ne"), (9.0, 1.0, 71, "a"), (10.0, 2.0, 74, "sa"),
    (12.0, 3.0, 71, "ao"),
)
MELODIES = {"verse": VERSE_MELODY, "chorus": CHORUS_MELODY, "bridge": BRIDGE_MELODY}

# Alto vowel formants: centre frequencies (Hz), bandwidths (Hz), levels (dB); the second
# formant of e and i is raised a little so those vowels stay bright at singing pitch.
VOWELS: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "a": ((800, 1150, 2800, 3500, 4950), (80, 90, 120, 130, 140), (0, -4, -20, -36, -60)),
    "e": ((400, 1600, 2700, 3300, 4950), (60, 80, 120, 150, 200), (0, -15, -24, -35, -60)),
    "i": ((350, 1900, 2700, 3700, 4950), (50, 100, 120, 150, 200), (0, -12, -22, -36, -60)),
    "o": ((450, 800, 2830, 3500, 4950), (70, 80, 100, 130, 135), (0, -9, -16, -28, -55)),
    "u": ((325, 700, 2530, 3500, 4950), (50, 60, 170, 180, 200), (0, -12, -30, -40, -64)),
}

# Per-section levels (dB) for each part; the chorus is the loudest, intro and outro quietest.
SECTION_GAIN_DB: dict[str, dict[str, float]] = {
    "intro": {"vocals": -99.0, "drums": -9.0, "bass": -8.0, "pad": -3.0, "arp": -99.0},
    "verse": {"vocals": -1.0, "drums": -3.0, "bass": -2.0, "pad": -4.0, "arp": -99.0},
    "chorus": {"vocals": 1.5, "drums": 0.0, "bass": 0.0, "pad": -1.0, "arp": -4.0},
    "bridge": {"vocals": 0.0, "drums": -5.0, "bass": -3.0, "pad": -2.0, "arp": -7.0},
    "outro": {"vocals": -99.0, "drums": -10.0, "bass": -8.0, "pad": -4.0, "arp": -99.0},
}
PAD_CUTOFF_HZ = {"intro": 700.0, "verse": 1300.0, "chorus": 2600.0, "bridge": 1800.0, "outro": 700.0}


@dataclass(frozen=True)
class DemoSection:
    """One section of the demo song.

    Args:
        label: ``intro``, ``verse``, ``chorus``, ``bridge`` or ``outro``.
        ordinal: 1-based count of that label in song order (verse 2, chorus 3).
        start: start time in seconds.
        end: end time in seconds.
    """

    label: str
    ordinal: int
    start: float
    end: float


@dataclass(frozen=True)
class DemoSong:
    """The demo song, its true stems and the facts it was built from.

    Args:
        mix: the mixture, 16-bit-exact float32 [shape=(2, frames)]; equals the sum of stems.
        stems: ``vocals``, ``drums``, ``bass``, ``other`` -> Audio of the mix's shape.
        tempo_bpm: tempo in beats per minute (constant).
        beats_per_bar: 4.
        key: tonic pitch class name.
        mode: ``major`` or ``minor``.
        sections: contiguous sections covering the whole song, in order.
        title: credit for the song.
        artist: credit for the performers.
    """

    mix: Audio
    stems: dict[str, Audio]
    tempo_bpm: float
    beats_per_bar: int
    key: str
    mode: str
    sections: tuple[DemoSection, ...]
    title: str
    artist: str

    @property
    def duration_s(self) -> float:
        return self.mix.duration_s

    @property
    def beats(self) -> list[float]:
        """Every beat time in seconds, from 0 to the last beat before the end."""
        beat_s = 60.0 / self.tempo_bpm
        count = int(round(self.sections[-1].end / beat_s))
        return [i * beat_s for i in range(count)]

    @property
    def downbeats(self) -> list[float]:
        """The start time in seconds of every bar."""
        return self.beats[:: self.beats_per_bar]


# --------------------------------------------------------------------------- building blocks


def _midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _db(gain_db: float) -> float:
    return 0.0 if gain_db <= -90.0 else 10.0 ** (gain_db / 20.0)


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan, -1 (left) to 1 (right); the centre is -3 dB per side."""
    theta = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)])


def _add(buffer: np.ndarray, start: int, part: np.ndarray) -> None:
    """Add ``part`` [shape=(channels, n)] into ``buffer`` from frame ``start``, cropping at the end."""
    stop = min(buffer.shape[-1], start + part.shape[-1])
    if stop > start:
        buffer[..., start:stop] += part[..., : stop - start]


def _saw(freq_hz: np.ndarray, sample_rate: int, phase: float = 0.0) -> np.ndarray:
    """A band-limited (polyBLEP) sawtooth in [-1, 1] following ``freq_hz`` [shape=(n,)]."""
    step = freq_hz / sample_rate
    return polyblep_saw(phase + np.cumsum(step) - step, step)


def _envelope(frames: int, sample_rate: int, attack_s: float, hold_frames: int, release_s: float) -> np.ndarray:
    """Raised-cosine attack, sustain at 1 until ``hold_frames``, raised-cosine release."""
    env = np.ones(frames)
    attack = min(frames, max(1, int(attack_s * sample_rate)))
    env[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, attack))
    release = max(1, int(release_s * sample_rate))
    hold = min(hold_frames, frames)
    tail = env[hold : hold + release]
    tail *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, release))[: tail.size]
    env[hold + release :] = 0.0
    return env


def _smooth_noise(rng: np.random.Generator, frames: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """Unit-variance noise band-limited to about ``rate_hz`` (linear interpolation of knots)."""
    step = max(1, int(sample_rate / rate_hz))
    knots = rng.standard_normal(frames // step + 2)
    return np.interp(np.arange(frames) / step, np.arange(knots.size), knots)


class _Timeline:
    """Where bars and beats fall, in frames."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.beat_s = 60.0 / TEMPO_BPM
        self.bar_s = self.beat_s * BEATS_PER_BAR
        self.total_bars = sum(bars for _, bars in FORM)
        self.frames = int(round(self.total_bars * self.bar_s * sample_rate))

    def frame(self, bar: float, beat: float = 0.0) -> int:
        return int(round((bar * BEATS_PER_BAR + beat) * self.beat_s * self.sample_rate))

    def sections(self) -> list[tuple[str, int, int, int]]:
        """(label, ordinal, first bar, bar count) in song order."""
        counts: dict[str, int] = {}
        out, bar = [], 0
        for label, bars in FORM:
            counts[label] = counts.get(label, 0) + 1
            out.append((label, counts[label], bar, bars))
            bar += bars
        return out


# --------------------------------------------------------------------------- drums


def _drum_kit(rng: np.random.Generator, sample_rate: int) -> dict[str, np.ndarray]:
    """One-shot drum sounds, each [shape=(2, n)] already panned."""
    sr = sample_rate

    def t_axis(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    def filtered(noise: np.ndarray, kind: str, cutoff_hz) -> np.ndarray:
        sos = signal.butter(2, cutoff_hz, btype=kind, fs=sr, output="sos")
        return signal.sosfilt(sos, noise)

    t = t_axis(0.5)
    sweep_hz = 48.0 + 110.0 * np.exp(-t / 0.035)
    kick = np.sin(2 * np.pi * np.cumsum(sweep_hz) / sr) * np.exp(-t / 0.28)
    kick += 0.3 * filtered(rng.standard_normal(t.size), "lowpass", 3000.0) * np.exp(-t / 0.004)
    kick = np.tanh(1.6 * kick) / np.tanh(1.6)

    t = t_axis(0.35)
    body = (np.sin(2 * np.pi * 185.0 * t) + 0.5 * np.sin(2 * np.pi * 330.0 * t)) * np.exp(-t / 0.06)
    rattle = filtered(rng.standard_normal(t.size), "bandpass", (1200.0, 9000.0)) * np.exp(-t / 0.11)
    snare = 0.55 * body + 1.1 * rattle
    snare_wide = np.stack([snare, snare]) + 0.25 * np.stack(
        [filtered(rng.standard_normal(t.size), "bandpass", (2000.0, 8000.0)) * np.exp(-t / 0.15) for _ in range(2)]
    )

    t = t_axis(0.25)
    clap_env = np.zeros(t.size)
    for offset_s in (0.0, 0.011, 0.022):
        start = int(offset_s * sr)
        clap_env[start:] += np.exp(-(t[: t.size - start]) / (0.006 if offset_s < 0.02 else 0.08))
    clap = filtered(rng.standard_normal(t.size), "bandpass", (900.0, 5000.0)) * clap_env

    t = t_axis(0.08)
    hat = filtered(rng.standard_normal(t.size), "highpass", 7000.0) * np.exp(-t / 0.018)
    t = t_axis(0.45)
    open_hat = filtered(rng.standard_normal(t.size), "highpass", 6500.0) * np.exp(-t / 0.12)

    t = t_axis(2.2)
    crash = np.stack(
        [filtered(rng.standard_normal(t.size), "bandpass", (3500.0, 14000.0)) * np.exp(-t / 0.6) for _ in range(2)]
    )

    t = t_axis(0.4)
    toms = {}
    for name, pitch_hz in (("tom_high", 190.0), ("tom_mid", 145.0), ("tom_low", 105.0)):
        sweep = pitch_hz * (1.0 + 0.35 * np.exp(-t / 0.03))
        toms[name] = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / 0.16)

    return {
        "kick": _pan(kick, 0.0),
        "snare": snare_wide * 0.7071,
        "clap": _pan(0.8 * clap, -0.1),
        "hat": _pan(0.22 * hat, 0.35),
        "open_hat": _pan(0.14 * open_hat, 0.3),
        "crash": 0.18 * crash,
        "tom_high": _pan(0.8 * toms["tom_high"], 0.3),
        "tom_mid": _pan(0.8 * toms["tom_mid"], 0.0),
        "tom_low": _pan(0.8 * toms["tom_low"], -0.3),
    }


# label -> drum -> onsets in beats within a bar (16ths allowed).
DRUM_PATTERNS: dict[str, dict[str, tuple[float, ...]]] = {
    "intro": {"kick": (0.0, 2.0), "hat": (0.0, 1.0, 2.0, 3.0)},
    "verse": {
        "kick": (0.0, 1.5, 2.0),
        "snare": (1.0, 3.0),
        "hat": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5),
    },
    "chorus": {
        "kick": (0.0, 1.0, 2.0, 3.0),
        "snare": (1.0, 3.0),
        "clap": (1.0, 3.0),
        "hat": (0.0, 0.25, 1.0, 1.25, 2.0, 2.25, 3.0, 3.25),
        "open_hat": (0.5, 1.5, 2.5, 3.5),
    },
    "bridge": {
        "kick": (0.0, 2.5),
        "snare": (2.0,),
        "hat": (0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 2.75, 3.0, 3.5),
        "tom_low": (3.5,),
    },
    "outro": {"kick": (0.0, 2.0), "hat": (0.0, 1.0, 2.0, 3.0)},
}


def _render_drums(timeline: _Timeline, rng: np.random.Generator) -> np.ndarray:
    kit = _drum_kit(rng, timeline.sample_rate)
    out = np.zeros((2, timeline.frames))
    sections = timeline.sections()
    for index, (label, _, first_bar, bars) in enumerate(sections):
        gain = _db(SECTION_GAIN_DB[label]["drums"])
        next_label = sections[index + 1][0] if index + 1 < len(sections) else None
        for bar in range(first_bar, first_bar + bars):
            hits: list[tuple[str, float, float]] = []
            for drum, onsets in DRUM_PATTERNS[label].items():
                hits += [(drum, beat, 1.0) for beat in onsets]
            last_bar = bar == first_bar + bars - 1
            if last_bar and next_label == "chorus":
                # A fill: snare sixteenths rising over beats 3 and 4, the crash lands on the chorus.
                hits = [h for h in hits if h[1] < 2.0 or h[0] == "hat"]
                hits += [("snare", 2.0 + i * 0.25, 0.45 + 0.07 * i) for i in range(8)]
            elif last_bar and next_label == "bridge":
                hits = [h for h in hits if h[1] < 2.0]
                hits += [("tom_high", 2.0, 1.0), ("tom_high", 2.5, 0.9), ("tom_mid", 3.0, 1.0), ("tom_low", 3.5, 1.0)]
            elif last_bar and label == "intro":
                hits += [("snare", 3.5, 0.6)]
            if bar == first_bar and label in ("chorus", "outro"):
                hits.append(("crash", 0.0, 1.0 if label == "chorus" else 0.6))
            for drum, beat, velocity in hits:
                velocity *= rng.uniform(0.85, 1.0) if drum in ("hat", "open_hat") else rng.uniform(0.95, 1.0)
                if drum == "hat" and beat % 1.0 != 0.0:
                    velocity *= 0.7
                _add(out, timeline.frame(bar, beat), kit[drum] * (gain * velocity))
    return out


# --------------------------------------------------------------------------- bass


BASS_PATTERNS: dict[str, tuple[tuple[float, float, int], ...]] = {
    # (onset beats, duration beats, octave offset)
    "intro": ((0.0, 3.5, 0),),
    "verse": ((0.0, 1.4, 0), (1.5, 0.45, 0), (2.0, 1.9, 0)),
    "chorus": tuple((i * 0.5, 0.42, 12 if i % 4 == 3 else 0) for i in range(8)),
    "bridge": ((0.0, 2.4, 0), (2.5, 1.4, 0)),
    "outro": ((0.0, 3.5, 0),),
}


def _render_bass(timeline: _Timeline, rng: np.random.Generator) -> np.ndarray:
    sr = timeline.sample_rate
    out = np.zeros(timeline.frames)
    for label, _, first_bar, bars in timeline.sections():
        gain = _db(SECTION_GAIN_DB[label]["bass"])
        cutoff_hz = 900.0 if label == "chorus" else 500.0
        sos = signal.butter(2, cutoff_hz, btype="lowpass", fs=sr, output="sos")
        for bar_index, chord in enumerate(PROGRESSIONS[label][:bars]):
            root = CHORDS[chord][0]
            for onset, duration, octave in BASS_PATTERNS[label]:
                hold = int(duration * timeline.beat_s * sr)
                frames = hold + int(0.05 * sr)
                freq = np.full(frames, float(_midi_hz(root + octave)))
                t = np.arange(frames) / sr
                tone = np.sin(2 * np.pi * np.cumsum(freq) / sr) + 0.45 * signal.sosfilt(sos, _saw(freq, sr, rng.random()))
                env = _envelope(frames, sr, 0.004, hold, 0.04) * (0.75 + 0.25 * np.exp(-t / 0.15))
                _add(out, timeline.frame(first_bar + bar_index, onset), tone * env * gain)
    return _pan(out, 0.0)


# --------------------------------------------------------------------------- other: pads and arpeggio


def _pluck(midi: int, frames: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Additive pluck: harmonic k decays faster as k grows."""
    t = np.arange(frames) / sample_rate
    f0 = float(_midi_hz(midi))
    out = np.zeros(frames)
    for k in range(1, 9):
        if k * f0 > 0.45 * sample_rate:
            break
        out += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t * (5.0 + 4.0 * k)) / k**1.3
    attack = min(frames, int(0.003 * sample_rate))
    out[:attack] *= np.linspace(0.0, 1.0, attack)
    return out


def _render_other(timeline: _Timeline, rng: np.random.Generator) -> np.ndarray:
    sr = timeline.sample_rate
    out = np.zeros((2, timeline.frames))
    for label, _, first_bar, bars in timeline.sections():
        progression = PROGRESSIONS[label][:bars]
        pad_gain = _db(SECTION_GAIN_DB[label]["pad"])
        sos = signal.butter(2, PAD_CUTOFF_HZ[label], btype="lowpass", fs=sr, output="sos")
        # Pads: merge repeated chords into one long note with a slow attack.
        bar = 0
        while bar < len(progression):
            length = 1
            while bar + length < len(progression) and progression[bar + length] == progression[bar]:
                length += 1
            voicing = list(CHORDS[progression[bar]][1])
            if label == "chorus":
                voicing.append(voicing[0] + 12)
            hold = int(length * timeline.bar_s * sr)
            frames = hold + int(0.6 * sr)
            block = np.zeros((2, frames))
            for midi in voicing:
                f0 = float(_midi_hz(midi))
                for side, cents in ((0, (-9.0, 3.0)), (1, (9.0, -3.0))):
                    for detune in cents:
                        freq = np.full(frames, f0 * 2.0 ** (detune / 1200.0))
                        block[side] += _saw(freq, sr, rng.random())
            block = signal.sosfilt(sos, block + 0.5 * block[::-1], axis=-1)  # wide, not disjoint
            env = _envelope(frames, sr, 0.45 if label != "chorus" else 0.12, hold, 0.55)
            _add(out, timeline.frame(first_bar + bar), block * env * (0.1 * pad_gain))
            bar += length
        # Arpeggio: eighths in the chorus, quarters in the bridge, ping-ponged left and right.
        arp_gain = _db(SECTION_GAIN_DB[label]["arp"])
        if arp_gain == 0.0:
            continue
        step_beats = 0.5 if label == "chorus" else 1.0
        steps = int(BEATS_PER_BAR / step_beats)
        for bar_index, chord in enumerate(progression):
            voicing = CHORDS[chord][1]
            notes = [voicing[0] + 12, voicing[1] + 12, voicing[2] + 12, voicing[0] + 24]
            order = (0, 1, 2, 3, 2, 1, 2, 1)
            for step in range(steps):
                midi = notes[order[step % len(order)]]
                frames = int(0.6 * sr)
                tone = _pluck(midi, frames, sr, rng) * (arp_gain * 0.22 * (1.0 if step % 2 == 0 else 0.8))
                pan = -0.45 if step % 2 == 0 else 0.45
                _add(out, timeline.frame(first_bar + bar_index, step * step_beats), _pan(tone, pan))
    return out


# --------------------------------------------------------------------------- vocals


def _vowel_filters(sample_rate: int) -> dict[str, list[tuple[np.ndarray, np.ndarray, float]]]:
    """Per vowel, the (b, a, linear gain) of each formant resonator that fits below Nyquist."""
    filters = {}
    for vowel, (centres_hz, widths_hz, levels_db) in VOWELS.items():
        bank = []
        for centre_hz, width_hz, level_db in zip(centres_hz, widths_hz, levels_db):
            if centre_hz >= 0.45 * sample_rate:
                continue
            b, a = signal.iirpeak(centre_hz, centre_hz / width_hz, fs=sample_rate)
            bank.append((b, a, _db(level_db)))
        filters[vowel] = bank
    return filters


def _split_syllable(syllable: str) -> tuple[str, str]:
    consonant = syllable[0] if syllable[0] not in VOWELS else ""
    return consonant, syllable[len(consonant) :]


def _sing(
    midi: int,
    duration_s: float,
    syllable: str,
    previous_midi: int | None,
    level: float,
    filters: dict[str, list[tuple[np.ndarray, np.ndarray, float]]],
    rng: np.random.Generator,
    sample_rate: int,
) -> np.ndarray:
    """One sung note, mono: source (pitch contour) -> vowel resonators -> envelope."""
    sr = sample_rate
    release_s = 0.09
    hold = int(duration_s * sr) - int(release_s * sr * 0.5)
    frames = hold + int(release_s * sr)
    t = np.arange(frames) / sr
    consonant, vowels = _split_syllable(syllable)

    # Pitch: a glide from the previous note (or a small scoop), delayed vibrato, slow jitter.
    start_semitones = -0.6 if previous_midi is None or abs(previous_midi - midi) > 7 else previous_midi - midi
    semitones = start_semitones * np.exp(-t / 0.04)
    vibrato_depth = 0.3 * np.clip((t - 0.18) / 0.35, 0.0, 1.0)
    semitones += vibrato_depth * np.sin(2 * np.pi * rng.uniform(5.0, 5.6) * t + rng.uniform(0, 2 * np.pi))
    semitones += 0.07 * _smooth_noise(rng, frames, sr, 12.0)
    freq = _midi_hz(midi + semitones)

    # Source: band-limited sawtooth with a gentle tilt, per-period jitter-like shimmer, breath.
    source = _saw(freq, sr, rng.random())
    source = signal.lfilter([1.0, -0.8], [1.0, -0.3], source)
    source *= 1.0 + 0.05 * _smooth_noise(rng, frames, sr, 80.0)
    breath = signal.lfilter([1.0, -0.9], [1.0], rng.standard_normal(frames)) * 0.05
    excitation = (source + breath) * _envelope(frames, sr, 0.035, hold, release_s)
    if consonant in ("m", "n", "l"):
        # Voiced consonants: a softer start.
        onset = excitation[: int(0.05 * sr)]
        onset *= np.linspace(0.35, 1.0, onset.size)

    def through(vowel: str, x: np.ndarray) -> np.ndarray:
        return sum(gain * signal.lfilter(b, a, x) for b, a, gain in filters[vowel])

    voiced = through(vowels[0], excitation)
    if len(vowels) > 1:
        # A diphthong: move to the second vowel over the last part of the note.
        second = through(vowels[1], excitation)
        move = np.clip((t - 0.55 * duration_s) / max(0.12, 0.3 * duration_s), 0.0, 1.0)
        move = 0.5 - 0.5 * np.cos(np.pi * move)
        voiced = voiced * (1.0 - move) + second * move
    # Even loudness from note to note, whether or not a harmonic sits on a formant peak.
    voiced *= 0.1 / (np.sqrt(np.mean(voiced[:hold] ** 2)) + 1e-12)

    if consonant in ("s", "t", "k", "h"):
        length_s = {"s": 0.07, "t": 0.02, "k": 0.025, "h": 0.05}[consonant]
        band_hz = {"s": (4500.0, 11000.0), "t": (2500.0, 9000.0), "k": (1200.0, 4000.0), "h": (600.0, 3500.0)}[consonant]
        band_hz = (band_hz[0], min(band_hz[1], 0.45 * sr))
        n = int(length_s * sr)
        sos = signal.butter(2, band_hz, btype="bandpass", fs=sr, output="sos")
        noise = signal.sosfilt(sos, rng.standard_normal(n)) * np.hanning(n)
        relative = {"s": 0.35, "t": 0.5, "k": 0.5, "h": 0.25}[consonant]
        voiced[:n] += noise * (relative * 0.1 / (np.sqrt(np.mean(noise**2)) + 1e-12))
    return voiced * level


def _render_vocals(timeline: _Timeline, rng: np.random.Generator) -> np.ndarray:
    sr = timeline.sample_rate
    filters = _vowel_filters(sr)
    out = np.zeros(timeline.frames)
    for label, _, first_bar, _bars in timeline.sections():
        melody = MELODIES.get(label)
        gain = _db(SECTION_GAIN_DB[label]["vocals"])
        if melody is None or gain == 0.0:
            continue
        previous: tuple[float, float, int, str] | None = None
        for onset, duration, midi, syllable in melody:
            legato = previous is not None and abs(previous[0] + previous[1] - onset) < 1e-9
            note = _sing(
                midi,
                duration * timeline.beat_s,
                syllable,
                previous[2] if legato else None,
                gain * rng.uniform(0.9, 1.0),
                filters,
                rng,
                sr,
            )
            _add(out, timeline.frame(first_bar, onset), note)
            previous = (onset, duration, midi, syllable)
    return _pan(out, 0.0)


# --------------------------------------------------------------------------- space and mix


def _reverb_ir(rng: np.random.Generator, sample_rate: int, rt60_s: float = 1.6) -> np.ndarray:
    """A stereo decaying-noise room [shape=(2, n)], darker as it decays, unit energy per side."""
    frames = int(rt60_s * sample_rate)
    t = np.arange(frames) / sample_rate
    noise = rng.standard_normal((2, frames)) * np.exp(-6.9 * t / rt60_s)
    bright = signal.sosfilt(signal.butter(1, 6000.0, fs=sample_rate, output="sos"), noise, axis=-1)
    dark = signal.sosfilt(signal.butter(1, 1500.0, fs=sample_rate, output="sos"), noise, axis=-1)
    mixing = np.clip(t / rt60_s * 2.0, 0.0, 1.0)
    ir = bright * (1.0 - mixing) + dark * mixing
    predelay = int(0.02 * sample_rate)
    ir = np.concatenate([np.zeros((2, predelay)), ir], axis=-1)
    return ir / np.sqrt((ir**2).sum(axis=-1, keepdims=True))


def _with_reverb(dry: np.ndarray, ir: np.ndarray, send: float) -> np.ndarray:
    """``dry`` [shape=(2, n)] plus a reverb send; the mono sum feeds both sides of the room."""
    mono = dry.mean(axis=0)
    wet = np.stack([signal.oaconvolve(mono, ir[side])[: dry.shape[-1]] for side in range(2)])
    return dry + send * wet


def _validate_sample_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not (
        16_000 <= int(sample_rate) <= 192_000
    ):
        raise ParameterError(f"sample_rate={sample_rate!r} must be an integer between 16000 and 192000 Hz")
    return int(sample_rate)


def make_demo(sample_rate: int = 44100) -> DemoSong:
    """Synthesise the demo song and its four true stems, bit-identically on every call.

    Args:
        sample_rate: output rate in Hz, 16000 to 192000.

    Returns:
        The song: stereo 16-bit-exact stems and a mix that is exactly their sum, peaking
        near -1.5 dBFS, with the tempo, key and sections it was written in.

    Raises:
        ParameterError: if ``sample_rate`` is out of range.
    """
    sample_rate = _validate_sample_rate(sample_rate)
    timeline = _Timeline(sample_rate)
    rng = np.random.default_rng(SEED)

    parts = {
        "vocals": _render_vocals(timeline, rng),
        "drums": _render_drums(timeline, rng),
        "bass": _render_bass(timeline, rng),
        "other": _render_other(timeline, rng),
    }
    ir = _reverb_ir(rng, sample_rate)
    parts["vocals"] = _with_reverb(parts["vocals"] * 3.0, ir, 0.2)
    parts["other"] = _with_reverb(parts["other"], ir, 0.3)
    parts["drums"] *= 0.8
    parts["bass"] *= 0.55

    # The last two seconds fade out on every stem alike.
    fade = int(2.0 * sample_rate)
    ramp = np.ones(timeline.frames)
    ramp[-fade:] = np.cos(np.linspace(0.0, np.pi / 2, fade)) ** 2
    parts = {name: samples * ramp for name, samples in parts.items()}

    # Scale so the mix peaks at MIX_PEAK_DB, then quantise each stem to 16 bits; the mix is
    # the integer sum of the quantised stems, so memory and disk agree exactly.
    mix = sum(parts.values())
    peak = max(float(np.max(np.abs(mix))), *(float(np.max(np.abs(p))) for p in parts.values()))
    scale = _db(MIX_PEAK_DB) / peak * (INT16_SCALE - 8)
    quantised = {name: np.rint(parts[name] * scale).astype(np.int32) for name in STEM_NAMES}
    total = sum(quantised.values())
    if np.max(np.abs(total)) >= INT16_SCALE:  # cannot happen with MIX_PEAK_DB < 0; checked anyway
        raise RemixError("demo mix does not fit in 16 bits")
    stems = {name: Audio((q / INT16_SCALE).astype(np.float32), sample_rate) for name, q in quantised.items()}
    mix_audio = Audio((total / INT16_SCALE).astype(np.float32), sample_rate)

    sections = tuple(
        DemoSection(label, ordinal, first_bar * timeline.bar_s, (first_bar + bars) * timeline.bar_s)
        for label, ordinal, first_bar, bars in timeline.sections()
    )
    return DemoSong(
        mix=mix_audio,
        stems=stems,
        tempo_bpm=TEMPO_BPM,
        beats_per_bar=BEATS_PER_BAR,
        key=KEY,
        mode=MODE,
        sections=sections,
        title=TITLE,
        artist=ARTIST,
    )


# --------------------------------------------------------------------------- files


def _write_wav(path: Path, audio: Audio) -> None:
    """16-bit PCM WAV, written to a temporary name and renamed into place."""
    import soundfile

    pcm = np.rint(audio.samples.T.astype(np.float64) * INT16_SCALE)
    pcm = np.clip(pcm, -INT16_SCALE, INT16_SCALE - 1).astype(np.int16)
    with atomic_path(path) as partial:
        soundfile.write(str(partial), pcm, audio.sample_rate, subtype="PCM_16", format="WAV")


def write_demo(out_dir: str | Path, song: DemoSong | None = None) -> dict[str, Path]:
    """Write the demo's mix, stems and facts into ``out_dir``.

    Args:
        out_dir: folder to write into; created if missing.
        song: the song to write; built with :func:`make_demo` when omitted.

    Returns:
        ``mix``, ``vocals``, ``drums``, ``bass``, ``other`` (16-bit PCM WAV files) and
        ``demo`` (``demo.json``: tempo, key, mode, beats_per_bar, sections, title, artist)
        mapped to their paths.
    """
    song = make_demo() if song is None else song
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, audio in (("mix", song.mix), *((stem, song.stems[stem]) for stem in STEM_NAMES)):
        paths[name] = out / f"{name}.wav"
        _write_wav(paths[name], audio)
    facts = {
        "title": song.title,
        "artist": song.artist,
        "tempo": song.tempo_bpm,
        "key": song.key,
        "mode": song.mode,
        "beats_per_bar": song.beats_per_bar,
        "duration_s": song.duration_s,
        "sample_rate": song.mix.sample_rate,
        "sections": [
            {"label": s.label, "ordinal": s.ordinal, "start": s.start, "end": s.end} for s in song.sections
        ],
        "stems": list(STEM_NAMES),
    }
    paths["demo"] = out / "demo.json"
    atomic_write_bytes(paths["demo"], (json.dumps(facts, indent=2) + "\n").encode("utf-8"))
    return paths


def demo_song_path(data_dir: Path) -> Path:
    """The demo mix under ``data_dir``, written there once if missing.

    The demo is written into a temporary folder beside its final place and renamed into
    place whole, so a crash never leaves a half-written demo.

    Args:
        data_dir: the data folder.

    Returns:
        ``data_dir / "demo" / "mix.wav"``.
    """
    data_dir = Path(data_dir)
    final = data_dir / "demo"
    mix_path = final / "mix.wav"
    if mix_path.is_file():
        return mix_path
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=data_dir))
    try:
        write_demo(staging)
        if mix_path.is_file():  # another process finished first
            return mix_path
        if final.exists():  # an incomplete folder from elsewhere: set it aside, then replace it
            stale = Path(tempfile.mkdtemp(prefix=".demo-stale-", dir=data_dir))
            os.replace(final, stale / "demo")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(staging, final)
        except OSError:
            if not mix_path.is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mix_path
