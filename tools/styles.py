"""The ``restyle`` tool: a library of style presets with a continuous intensity.

Each preset is a chain of real effects whose every parameter moves from "no effect" at
``amount`` 0 to the full character at 1 (cut-offs glide geometrically, drive and wet levels
linearly), so "a bit more" is a small, audible step and ``amount`` 0 is the untouched input.
Styles stack in one fixed order (speed and pitch first, then tone and texture, then space,
then motion), whatever order they were asked for in.

A style aimed at one stem (``target: vocals``) is applied to that stem before the stems are
mixed; a style that changes speed (nightcore, slowed + reverb, vaporwave) then changes the
stem's pitch only, so it stays in time with the others.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import pedalboard
from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import effects as fx
from .audio import Audio
from .errors import ParameterError
from .sections import section_mask, section_spans
from .spec import RemixSpec, StyleSettings, StyleTarget

__all__ = [
    "PRESETS",
    "STYLE_ALIASES",
    "STYLES_VERSION",
    "SPEED_STYLES",
    "DEFAULT_AMOUNT",
    "DEFAULT_STEP",
    "Preset",
    "StyleContext",
    "RestyleArgs",
    "apply",
    "resolve_style",
    "apply_styles",
    "mix_styles",
    "stem_styles",
    "end_like",
]

# Bump when a preset's sound changes: it is part of the render cache key.
STYLES_VERSION = 5
DEFAULT_AMOUNT = 0.5
DEFAULT_STEP = 0.2


@dataclass(frozen=True)
class StyleContext:
    """What a preset may know about the song: its current tempo and key, and a seed."""

    bpm: float | None = None
    key_pitch_class: int | None = None  # 0 = C ... 11 = B
    seed: int = 0
    keep_length: bool = False  # a stem must keep its length: speed styles shift pitch only
    sections: Callable[[str], list[tuple[float, float]]] | None = None  # where a named section plays


Chain = Callable[[np.ndarray, int, float, StyleContext], np.ndarray]


@dataclass(frozen=True)
class Preset:
    id: str
    title: str
    description: str
    order: int
    chain: Chain
    changes_speed: bool = False


def _seed(ctx: StyleContext, name: str) -> int:
    return (ctx.seed * 1_000_003 + zlib.crc32(name.encode())) & 0xFFFFFFFF


def _board(x: np.ndarray, sr: int, plugins: list) -> np.ndarray:
    return pedalboard.Pedalboard(plugins)(np.ascontiguousarray(x), float(sr), reset=True).astype(np.float32)


def _speed(x: np.ndarray, sr: int, speed: float, ctx: StyleContext) -> np.ndarray:
    """Turntable speed change, or (for a stem that must keep its length) the same pitch change alone."""
    if ctx.keep_length:
        return fx.pitch_shift(x, sr, 12.0 * math.log2(speed), formants=False)
    return fx.varispeed(x, sr, speed)


def _noise_bed(x: np.ndarray, sr: int, level: float, seed: int, crackles_per_s: float, crackle_level: float):
    """Hiss (pink noise) and crackle, scaled relative to the music's level."""
    reference = max(fx.rms(x), 1e-4)
    out = np.zeros_like(x)
    if level > 0:  # warm hiss: pink noise with its top rolled off, as an old tape or amp gives
        hiss = fx.lowpass(fx.pink_noise(x.shape[0], x.shape[1], seed), sr, 3000.0, order=2)
        out += hiss * (level * reference / max(float(np.sqrt(np.mean(hiss**2))), 1e-12))
    if crackle_level > 0:
        out += fx.crackle(x.shape[0], x.shape[1], sr, crackles_per_s, seed + 1) * (crackle_level * reference)
    return out


# ---- presets: each is (x, sr, amount, ctx) -> y, with amount in (0, 1] ----


def _lofi(x, sr, a, ctx):
    seed = _seed(ctx, "lofi")
    y = fx.modulated_delay(x, sr, wow_ms=1.6 * a, flutter_ms=0.25 * a, seed=seed)
    # Tape hiss under the music, added before the filters so it is as dull as the rest.
    y = y + _noise_bed(y, sr, level=0.045 * a, seed=seed, crackles_per_s=3.0, crackle_level=0.25 * a)
    y = fx.bitcrush(y, fx.lerp(16.0, 9.0, a))
    y = _saturate(y, 6.0, a)
    y = fx.highpass(y, sr, fx.loglerp(10.0, 140.0, a))
    # Worn tape loses the top gradually (a shelf from the first touch), then a steep cut.
    y = _board(y, sr, [_high_shelf(2500.0, -14.0 * a)])
    return fx.lowpass(y, sr, fx.loglerp(22050.0, 2600.0, a), order=4)


def _high_shelf(cutoff_hz: float, gain_db: float):
    return pedalboard.HighShelfFilter(cutoff_frequency_hz=cutoff_hz, gain_db=gain_db, q=0.5)


def _room(room_size: float, damping: float, wet_level: float, dry_level: float, width: float = 1.0):
    """Freeverb with ``dry_level`` 1 meaning unity gain (pedalboard's reverb doubles the dry signal)."""
    return pedalboard.Reverb(
        room_size=room_size, damping=damping, wet_level=wet_level, dry_level=0.5 * dry_level, width=width
    )


def _saturate(x: np.ndarray, drive_db: float, mix: float) -> np.ndarray:
    """Soft tanh saturation with unity small-signal gain, blended in by ``mix`` (memoryless, so no phasing)."""
    if mix <= 0:
        return x
    g = 10.0 ** (drive_db / 20.0)
    return ((1.0 - mix) * x + mix * (np.tanh(g * x) / g)).astype(np.float32)


def _vinyl(x, sr, a, ctx):
    seed = _seed(ctx, "vinyl")
    y = fx.modulated_delay(x, sr, wow_ms=0.9 * a, flutter_ms=0.0, seed=seed, wow_hz=0.55)  # 33 rpm eccentricity
    y = fx.lowpass(fx.highpass(y, sr, fx.loglerp(10.0, 45.0, a)), sr, fx.loglerp(22050.0, 9000.0, a), order=2)
    rumble = _rumble(x.shape[0], x.shape[1], sr, seed + 7) * (0.02 * a * fx.rms(x))
    return y + rumble + _noise_bed(y, sr, level=0.012 * a, seed=seed, crackles_per_s=9.0, crackle_level=0.5 * a)


def _rumble(channels: int, frames: int, sr: int, seed: int) -> np.ndarray:
    """Unit-RMS turntable rumble: noise below about 40 Hz (drawn at 160 Hz and interpolated, cheap)."""
    rng = np.random.default_rng(seed)
    coarse_rate = 160.0
    points = rng.standard_normal((channels, int(frames * coarse_rate / sr) + 3))
    points = fx.lowpass(points.astype(np.float32), int(coarse_rate), 40.0, order=2) if points.shape[1] > 12 else points
    where = np.arange(frames) * (coarse_rate / sr)
    out = np.stack([np.interp(where, np.arange(points.shape[1]), row) for row in points]).astype(np.float32)
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-12)


def _vaporwave(x, sr, a, ctx):
    y = _speed(x, sr, fx.lerp(1.0, 0.78, a), ctx)
    y = fx.modulated_delay(y, sr, wow_ms=1.2 * a, flutter_ms=0.0, seed=_seed(ctx, "vaporwave"), wow_hz=0.3)
    y = fx.lowpass(y, sr, fx.loglerp(22050.0, 7500.0, a), order=2)
    return _board(
        y,
        sr,
        [
            pedalboard.Chorus(rate_hz=0.6, depth=0.25, centre_delay_ms=8.0, feedback=0.0, mix=0.35 * a),
            _room(room_size=0.8, damping=0.6, wet_level=0.3 * a, dry_level=1.0 - 0.2 * a, width=1.0),
        ],
    )


def _nightcore(x, sr, a, ctx):
    y = _speed(x, sr, fx.lerp(1.0, 1.25, a), ctx)
    return _board(y, sr, [pedalboard.HighShelfFilter(cutoff_frequency_hz=6000.0, gain_db=2.5 * a)])


def _slowed_reverb(x, sr, a, ctx):
    y = _speed(x, sr, fx.lerp(1.0, 0.8, a), ctx)
    y = fx.lowpass(y, sr, fx.loglerp(22050.0, 11000.0, a), order=2)
    return _board(
        y, sr, [_room(room_size=0.88, damping=0.45, wet_level=0.38 * a, dry_level=1.0 - 0.2 * a, width=1.0)]
    )


def _chiptune(x, sr, a, ctx):
    # Fewer bits and a lower, unfiltered sample rate (aliasing), squared-off waveforms.
    y = fx.highpass(x, sr, fx.loglerp(10.0, 120.0, a))
    y = fx.sample_and_hold(y, sr, fx.loglerp(float(sr), 8000.0, a))
    peak = max(float(np.max(np.abs(y))), 1e-6)
    shaped = np.sign(y) * (np.abs(y) / peak) ** fx.lerp(1.0, 0.45, a) * peak
    y = fx.bitcrush(shaped.astype(np.float32), fx.lerp(16.0, 5.0, a))
    return fx.lowpass(y, sr, fx.loglerp(22050.0, 12000.0, a), order=2)


def _telephone(x, sr, a, ctx):
    mono = x.mean(axis=0, keepdims=True)
    y = (1.0 - a) * x + a * mono  # a handset is mono
    y = _saturate(y, 10.0, a)
    y = fx.bitcrush(y, fx.lerp(16.0, 8.0, a))
    # The line's band limits come last, so the grit of the codec is band-limited too.
    return fx.bandpass(y, sr, fx.loglerp(10.0, 320.0, a), fx.loglerp(22050.0, 3400.0, a), order=4)


def _underwater(x, sr, a, ctx):
    y = fx.modulated_delay(x, sr, wow_ms=2.5 * a, flutter_ms=0.0, seed=_seed(ctx, "underwater"), wow_hz=0.25)
    y = fx.lowpass(y, sr, fx.loglerp(22050.0, 420.0, a), order=4)
    return _board(
        y,
        sr,
        [
            pedalboard.Chorus(rate_hz=0.25, depth=0.4, centre_delay_ms=12.0, feedback=0.2, mix=0.3 * a),
            _room(room_size=0.7, damping=0.95, wet_level=0.35 * a, dry_level=1.0 - 0.3 * a),
        ],
    )


def _reverb(x, sr, a, ctx):
    return _board(
        x,
        sr,
        [
            _room(
                room_size=fx.lerp(0.45, 0.85, a), damping=0.5, wet_level=0.45 * a, dry_level=1.0 - 0.25 * a, width=1.0
            )
        ],
    )


def _beat_s(ctx: StyleContext) -> float:
    bpm = ctx.bpm if ctx.bpm and 40.0 <= ctx.bpm <= 240.0 else 120.0
    return 60.0 / bpm


def _echo(x, sr, a, ctx):
    # A dotted-eighth echo locked to the song's tempo, bouncing left and right, darker each time.
    return fx.feedback_delay(
        x, sr, delay_s=0.75 * _beat_s(ctx), feedback=fx.lerp(0.25, 0.55, a), mix=0.5 * a, damping_hz=5000.0
    )


def _distortion(x, sr, a, ctx):
    # The band above 90 Hz is driven; the bass under it stays clean (exact complement), so
    # the low end keeps its weight instead of turning to mud. Drive tops out at 22 dB: beyond
    # that the fuzz becomes a square wave, harsh and flat.
    high = fx.highpass(x, sr, 90.0)
    low = x - high
    level = max(float(np.max(np.abs(high))), 1e-6)
    driven = _board(high / level, sr, [pedalboard.Distortion(drive_db=fx.lerp(6.0, 22.0, a))])
    driven *= fx.rms(high) / max(fx.rms(driven), 1e-9)  # loudness matched, so the amount blends evenly
    y = (1.0 - a) * x + a * (driven + low)  # the drive is memoryless: a dry/wet blend cannot phase
    return fx.lowpass(y, sr, fx.loglerp(22050.0, 7000.0, a), order=2)  # a speaker cabinet's top end


def _ambient(x, sr, a, ctx):
    y = fx.lowpass(x, sr, fx.loglerp(22050.0, 7000.0, a), order=2)
    y = fx.feedback_delay(y, sr, delay_s=2.0 * _beat_s(ctx), feedback=0.45, mix=0.25 * a, damping_hz=3000.0)
    return _board(
        y,
        sr,
        [
            pedalboard.Chorus(rate_hz=0.15, depth=0.3, centre_delay_ms=10.0, feedback=0.0, mix=0.25 * a),
            _room(room_size=0.97, damping=0.35, wet_level=0.55 * a, dry_level=1.0 - 0.35 * a, width=1.0),
        ],
    )


def _bass_boost(x, sr, a, ctx):
    # A low shelf, plus harmonics of the low end so the boost is heard on small speakers too.
    low = fx.lowpass(x, sr, 120.0, order=4)
    harmonics = fx.highpass(np.tanh(4.0 * low / max(float(np.max(np.abs(low))), 1e-6)), sr, 120.0, order=2)
    harmonics = fx.lowpass(harmonics, sr, 600.0, order=2) * (0.08 * a * fx.rms(x))
    y = _board(
        x,
        sr,
        [
            pedalboard.LowShelfFilter(cutoff_frequency_hz=110.0, gain_db=10.0 * a, q=0.707),
            pedalboard.PeakFilter(cutoff_frequency_hz=55.0, gain_db=3.0 * a, q=1.0),
        ],
    )
    return y + harmonics.astype(np.float32)


def _eight_d(x, sr, a, ctx):
    # The sound circles the listener's head: constant-power panning, the far ear a little
    # later (up to 0.6 ms) and duller, plus a touch of room.
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    n = x.shape[1]
    t = np.arange(n) / sr
    rotation_hz = 1.0 / 8.0  # once around every 8 seconds
    azimuth = np.sin(2 * np.pi * rotation_hz * t).astype(np.float32) * a  # -1 left .. 1 right
    mono = x.mean(axis=0)
    angle = (azimuth + 1.0) * (np.pi / 4)
    panned = np.stack([np.cos(angle) * mono, np.sin(angle) * mono]) * np.float32(math.sqrt(2.0))
    y = (1.0 - a) * x + a * panned
    delay = 0.6e-3 * sr * np.abs(azimuth)
    index = np.arange(n, dtype=np.float64)
    dull = fx.lowpass(y, sr, 2500.0, order=1)
    shade = np.abs(azimuth)
    out = np.empty_like(y)
    for channel, far_when in ((0, azimuth > 0), (1, azimuth < 0)):
        late = np.interp(np.clip(index - delay * far_when, 0, n - 1), index, y[channel])
        late_dull = np.interp(np.clip(index - delay * far_when, 0, n - 1), index, dull[channel])
        weight = 0.6 * shade * far_when
        out[channel] = (1.0 - weight) * late + weight * late_dull
    return _board(out, sr, [_room(room_size=0.5, damping=0.6, wet_level=0.12 * a, dry_level=1.0)])


def _robot(x, sr, a, ctx):
    # A channel vocoder: the song's spectral envelope (32 bands) imposed on a buzzy carrier at
    # the song's key note, plus a ring modulator; blended in by amount.
    root = ctx.key_pitch_class if ctx.key_pitch_class is not None else 9  # A
    f0 = 440.0 * 2.0 ** ((root - 9) / 12.0 - 2.0)  # the key note in the octave from 110 to 208 Hz
    if f0 < 100.0:
        f0 *= 2.0
    vocoded = _vocode(x, sr, f0, seed=_seed(ctx, "robot"))
    t = np.arange(x.shape[1]) / sr
    ring = x * np.sin(2 * np.pi * 55.0 * t).astype(np.float32)
    wet = 0.8 * vocoded + 0.35 * ring * (fx.rms(vocoded) / max(fx.rms(ring), 1e-9))
    wet *= fx.rms(x) / max(fx.rms(wet), 1e-9)
    return fx.equal_power_blend(x, wet.astype(np.float32), a)


def _vocode(x: np.ndarray, sr: int, f0: float, seed: int, bands: int = 32) -> np.ndarray:
    import torch

    n_fft, hop = 1024, 256
    n = x.shape[1]
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    # Band-limited sawtooth (one additive period, read as a wavetable) plus a little noise for consonants.
    harmonics = int(min(40, (0.45 * sr) // f0))
    table_size = 4096
    theta = 2 * np.pi * np.arange(table_size + 1) / table_size
    table = sum(np.sin(k * theta) / k for k in range(1, harmonics + 1))
    saw = np.interp((f0 * t) % 1.0 * table_size, np.arange(table_size + 1), table).astype(np.float32)
    carrier = saw + 0.05 * rng.standard_normal(n).astype(np.float32)
    window = torch.hann_window(n_fft)

    def spec(v: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.from_numpy(np.array(v, dtype=np.float32)), n_fft, hop, window=window, return_complex=True)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = np.geomspace(80.0, min(12000.0, 0.45 * sr), bands + 1)
    fb = np.zeros((bands, freqs.size), dtype=np.float32)
    for b in range(bands):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():
            inside = np.abs(freqs - np.sqrt(edges[b] * edges[b + 1])) == np.min(np.abs(freqs - np.sqrt(edges[b] * edges[b + 1])))
        fb[b, inside] = 1.0 / inside.sum()
    fb_t = torch.from_numpy(fb)
    spread = torch.from_numpy((fb > 0).astype(np.float32))  # band -> bins, to spread envelopes back
    c = spec(carrier)
    c_env = torch.sqrt(fb_t @ (c.abs() ** 2) + 1e-12)
    c_flat = c / (spread.T @ c_env + 1e-9)
    out = np.empty_like(x)
    for channel in range(x.shape[0]):
        s = spec(x[channel])
        env = torch.sqrt(fb_t @ (s.abs() ** 2) + 1e-12)
        y = torch.istft(c_flat * (spread.T @ env), n_fft, hop, window=window, length=n)
        out[channel] = y.numpy()
    return out


def _chipmunk(x, sr, a, ctx):
    # Formants move up with the pitch: the cartoon voice, not a natural higher singer.
    y = fx.pitch_shift(x, sr, fx.lerp(0.0, 7.0, a), formants=False)
    return _board(y, sr, [pedalboard.HighShelfFilter(cutoff_frequency_hz=5000.0, gain_db=1.5 * a)])


def _deep_voice(x, sr, a, ctx):
    # Formants kept: a deeper singer rather than a slowed-down tape, with some chest added.
    y = fx.pitch_shift(x, sr, fx.lerp(0.0, -6.0, a), formants=True)
    return _board(
        y,
        sr,
        [
            pedalboard.LowShelfFilter(cutoff_frequency_hz=180.0, gain_db=3.0 * a, q=0.707),
            pedalboard.HighShelfFilter(cutoff_frequency_hz=7000.0, gain_db=-2.0 * a),
        ],
    )


def _radio(x, sr, a, ctx):
    # An AM kitchen radio: mono, 500 Hz - 4.5 kHz, a small speaker driven hard, faint static.
    mono = x.mean(axis=0, keepdims=True)
    y = (1.0 - a) * x + a * mono
    y = fx.bandpass(y, sr, fx.loglerp(10.0, 500.0, a), fx.loglerp(22050.0, 4500.0, a), order=2)
    y = _saturate(y, 12.0, a)
    y = fx.lowpass(y, sr, fx.loglerp(22050.0, 5000.0, a), order=2)
    static = fx.bandpass(fx.pink_noise(y.shape[0], y.shape[1], _seed(ctx, "radio")), sr, 1000.0, 6000.0, order=2)
    return y + static * (0.02 * a * fx.rms(y))


def _muffled(x, sr, a, ctx):
    # The party next door: through a wall, bass heard, top gone, a little of the room.
    y = fx.lowpass(x, sr, fx.loglerp(22050.0, 300.0, a), order=4)
    return _board(y, sr, [_room(room_size=0.4, damping=0.9, wet_level=0.2 * a, dry_level=1.0 - 0.1 * a)])


_PRESET_LIST = (
    # speed and pitch
    Preset("nightcore", "nightcore", "25 % faster and higher, a little brighter", 10, _nightcore, True),
    Preset("slowed_reverb", "slowed + reverb", "20 % slower and lower, in a big reverb", 11, _slowed_reverb, True),
    Preset("vaporwave", "vaporwave", "slowed down, dull, chorused, wobbly and washed in reverb", 12, _vaporwave, True),
    Preset("chipmunk", "chipmunk", "up to 7 semitones higher with the formants shifted (cartoon voice)", 13, _chipmunk),
    Preset("deep_voice", "deep voice", "up to 6 semitones lower with the formants kept, chest added", 14, _deep_voice),
    # tone and texture
    Preset("robot", "robot", "vocoded onto a buzz at the song's key note, with a ring modulator", 20, _robot),
    Preset("telephone", "telephone", "mono, 320 Hz to 3.4 kHz, a little distortion and grit", 21, _telephone),
    Preset("radio", "AM radio", "mono, 500 Hz to 4.5 kHz, a small speaker driven hard, static", 22, _radio),
    Preset("chiptune", "chiptune", "fewer bits, a low unfiltered sample rate, squared-off waves", 23, _chiptune),
    Preset("distortion", "distortion", "driven hard (bass kept clean), loudness matched, cabinet top end", 24, _distortion),
    Preset("bass_boost", "bass boost", "low shelf +10 dB at 110 Hz with audible low harmonics", 25, _bass_boost),
    Preset("underwater", "underwater", "low-passed down to 420 Hz, slow wobble, damped reverb", 26, _underwater),
    Preset("muffled", "muffled", "heard through a wall: low-passed down to 300 Hz, a small room", 27, _muffled),
    Preset("lofi", "lo-fi", "tape wow and flutter, hiss and crackle, fewer bits, saturation, dull top", 28, _lofi),
    Preset("vinyl", "vinyl", "record crackle, surface noise and rumble, slight wow, softer top", 29, _vinyl),
    # space
    Preset("echo", "echo", "dotted-eighth ping-pong echo at the song's tempo, darker each repeat", 30, _echo),
    Preset("reverb", "reverb", "a hall reverb, bigger and wetter with the amount", 31, _reverb),
    Preset("ambient", "ambient", "long dark echoes, chorus and a huge reverb, top softened", 32, _ambient),
    # motion
    Preset("8d", "8D audio", "the sound circles your head every 8 seconds", 40, _eight_d),
)
PRESETS: dict[str, Preset] = {p.id: p for p in _PRESET_LIST}

STYLE_ALIASES: dict[str, str] = {
    "lo fi": "lofi", "lo-fi": "lofi", "low fi": "lofi", "lowfi": "lofi", "tape": "lofi",
    "record": "vinyl", "vinyl crackle": "vinyl", "old record": "vinyl",
    "vapor": "vaporwave", "vapour": "vaporwave", "vapourwave": "vaporwave",
    "sped up": "nightcore", "speed up": "nightcore", "spedup": "nightcore",
    "slowed": "slowed_reverb", "slowed and reverb": "slowed_reverb", "slowed reverb": "slowed_reverb",
    "slowed + reverb": "slowed_reverb",
    "8 bit": "chiptune", "8bit": "chiptune", "8-bit": "chiptune", "chip": "chiptune",
    "gameboy": "chiptune", "game boy": "chiptune", "video game": "chiptune", "retro game": "chiptune",
    "phone": "telephone", "old radio": "radio", "am radio": "radio",
    "under water": "underwater", "delay": "echo", "reverb": "reverb", "hall": "reverb",
    "distorted": "distortion", "overdrive": "distortion", "fuzz": "distortion",
    "atmospheric": "ambient", "dreamy": "ambient",
    "bass boosted": "bass_boost", "bassboost": "bass_boost", "more bass": "bass_boost", "bass": "bass_boost",
    "8 d": "8d", "8d audio": "8d", "eight d": "8d", "spatial": "8d",
    "robotic": "robot", "vocoder": "robot",
    "helium": "chipmunk", "chipmunks": "chipmunk",
    "deep": "deep_voice", "deeper voice": "deep_voice", "deep voice": "deep_voice", "low voice": "deep_voice",
    "next room": "muffled", "through a wall": "muffled",
}  # fmt: skip


def _canonical(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def resolve_style(name: str) -> str:
    """The preset id for a name or alias ("lo-fi" -> "lofi"); ParameterError listing the ids otherwise."""
    key = _canonical(str(name))
    for preset_id in PRESETS:
        if key == _canonical(preset_id):
            return preset_id
    if key in STYLE_ALIASES:
        return STYLE_ALIASES[key]
    if key.replace(" ", "") in STYLE_ALIASES:
        return STYLE_ALIASES[key.replace(" ", "")]
    raise ParameterError(f"unknown style {name!r}; the styles are: {', '.join(PRESETS)}")


StyleId = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


class RestyleArgs(BaseModel):
    """Give the song (or one stem) a sound: lo-fi, vinyl, vaporwave, nightcore, slowed + reverb, ...

    `change`: `set` applies the style at `amount` (default 0.5; 1 is the full effect); `more`
    and `less` step its amount by `step` (default 0.2); `remove` takes it off. `target` puts
    the style on one stem only ("reverb on the vocals"); `section` keeps it to a part of the
    song ("reverb only in the chorus"; "chorus" means every chorus). Several styles stack.
    """

    model_config = ConfigDict(extra="forbid")

    style: StyleId = Field(description="style preset id")
    amount: float | None = Field(None, ge=0.0, le=1.0, description="intensity 0..1 (0 is no effect)")
    change: Literal["set", "more", "less", "remove"] = Field("set", description="set, step up or down, or remove")
    target: StyleTarget = Field("mix", description="the whole mix, or one stem")
    step: float | None = Field(None, gt=0.0, le=1.0, description="size of a more/less step (default 0.2)")
    section: str | None = Field(
        None, max_length=64, description="only in this section ('chorus', 'verse 2', 'intro'); none for the whole song"
    )

    @field_validator("style", mode="before")
    @classmethod
    def _known_style(cls, value):
        return resolve_style(value) if isinstance(value, str) else value


# Styles that change the song's speed, and so its length: they cannot be kept to one section.
SPEED_STYLES = ("nightcore", "slowed_reverb", "vaporwave")


def apply(spec: RemixSpec, args: RestyleArgs, analysis=None) -> RemixSpec:
    """The spec with this restyle applied (``analysis``, when given, checks the section)."""
    styles = dict(spec.styles)
    current = styles.get(args.style)
    step = args.step if args.step is not None else DEFAULT_STEP
    section = args.section
    if section is not None and args.change != "remove":
        if args.style in SPEED_STYLES and args.target == "mix":
            raise ParameterError(
                f"{PRESETS[args.style].title} changes the song's speed, so it cannot be kept to the {section}; "
                "it can go on the whole song"
            )
        if analysis is not None:
            section_spans(section, analysis)  # raises ParameterError listing the song's sections
    if section is None and current is not None and args.change in ("more", "less"):
        section = current.section  # "more reverb" after "reverb in the chorus" stays in the chorus
    if args.change == "set":
        styles[args.style] = StyleSettings(
            amount=args.amount if args.amount is not None else DEFAULT_AMOUNT, target=args.target, section=section
        )
    elif args.change == "remove":
        if current is None:
            applied = ", ".join(styles) or "none"
            raise ParameterError(f"the {args.style} style is not applied, so it cannot be removed (applied: {applied})")
        del styles[args.style]
    else:
        base = current.amount if current is not None else None
        target = current.target if current is not None and args.target == "mix" else args.target
        if base is None:
            if args.change == "less":
                raise ParameterError(f"the {args.style} style is not applied, so there is nothing to reduce")
            amount = args.amount if args.amount is not None else DEFAULT_AMOUNT
        else:
            amount = base + step if args.change == "more" else base - step
        amount = min(1.0, max(0.0, amount))
        if amount <= 1e-9:
            styles.pop(args.style, None)
        else:
            styles[args.style] = StyleSettings(amount=round(amount, 6), target=target, section=section)
    return spec.update(styles=styles)


def mix_styles(spec: RemixSpec) -> dict[str, StyleSettings]:
    """Styles on the whole mix, in stacking order."""
    return _ordered({k: v for k, v in spec.effective_styles().items() if v.target == "mix"})


def stem_styles(spec: RemixSpec) -> dict[str, StyleSettings]:
    """Styles aimed at one stem, in stacking order."""
    return _ordered({k: v for k, v in spec.effective_styles().items() if v.target != "mix"})


def _ordered(styles: dict[str, StyleSettings]) -> dict[str, StyleSettings]:
    return dict(sorted(styles.items(), key=lambda item: PRESETS[item[0]].order if item[0] in PRESETS else 99))


def end_like(before: np.ndarray, after: np.ndarray, sr: int, fade_s: float = 1.5) -> np.ndarray:
    """Fade ``after`` out at its end when ``before`` ended quietly (a fade, a final decay) and it does not.

    Reverbs, echoes, hiss and grooves would otherwise ring on at full level and stop dead
    on the last sample.
    """
    tail = int(0.1 * sr)
    if before.shape[1] < 4 * tail or after.shape[1] < 4 * tail:
        return after
    level = max(fx.rms(before), 1e-9)
    end_before = float(np.sqrt(np.mean(before[:, -tail:] ** 2)))
    end_after = float(np.sqrt(np.mean(after[:, -tail:] ** 2)))
    if end_before > 0.15 * level or end_after < 2.5 * end_before + 1e-6:
        return after
    length = min(after.shape[1] // 4, int(fade_s * sr))
    out = np.array(after, dtype=np.float32)
    out[:, -length:] *= np.cos(0.5 * np.pi * (np.arange(length) + 0.5) / length).astype(np.float32)
    return out


def _kept_to(section: str, before: np.ndarray, after: np.ndarray, sr: int, ctx: StyleContext, name: str) -> np.ndarray:
    """``after`` inside ``section`` (faded in and out, a short tail let ring), ``before`` elsewhere."""
    if ctx.sections is None:
        raise ParameterError(f"the {name} style is kept to the {section}, but this render knows no sections")
    if after.shape != before.shape:
        raise ParameterError(f"the {name} style changes the song's length, so it cannot be kept to the {section}")
    mask = section_mask(ctx.sections(section), before.shape[1], sr)
    return before + mask * (after - before)


def apply_styles(audio: Audio, styles: dict[str, StyleSettings], ctx: StyleContext) -> Audio:
    """Run the given styles over ``audio`` in stacking order; amount 0 styles are skipped (identity)."""
    samples = audio.samples
    for name, settings in _ordered(styles).items():
        preset = PRESETS.get(name)
        if preset is None:
            raise ParameterError(f"unknown style {name!r} in the recipe; the styles are: {', '.join(PRESETS)}")
        if settings.amount <= 0:
            continue
        before = np.asarray(samples, dtype=np.float32)
        samples = preset.chain(before, audio.sample_rate, float(settings.amount), ctx)
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
        if settings.section is not None:
            samples = _kept_to(settings.section, before, samples, audio.sample_rate, ctx, name)
    if samples is audio.samples:
        return audio
    samples = end_like(audio.samples, samples, audio.sample_rate)
    return Audio.trusted(np.ascontiguousarray(samples), audio.sample_rate)
