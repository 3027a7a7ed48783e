"""Signal-processing building blocks shared by the style presets and the genre shift.

Every function takes and returns float32 arrays shaped ``(channels, frames)`` and is
deterministic: anything random (noise, crackle, drift) draws from a seeded generator, so a
recipe renders bit-identically every time. Filters are zero-latency IIR (scipy second-order
sections) so that styled audio stays aligned with the song's beat grid.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import signal

__all__ = [
    "lerp",
    "loglerp",
    "lowpass",
    "highpass",
    "bandpass",
    "varispeed",
    "pitch_shift",
    "time_stretch",
    "blockwise_speed",
    "modulated_delay",
    "rms",
    "pink_noise",
    "crackle",
    "feedback_delay",
    "bitcrush",
    "sample_and_hold",
    "equal_power_blend",
    "polyblep_saw",
]

_NYQUIST_MARGIN = 0.45  # never place a cutoff above this fraction of the sample rate


def lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation from ``a`` (t=0) to ``b`` (t=1)."""
    return a + (b - a) * t


def loglerp(a: float, b: float, t: float) -> float:
    """Geometric interpolation: equal steps of ``t`` are equal musical intervals (for frequencies)."""
    return a * (b / a) ** t


def _sos_filter(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    return signal.sosfilt(sos, x, axis=-1).astype(np.float32, copy=False)


def lowpass(x: np.ndarray, sr: int, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth low-pass; a cutoff at or above 0.45 * sr leaves the signal untouched."""
    if cutoff_hz >= _NYQUIST_MARGIN * sr:
        return x
    return _sos_filter(x, signal.butter(order, cutoff_hz, "lowpass", fs=sr, output="sos"))


def highpass(x: np.ndarray, sr: int, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Butterworth high-pass; a cutoff at or below 10 Hz leaves the signal untouched."""
    if cutoff_hz <= 10.0:
        return x
    return _sos_filter(x, signal.butter(order, cutoff_hz, "highpass", fs=sr, output="sos"))


def bandpass(x: np.ndarray, sr: int, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    """High-pass at ``low_hz`` then low-pass at ``high_hz``."""
    return lowpass(highpass(x, sr, low_hz, order=order), sr, high_hz, order=order)


def varispeed(x: np.ndarray, sr: int, speed: float) -> np.ndarray:
    """Play faster or slower like a turntable: pitch and tempo move together (speed 1.25 is 25 % faster).

    Implemented as a band-limited resample (soxr, very high quality) played back at the
    original rate; the output has ``round(frames / speed)`` frames.
    """
    if abs(speed - 1.0) < 1e-9:
        return x
    import soxr

    out = soxr.resample(np.ascontiguousarray(x.T), sr, sr / speed, quality="VHQ").T
    return np.ascontiguousarray(out, dtype=np.float32)


def _rubberband(
    x: np.ndarray,
    sr: int,
    speed: float | np.ndarray,
    semitones: float,
    formants: bool,
    high_quality: bool,
    short_window: bool,
):
    import pedalboard

    return pedalboard.time_stretch(
        np.ascontiguousarray(x),
        float(sr),
        stretch_factor=np.ascontiguousarray(speed, dtype=np.float64) if np.ndim(speed) else float(speed),
        pitch_shift_in_semitones=float(semitones),
        high_quality=high_quality,
        transient_mode="crisp",
        preserve_formants=formants,
        use_long_fft_window=False if short_window else None,
    ).astype(np.float32, copy=False)


def time_stretch(
    x: np.ndarray,
    sr: int,
    speed: float | np.ndarray = 1.0,
    semitones: float = 0.0,
    formants: bool = True,
    high_quality: bool = False,
    workers: int = 2,
    short_window: bool = False,
) -> np.ndarray:
    """Rubber Band tempo and pitch change, split across ``workers`` threads for long audio.

    The audio is cut into ``workers`` pieces at points a little apart from each other, each
    piece is processed with two seconds of context on both sides, and the pieces are joined
    with a 40 ms linear crossfade (the two renderings of the overlap are nearly identical, so
    equal-gain is the right law). The output has ``round(sum(1 / speed))`` frames.

    Args:
        x: audio [shape=(channels, frames)].
        sr: sample rate.
        speed: tempo factor (2.0 is twice as fast), or one factor per input frame (a time
            warp; Rubber Band follows changes at most every 1024 frames).
        semitones: pitch shift.
        formants: keep the formants (a natural voice) rather than shifting them with the pitch.
        high_quality: Rubber Band's finer engine, about 2.5x slower.
        workers: threads; pedalboard releases the GIL while it processes.
        short_window: the shorter analysis window (Rubber Band's choice for speech), about
            40 % faster, a little less smooth on low notes.
    """
    frames = x.shape[1]
    varying = np.ndim(speed) > 0
    if varying:
        speed = blockwise_speed(np.asarray(speed, dtype=np.float64), frames)
        # Output position of every input frame.
        position = np.concatenate([[0.0], np.cumsum(1.0 / speed)])
    elif abs(speed - 1.0) < 1e-9 and semitones == 0.0:
        return x
    else:
        position = None

    def out_at(frame: int) -> int:
        return int(round(position[frame])) if varying else int(round(frame / speed))

    def factor(a: int, b: int):
        return speed[a:b] if varying else speed

    want = out_at(frames)
    context = _RB_BLOCK * int(2 * sr // _RB_BLOCK)
    pieces = max(1, min(workers, frames // (20 * sr)))
    if pieces == 1:
        out = _rubberband(x, sr, factor(0, frames), semitones, formants, high_quality, short_window)
        return _fit(out, want)
    # Cuts and spans on Rubber Band's 1024-frame grid, so a varying speed changes where it should.
    cuts = [_RB_BLOCK * round(frames * k / pieces / _RB_BLOCK) for k in range(pieces)] + [frames]
    spans = [(max(0, cuts[k] - context), min(frames, cuts[k + 1] + context)) for k in range(pieces)]
    with ThreadPoolExecutor(pieces) as pool:
        rendered = list(
            pool.map(
                lambda s: _rubberband(
                    x[:, s[0] : s[1]], sr, factor(s[0], s[1]), semitones, formants, high_quality, short_window
                ),
                spans,
            )
        )
    fade = int(0.04 * sr)
    out = np.zeros((x.shape[0], want), dtype=np.float32)
    for k, ((start, _), piece) in enumerate(zip(spans, rendered)):
        # Where this piece's own part begins and ends, in output frames.
        own_start = 0 if k == 0 else out_at(cuts[k]) - fade // 2
        own_end = want if k == pieces - 1 else out_at(cuts[k + 1]) + fade - fade // 2
        offset = out_at(start)
        part = _fit(piece[:, own_start - offset :], own_end - own_start)
        weight = np.ones(own_end - own_start, dtype=np.float32)
        if k > 0:
            weight[:fade] = (np.arange(fade) + 0.5) / fade
        if k < pieces - 1:
            weight[-fade:] = 1.0 - (np.arange(fade) + 0.5) / fade
        out[:, own_start:own_end] += part * weight
    return out


_RB_BLOCK = 1024  # Rubber Band (through pedalboard) takes a new speed at most once per block


def blockwise_speed(speed: np.ndarray, frames: int) -> np.ndarray:
    """A per-frame speed made constant over each 1024-frame block, each block keeping its output length.

    Rubber Band applies a varying speed block by block; averaging within blocks (in output
    time) makes the realised timing match the planned one instead of drifting.
    """
    if speed.shape != (frames,):
        raise ValueError(f"a speed per frame needs {frames} values, got {speed.shape}")
    blocks = -(-frames // _RB_BLOCK)
    padded = np.pad(1.0 / speed, (0, blocks * _RB_BLOCK - frames), mode="edge").reshape(blocks, _RB_BLOCK)
    return np.repeat(1.0 / padded.mean(axis=1), _RB_BLOCK)[:frames]


def pitch_shift(x: np.ndarray, sr: int, semitones: float, formants: bool = True) -> np.ndarray:
    """Shift pitch by ``semitones`` with the tempo kept (Rubber Band's faster engine, threaded).

    With ``formants=False`` the pitch is moved by a turntable speed change (exact, and the
    formants move with it) and the length restored by a time-stretch, which costs about half
    of Rubber Band's own pitch shift. Measured within 3 cents on harmonic tones either way;
    the finer engine is 2.5x slower, which would put a 3-minute song over the styles' budget.
    """
    if semitones == 0.0:
        return x
    if formants:  # the short window: these shifts are for voices (and it is 40 % faster)
        return time_stretch(x, sr, 1.0, semitones, formants=True, short_window=True)
    speed = 2.0 ** (semitones / 12.0)
    return _fit(time_stretch(varispeed(x, sr, speed), sr, 1.0 / speed, 0.0), x.shape[1])


def _fit(x: np.ndarray, frames: int) -> np.ndarray:
    if x.shape[1] >= frames:
        return x[:, :frames]
    return np.pad(x, ((0, 0), (0, frames - x.shape[1])))


def modulated_delay(
    x: np.ndarray,
    sr: int,
    wow_ms: float,
    flutter_ms: float,
    seed: int,
    wow_hz: float = 0.55,
    flutter_hz: float = 6.5,
) -> np.ndarray:
    """Tape wow and flutter: read the signal at a slowly wandering position (zero-mean, so no drift)."""
    n = x.shape[1]
    if (wow_ms <= 0 and flutter_ms <= 0) or n < 2:
        return x
    t = np.arange(n, dtype=np.float64) / sr
    # A slightly irregular wow: two close slow sines, plus the faster flutter.
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    offset_s = (
        wow_ms * 1e-3 * (0.7 * np.sin(2 * np.pi * wow_hz * t + phase[0]) + 0.3 * np.sin(2 * np.pi * wow_hz * 1.37 * t + phase[1]))
        + flutter_ms * 1e-3 * np.sin(2 * np.pi * flutter_hz * t + phase[2])
    )
    position = np.clip(np.arange(n, dtype=np.float64) + offset_s * sr, 0, n - 1.000001)
    whole = position.astype(np.int64)
    frac = (position - whole).astype(np.float32)
    return (x[:, whole] * (1.0 - frac) + x[:, whole + 1] * frac).astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root mean square of the louder half of the signal's 100 ms blocks (ignores silences)."""
    return louder_half_rms(x, 4410)


def louder_half_rms(x: np.ndarray, block: int, every_channel: bool = False) -> float:
    """Root mean square of the louder half of ``block``-sample blocks [x: (channels, frames)]:
    of the mono mix, or with ``every_channel`` of all channels' power (so copies panned wide,
    which partly cancel in a mono mix, count in full)."""
    signal = x if every_channel else np.mean(x, axis=0, keepdims=True)
    usable = signal[:, : signal.shape[1] // block * block]
    if usable.size == 0:
        return float(np.sqrt(np.mean(signal**2))) if signal.size else 0.0
    energies = np.sort(np.mean(usable.reshape(signal.shape[0], -1, block) ** 2, axis=(0, 2)))
    return float(np.sqrt(np.mean(energies[len(energies) // 2 :])))


def pink_noise(channels: int, frames: int, seed: int) -> np.ndarray:
    """Unit-RMS pink-ish noise (white noise through Kellet's -3 dB/octave filter)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((channels, frames), dtype=np.float32)
    b = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786], dtype=np.float32)
    a = np.array([1, -2.494956002, 2.017265875, -0.522189400], dtype=np.float32)
    pink = signal.lfilter(b, a, white, axis=-1).astype(np.float32, copy=False)
    return pink / max(float(np.sqrt(np.mean(pink**2))), 1e-12)


def crackle(channels: int, frames: int, sr: int, per_second: float, seed: int) -> np.ndarray:
    """Vinyl crackle: sparse clicks of random size and polarity, each a short damped burst, band-limited.

    Peak-normalised to 1; the caller scales it.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((channels, frames), dtype=np.float32)
    count = rng.poisson(per_second * frames / sr)
    if count == 0 or frames < 64:
        return out
    positions = rng.integers(0, frames - 64, count)
    sizes = rng.pareto(2.5, count) + 0.2
    sizes /= sizes.max()
    signs = rng.choice([-1.0, 1.0], count)
    sides = rng.integers(0, channels, count)
    # Each impulse rings briefly (a tiny resonance near 3 kHz), band-limited: the burst is
    # shaped once and placed at every position, so the cost does not grow with the song.
    length = 64
    impulse = np.zeros(length)
    impulse[0] = 1.0
    burst = np.exp(-np.arange(length) / 6.0) * np.cos(2 * np.pi * 3000 * np.arange(length) / sr)
    burst = bandpass(signal.fftconvolve(impulse, burst)[np.newaxis, :length].astype(np.float32), sr, 300.0, 5000.0, 2)[0]
    index = positions[:, np.newaxis] + np.arange(length)[np.newaxis, :]
    np.add.at(out, (np.repeat(sides[:, np.newaxis], length, axis=1), index), (sizes * signs)[:, np.newaxis] * burst)
    return out / max(float(np.max(np.abs(out))), 1e-12)


def feedback_delay(
    x: np.ndarray, sr: int, delay_s: float, feedback: float, mix: float, damping_hz: float = 4500.0, ping_pong: bool = True
) -> np.ndarray:
    """An echo whose repeats get darker (a low-pass in the loop) and, in stereo, bounce left-right.

    Computed a whole delay-length block at a time (the recursion only reaches back one
    delay), so it is fast even for long songs.
    """
    if mix <= 0:
        return x
    d = max(1, int(round(delay_s * sr)))
    channels, n = x.shape
    sos = signal.butter(1, min(damping_hz, 0.45 * sr), "lowpass", fs=sr, output="sos")
    state = np.zeros((sos.shape[0], channels, 2))
    wet = np.zeros_like(x)
    previous = np.zeros((channels, d), dtype=np.float32)
    ping_pong = ping_pong and channels == 2
    source = x
    if ping_pong:  # the input feeds the left line only; every repeat crosses to the other side
        source = np.zeros_like(x)
        source[0] = x.mean(axis=0)
    for start in range(0, n, d):
        stop = min(n, start + d)
        fed = previous[:, : stop - start]
        if ping_pong:
            fed = fed[::-1]
        filtered, state = signal.sosfilt(sos, fed, axis=-1, zi=state)
        delayed_input = source[:, start - d : stop - d] if start >= d else np.zeros((channels, stop - start), np.float32)
        block = delayed_input + feedback * filtered
        wet[:, start:stop] = block
        previous = np.zeros((channels, d), dtype=np.float32)
        previous[:, : stop - start] = block
    return (x + mix * wet).astype(np.float32)


def bitcrush(x: np.ndarray, bits: float) -> np.ndarray:
    """Quantise to ``bits`` of resolution (fractional bits allowed, so the effect scales smoothly)."""
    if bits >= 24:
        return x
    step = 2.0 ** (1.0 - bits)
    return (np.round(x / step) * step).astype(np.float32)


def sample_and_hold(x: np.ndarray, sr: int, target_sr: float) -> np.ndarray:
    """Reduce the sample rate without an anti-alias filter (zero-order hold): the aliasing is the point."""
    if target_sr >= sr:
        return x
    hold = sr / target_sr
    index = (np.floor(np.arange(x.shape[1]) / hold) * hold).astype(np.int64)
    return x[:, np.minimum(index, x.shape[1] - 1)]


def equal_power_blend(dry: np.ndarray, wet: np.ndarray, amount: float) -> np.ndarray:
    """Crossfade from ``dry`` (0) to ``wet`` (1) with a constant-power law (for uncorrelated signals)."""
    a = math.sin(0.5 * math.pi * amount)
    b = math.cos(0.5 * math.pi * amount)
    return (b * dry + a * wet).astype(np.float32)


def polyblep_saw(phase: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """A band-limited (PolyBLEP) sawtooth in [-1, 1] from a phase in cycles and its per-sample increment."""
    t = phase % 1.0
    saw = 2.0 * t - 1.0
    dt = np.maximum(increment, 1e-9)
    head = t < dt
    x = t[head] / dt[head]
    saw[head] -= 2.0 * x - x * x - 1.0
    tail = t > 1.0 - dt
    x = (t[tail] - 1.0) / dt[tail]
    saw[tail] -= x * x + 2.0 * x + 1.0
    return saw
