"""The studio's picture of a version: spectrogram, waveform, sections and beat grid.

The listener sees where each section is ("loop the second chorus") and where the bars fall.
One PNG of about 1200x320 px, drawn with matplotlib's Agg backend through its
object-oriented API (no pyplot state), so several sessions can draw from different threads.

Layout, top to bottom: the title and length; a strip of coloured section bands with their
names at their starts; the waveform envelope over lighter bands; the spectrogram (mel-style
frequency scale, 30 Hz to 16 kHz, dB) with section boundaries and the beat grid; the time
axis in m:ss.

The numbers behind the picture are public and tested as numbers: :func:`layout_sections`
(which band goes where, what text fits), :func:`thin_beats` (which grid lines are drawn) and
:func:`spectrogram`.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tools.audio import Audio
from tools.errors import ParameterError
from tools.files import atomic_path

__all__ = [
    "draw_song",
    "layout_sections",
    "thin_beats",
    "spectrogram",
    "Spectrogram",
    "SectionBand",
    "format_time",
    "WIDTH_PX",
    "HEIGHT_PX",
    "PLOT_LEFT_PX",
    "PLOT_WIDTH_PX",
    "PANELS",
]

# --------------------------------------------------------------------------- layout (pixels)

WIDTH_PX = 1200
HEIGHT_PX = 320
DPI = 100
PLOT_LEFT_PX = 46
PLOT_RIGHT_MARGIN_PX = 14
PLOT_WIDTH_PX = WIDTH_PX - PLOT_LEFT_PX - PLOT_RIGHT_MARGIN_PX
# (top, bottom) rows of each panel, counted from the top of the picture.
PANELS: dict[str, tuple[int, int]] = {
    "sections": (28, 48),
    "waveform": (49, 97),
    "spectrogram": (98, 292),
}
TITLE_PT = 11.0
LABEL_PT = 8.5
TICK_PT = 7.5
LABEL_PAD_PX = 3.0
MIN_BEAT_GAP_PX = 6.0

# Section colours: the same kind of section has the same hue in every version (every chorus
# is orange); neighbours alternate between two tints, so two choruses in a row still read as two.
KIND_COLOURS = {
    "intro": "#8E9AAF",
    "outro": "#8E9AAF",
    "verse": "#56B4E9",
    "chorus": "#E69F00",
    "bridge": "#009E73",
    "drop": "#D55E00",
    "section": "#CC79A7",
}
OTHER_COLOURS = ("#CC79A7", "#0072B2", "#F0E442", "#B07AA1", "#9C755F", "#76B7B2")
STRIP_TINTS = (0.35, 0.62)  # share of white mixed into the hue, by band parity
WAVE_TINTS = (0.80, 0.90)

# --------------------------------------------------------------------------- spectrogram

MAX_COLUMNS = 2000
MIN_COLUMNS = 200
FRAME_BUDGET = 8192  # FFT frames per picture at most; long songs are sampled, not fully covered
N_BANDS = 128
FMIN_HZ = 30.0
FMAX_HZ = 16_000.0
SCALE_CORNER_HZ = 300.0  # linear below about this, logarithmic above (the mel scale uses 700)
DYNAMIC_RANGE_DB = 70.0
QUIETEST_TOP_DB = -40.0  # the colour scale's top is never below this, so silence stays dark
POWER_FLOOR = 1e-14  # -140 dB: no log of zero
SILENT_PEAK = 10 ** (-90 / 20)  # a version whose loudest sample is below -90 dBFS says "silence"

_DRAW_LOCK = threading.Lock()  # matplotlib's text and font caches are not thread-safe


# --------------------------------------------------------------------------- helpers


def format_time(seconds: float, step_s: float = 1.0) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour; tenths when ``step_s`` is under a second)."""
    seconds = max(0.0, float(seconds))
    if step_s < 1.0:
        tenths = int(round(seconds * 10))
        minutes, rest = divmod(tenths, 600)
        return f"{minutes}:{rest / 10:04.1f}"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _time_step(duration_s: float, max_ticks: int = 12) -> float:
    """Seconds between time ticks: at most ``max_ticks``, whole seconds from 3 s up."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if duration_s / step <= max_ticks and (step >= 1 or duration_s < 3):
            return float(step)
    return 7200.0 * math.ceil(duration_s / 7200.0 / max_ticks)


def _tint(colour: str, white: float) -> tuple[float, float, float]:
    """``colour`` mixed with ``white`` parts of white (0: the colour, 1: white)."""
    rgb = np.array([int(colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5)])
    return tuple(float(c) for c in rgb * (1.0 - white) + white)


@lru_cache(maxsize=4096)
def _text_width_px(text: str, size_pt: float, bold: bool = False) -> float:
    """Rendered width of ``text`` in pixels at ``size_pt`` in the default font."""
    if not text:
        return 0.0
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=size_pt, weight="bold" if bold else "normal")
    width_pt, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return width_pt * DPI / 72.0


def _fit_text(text: str, max_px: float, size_pt: float, bold: bool = False) -> str:
    """``text``, or its longest prefix with an ellipsis that fits in ``max_px``, or ``""``."""
    if _text_width_px(text, size_pt, bold) <= max_px:
        return text
    for cut in range(len(text) - 1, 0, -1):
        candidate = text[:cut].rstrip() + "\u2026"
        if _text_width_px(candidate, size_pt, bold) <= max_px:
            return candidate
    return ""


def _label_candidates(name: str) -> list[str]:
    """Ever shorter ways to write a section name: ``chorus 2``, ``chor… 2``, ``ch… 2``, ``C2``."""
    name = " ".join(name.split())
    match = re.fullmatch(r"(.*?)\s*(\d+)?", name)
    base, number = (match.group(1), match.group(2) or "") if match else (name, "")
    suffix = f" {number}" if number else ""
    out = [name]
    for cut in range(len(base) - 1, 1, -1):
        out.append(base[:cut].rstrip(" -_") + "\u2026" + suffix)
    initials = "".join(word[0] for word in re.split(r"[\s\-_]+", base) if word).upper()
    if initials or number:
        out.append(initials + number)
    return out


def _kind(name: str) -> str:
    """The kind of section a name stands for: ``chorus 2`` -> ``chorus``."""
    return re.sub(r"[\s\-_]*\d+$", "", name.strip()).lower()


# --------------------------------------------------------------------------- section layout


@dataclass(frozen=True)
class SectionBand:
    """Where one section is drawn.

    Attributes:
        name: the section's name as given.
        label: the text drawn at its start: the name, a shortened form, or ``""`` when
            nothing readable fits before the next section starts.
        start_s: start in seconds, clipped to the audio.
        end_s: end in seconds, clipped to the audio.
        x0_px: left edge in picture pixels (from the left of the image).
        x1_px: right edge in picture pixels.
        label_x_px: where the label text starts, in picture pixels.
        label_width_px: the label's rendered width in pixels (0 when nothing is drawn).
        shade: 0 or 1, alternating from band to band.
        colour: the band's fill in the section strip, as RGB in 0..1.
        wave_colour: the band's fill behind the waveform, lighter.
    """

    name: str
    label: str
    start_s: float
    end_s: float
    x0_px: float
    x1_px: float
    label_x_px: float
    label_width_px: float
    shade: int
    colour: tuple[float, float, float]
    wave_colour: tuple[float, float, float]


def _section_fields(section: Any) -> tuple[str, float, float]:
    """``(name, start, end)`` from a tuple or an object with ``name``, ``start`` and ``end``."""
    if isinstance(section, (tuple, list)) and len(section) == 3:
        name, start, end = section
    elif all(hasattr(section, key) for key in ("name", "start", "end")):
        name, start, end = section.name, section.start, section.end
    else:
        raise ParameterError(f"a section must be (name, start_s, end_s), got {section!r}")
    try:
        return str(name), float(start), float(end)
    except (TypeError, ValueError):
        raise ParameterError(f"section times must be numbers, got {section!r}") from None


def layout_sections(
    sections: Iterable[Any],
    duration_s: float,
    *,
    left_px: float = PLOT_LEFT_PX,
    width_px: float = PLOT_WIDTH_PX,
    size_pt: float = LABEL_PT,
    measure: Callable[[str], float] | None = None,
) -> list[SectionBand]:
    """Lay out section bands and their labels along the time axis.

    Sections are sorted by start and clipped to ``0..duration_s``; empty or non-finite ones
    are dropped. Each label starts just inside its band and may use the room up to the next
    band's start (the right edge for the last band); a name that does not fit is shortened
    (``chorus 2`` -> ``chor… 2`` -> ``C2``) and left out when even that does not fit, so
    labels never overlap.

    Args:
        sections: ``(name, start_s, end_s)`` tuples, or objects with ``name``, ``start``, ``end``.
        duration_s: length of the audio in seconds (> 0).
        left_px: the image column where time 0 is drawn.
        width_px: pixels from time 0 to ``duration_s``.
        size_pt: label font size in points.
        measure: text width in pixels; the default measures the default font at ``size_pt``.

    Returns:
        One :class:`SectionBand` per drawn section, in time order.
    """
    if not duration_s > 0:
        raise ParameterError(f"duration_s must be positive, got {duration_s!r}")
    measure = measure or (lambda text: _text_width_px(text, size_pt))
    scale = width_px / duration_s
    spans = []
    for section in sections or ():
        name, start, end = _section_fields(section)
        if not (math.isfinite(start) and math.isfinite(end)):
            continue
        start, end = max(0.0, start), min(duration_s, end)
        if end > start:
            spans.append((start, end, name))
    spans.sort(key=lambda span: (span[0], span[1]))

    hues: dict[str, str] = {}
    others = iter(OTHER_COLOURS * (1 + len(spans)))
    bands = []
    for index, (start, end, name) in enumerate(spans):
        kind = _kind(name)
        if kind not in hues:
            hues[kind] = KIND_COLOURS.get(kind) or next(others)
        x0, x1 = left_px + start * scale, left_px + end * scale
        room_end = left_px + spans[index + 1][0] * scale if index + 1 < len(spans) else left_px + width_px
        room = room_end - x0 - 2 * LABEL_PAD_PX
        label = next((text for text in _label_candidates(name) if measure(text) <= room), "")
        shade = index % 2
        bands.append(
            SectionBand(
                name=name,
                label=label,
                start_s=start,
                end_s=end,
                x0_px=x0,
                x1_px=x1,
                label_x_px=x0 + LABEL_PAD_PX,
                label_width_px=measure(label) if label else 0.0,
                shade=shade,
                colour=_tint(hues[kind], STRIP_TINTS[shade]),
                wave_colour=_tint(hues[kind], WAVE_TINTS[shade]),
            )
        )
    return bands


# --------------------------------------------------------------------------- beat grid


def _clean_times(times: Iterable[float] | None, duration_s: float) -> np.ndarray:
    values = np.asarray([float(t) for t in (() if times is None else times)], dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values) & (values >= 0.0) & (values <= duration_s)]
    return np.unique(values)


def _every_kth(times: np.ndarray, px_per_s: float, min_gap_px: float) -> np.ndarray:
    """``times``, or every 2nd, 4th, 8th... of them, so their typical spacing is ``min_gap_px`` or more."""
    if times.size < 2:
        return times
    gap_px = float(np.median(np.diff(times))) * px_per_s
    if gap_px >= min_gap_px:
        return times
    if gap_px <= 0:
        return times[:1]
    k = 2 ** math.ceil(math.log2(min_gap_px / gap_px))
    return times[::k]


def thin_beats(
    beats: Iterable[float],
    downbeats: Iterable[float],
    duration_s: float,
    *,
    width_px: float = PLOT_WIDTH_PX,
    min_gap_px: float = MIN_BEAT_GAP_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """The beat and downbeat lines worth drawing at this width.

    Beats are drawn only when they are at least ``min_gap_px`` apart (typically); otherwise
    only downbeats remain (or every 2nd, 4th... beat when there are no downbeats). Downbeats
    closer than ``min_gap_px`` are thinned to every 2nd, 4th... bar. A beat on a downbeat is
    drawn once, as a downbeat. Times outside ``0..duration_s`` or not finite are dropped.

    Returns:
        ``(beats, downbeats)`` to draw, in seconds, sorted.
    """
    if not duration_s > 0:
        raise ParameterError(f"duration_s must be positive, got {duration_s!r}")
    px_per_s = width_px / duration_s
    beats_s, downbeats_s = _clean_times(beats, duration_s), _clean_times(downbeats, duration_s)
    if downbeats_s.size:
        if beats_s.size >= 2 and float(np.median(np.diff(beats_s))) * px_per_s < min_gap_px:
            beats_s = beats_s[:0]
        else:
            # Drop the beats that sit on a downbeat (within a pixel).
            nearest = np.abs(beats_s[:, None] - downbeats_s[None, :]).min(axis=1) if beats_s.size else beats_s
            beats_s = beats_s[nearest * px_per_s >= 1.0]
    else:
        beats_s = _every_kth(beats_s, px_per_s, min_gap_px)
    return beats_s, _every_kth(downbeats_s, px_per_s, min_gap_px)


# --------------------------------------------------------------------------- spectrogram


@dataclass(frozen=True)
class Spectrogram:
    """A mel-style power spectrogram in dB.

    Attributes:
        db: float32 [shape=(bands, columns)], lowest band first; power relative to a
            full-scale sine, floored at -140 dB.
        duration_s: the time the columns span, 0 to ``duration_s``.
        fmin_hz: the lowest band's lower edge.
        fmax_hz: the highest band's upper edge.
    """

    db: np.ndarray
    duration_s: float
    fmin_hz: float
    fmax_hz: float

    def band_position(self, freq_hz: float) -> float:
        """Where ``freq_hz`` falls on the band axis, 0 (fmin) to ``bands`` (fmax)."""
        low, high = _scale(self.fmin_hz), _scale(self.fmax_hz)
        return (_scale(freq_hz) - low) / (high - low) * self.db.shape[0]


def _scale(freq_hz):
    return np.log1p(np.asarray(freq_hz, dtype=np.float64) / SCALE_CORNER_HZ)


def _unscale(value):
    return SCALE_CORNER_HZ * np.expm1(value)


@lru_cache(maxsize=16)
def _filterbank(sample_rate: int, n_fft: int, bands: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular bands [shape=(bins, bands)], each a weighted mean of FFT bins (columns sum to 1).

    A band narrower than the bin spacing (the lowest ones) takes its centre frequency's two
    neighbouring bins by linear interpolation, so no band is ever empty.
    """
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = _unscale(np.linspace(_scale(fmin_hz), _scale(fmax_hz), bands + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - low) / (centre - low)
    falling = (high - bins[None, :]) / (high - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)  # (bands, bins)
    spacing = sample_rate / n_fft
    for band in np.flatnonzero((weights > 0).sum(axis=1) < 2):
        position = float(np.clip(edges[band + 1] / spacing, 0, bins.size - 1))
        below = int(math.floor(position))
        above = min(below + 1, bins.size - 1)
        weights[band] = 0.0
        weights[band, below] += 1.0 - (position - below)
        weights[band, above] += position - below
    weights /= weights.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(weights.T.astype(np.float32))


@lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _mono(audio: Audio) -> tuple[np.ndarray, int]:
    """The channel mean as float32, and its rate: above 80 kHz, averaged down by a whole factor.

    The average of ``q`` neighbouring samples is a crude anti-alias filter; what it lets fold
    down comes from above 20 kHz, where music has next to nothing, and this is only a picture.
    """
    mono = audio.samples[0] if audio.channels == 1 else audio.to_mono()
    factor = max(1, audio.sample_rate // 40_000)
    if factor == 1:
        return mono, audio.sample_rate
    usable = mono.size - mono.size % factor
    if usable == 0:
        return mono[:1].copy(), audio.sample_rate // factor
    return mono[:usable].reshape(-1, factor).mean(axis=1, dtype=np.float32), audio.sample_rate // factor


def spectrogram(
    audio: Audio,
    *,
    max_columns: int = MAX_COLUMNS,
    bands: int = N_BANDS,
    fmin_hz: float = FMIN_HZ,
    fmax_hz: float = FMAX_HZ,
) -> Spectrogram:
    """The mono mix's mel-style power spectrogram, at most ``max_columns`` wide.

    Windows of about 46 ms (a power of two in samples) are taken half-overlapping over the
    whole song (evenly sampled when that would exceed ``FRAME_BUDGET`` windows); the power
    of neighbouring windows is averaged into each column, then into ``bands`` triangular
    bands from ``fmin_hz`` to ``fmax_hz`` (capped below the Nyquist frequency).
    """
    mono, sample_rate = _mono(audio)
    return _spectrogram(mono, sample_rate, audio.duration_s, max_columns, bands, fmin_hz, fmax_hz)


def _spectrogram(
    mono: np.ndarray, sample_rate: int, duration_s: float, max_columns: int, bands: int, fmin_hz: float, fmax_hz: float
) -> Spectrogram:
    from scipy import fft

    if max_columns < 1 or bands < 1:
        raise ParameterError(f"max_columns and bands must be positive, got {max_columns}, {bands}")
    fmax_hz = min(float(fmax_hz), 0.475 * sample_rate)
    fmin_hz = min(float(fmin_hz), fmax_hz / 4.0)
    n_fft = 1 << max(8, round(math.log2(0.046 * sample_rate)))
    if mono.size < n_fft:  # shorter than one window: one window, the sound at its centre
        before = (n_fft - mono.size) // 2
        mono = np.pad(mono, (before, n_fft - mono.size - before))
    span = mono.size - n_fft
    frames = min(FRAME_BUDGET, -(-span // (n_fft // 2)) + 1)
    frames = max(frames, min(MIN_COLUMNS, span + 1))
    group = -(-frames // max_columns)
    columns = -(-frames // group)
    frames = columns * group
    starts = np.round(np.linspace(0, span, frames)).astype(np.int64)

    window = _window(n_fft)
    norm = np.float32((2.0 / window.sum()) ** 2)  # a full-scale sine's peak bin -> 0 dB
    view = np.lib.stride_tricks.sliding_window_view(mono, n_fft)
    pooled = np.empty((columns, n_fft // 2 + 1), np.float32)
    chunk = max(1, 256 // group) * group  # whole columns per chunk, a few MB at a time
    for first in range(0, frames, chunk):
        block = view[starts[first : first + chunk]] * window
        spectrum = fft.rfft(block, axis=1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        column = first // group
        pooled[column : column + block.shape[0] // group] = power.reshape(-1, group, power.shape[1]).mean(axis=1)
    # One matrix product for the whole song: many small ones stall when the cores are busy.
    out = pooled @ (_filterbank(sample_rate, n_fft, bands, fmin_hz, fmax_hz) * norm)
    db = 10.0 * np.log10(np.maximum(out.T, POWER_FLOOR))
    return Spectrogram(db=db.astype(np.float32), duration_s=duration_s, fmin_hz=fmin_hz, fmax_hz=fmax_hz)


def _envelope(mono: np.ndarray, sample_rate: int, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: centre time in seconds, peak and RMS of the mono mix (full scale 1)."""
    columns = max(1, min(columns, mono.size))
    edges = np.linspace(0, mono.size, columns + 1).astype(np.int64)
    peak = np.maximum.reduceat(np.abs(mono), edges[:-1])
    energy = np.add.reduceat(np.square(mono), edges[:-1]).astype(np.float64)
    rms = np.sqrt(energy / np.diff(edges))
    times = (edges[:-1] + edges[1:]) / 2.0 / sample_rate
    return times, peak, rms


# --------------------------------------------------------------------------- drawing

FREQUENCY_TICKS = ((100, "100"), (500, "500"), (1000, "1k"), (2000, "2k"), (5000, "5k"), (10000, "10k"))
TEXT = "#1A1A1A"
MUTED = "#555555"


def _axes(figure, panel: str, duration_s: float, ylim: tuple[float, float], background: str | None = None):
    """A panel's axes, exactly over its pixel rows, without axis machinery (drawn by hand)."""
    from matplotlib.patches import Rectangle

    top, bottom = PANELS[panel]
    axes = figure.add_axes(
        (PLOT_LEFT_PX / WIDTH_PX, 1.0 - bottom / HEIGHT_PX, PLOT_WIDTH_PX / WIDTH_PX, (bottom - top) / HEIGHT_PX)
    )
    axes.set_axis_off()
    axes.set_xlim(0.0, duration_s)
    axes.set_ylim(*ylim)
    if background:
        axes.add_patch(
            Rectangle((0, 0), 1, 1, transform=axes.transAxes, facecolor=background, edgecolor="none", zorder=0)
        )
    return axes


def _time_ticks(axes, duration_s: float) -> None:
    """Tick marks and m:ss labels under ``axes``; labels that would leave the picture are dropped."""
    height = PANELS["spectrogram"][1] - PANELS["spectrogram"][0]
    step = _time_step(duration_s)
    ticks = np.arange(0.0, duration_s + 1e-9, step)
    kept = []
    for t in ticks:
        label = format_time(t, step)
        x = PLOT_LEFT_PX + t / duration_s * PLOT_WIDTH_PX
        if x + _text_width_px(label, TICK_PT + 0.5) / 2 <= WIDTH_PX - 1:
            kept.append((t, label))
    transform = axes.get_xaxis_transform()
    axes.vlines(
        [t for t, _ in kept], -3.0 / height, 0.0, transform=transform, colors="#777777", lw=0.8, clip_on=False
    )
    for t, label in kept:
        axes.text(
            t, -5.0 / height, label, transform=transform, ha="center", va="top", fontsize=TICK_PT + 0.5, color=TEXT,
            clip_on=False,
        )


def _frequency_ticks(figure, axes, spec: Spectrogram) -> None:
    """Tick marks and labels (Hz) left of the spectrogram."""
    transform = axes.get_yaxis_transform()
    ticks = [(spec.band_position(f), label) for f, label in FREQUENCY_TICKS if spec.fmin_hz <= f <= spec.fmax_hz]
    axes.hlines(
        [y for y, _ in ticks], -3.0 / PLOT_WIDTH_PX, 0.0, transform=transform, colors="#777777", lw=0.8, clip_on=False
    )
    for y, label in ticks:
        axes.text(
            -5.0 / PLOT_WIDTH_PX, y, label, transform=transform, ha="right", va="center", fontsize=TICK_PT, color=MUTED,
            clip_on=False,
        )
    top, bottom = PANELS["spectrogram"]
    figure.text(4 / WIDTH_PX, 1.0 - (top + bottom) / 2 / HEIGHT_PX, "Hz", rotation=90, ha="left", va="center",
                fontsize=TICK_PT, color=MUTED)


def _draw(figure, duration: float, spec: Spectrogram, envelope, bands, beats_s, downbeats_s, title: str) -> None:
    from matplotlib.patches import Rectangle

    figure.patch.set_facecolor("white")

    # Title and length.
    length = format_time(duration, 1.0 if duration >= 10 else 0.1)
    top_y = 1.0 - 7 / HEIGHT_PX
    right_x = 1.0 - PLOT_RIGHT_MARGIN_PX / WIDTH_PX
    figure.text(right_x, top_y, length, ha="right", va="top", fontsize=TICK_PT + 1.5, color=MUTED)
    if title:
        room = PLOT_WIDTH_PX - _text_width_px(length, TICK_PT + 1.5) - 24
        text = _fit_text(" ".join(str(title).split()), room, TITLE_PT, bold=True)
        figure.text(PLOT_LEFT_PX / WIDTH_PX, top_y, text, ha="left", va="top", fontsize=TITLE_PT, fontweight="bold",
                    color=TEXT)

    # Section strip: coloured bands, names at their starts.
    seconds_per_px = duration / PLOT_WIDTH_PX
    strip = _axes(figure, "sections", duration, (0.0, 1.0), background="#EDEDED")
    for band in bands:
        strip.add_patch(
            Rectangle((band.start_s, 0), band.end_s - band.start_s, 1, facecolor=band.colour, edgecolor="white", lw=1.0)
        )
        if band.label:
            strip.text(band.start_s + LABEL_PAD_PX * seconds_per_px, 0.47, band.label, ha="left", va="center",
                       fontsize=LABEL_PT, color="#111111")

    # Waveform envelope (peak light, RMS dark) over lighter bands, with the beat grid.
    wave = _axes(figure, "waveform", duration, (-1.05, 1.05), background="#F7F7F7")
    for band in bands:
        wave.axvspan(band.start_s, band.end_s, facecolor=band.wave_colour, edgecolor="none")
    if downbeats_s.size:
        wave.vlines(downbeats_s, -1.05, 1.05, colors="#000000", alpha=0.18, lw=0.7)
    if beats_s.size:
        wave.vlines(beats_s, -1.05, 1.05, colors="#000000", alpha=0.08, lw=0.5)
    times, peak, rms = envelope
    wave.axhline(0.0, color="#B0B0B0", lw=0.6)
    wave.fill_between(times, -peak, peak, color="#7A7A7A", lw=0, step="mid")
    wave.fill_between(times, -rms, rms, color="#2B2B2B", lw=0, step="mid")

    # Spectrogram with the beat grid and section boundaries.
    bands_count = spec.db.shape[0]
    ax = _axes(figure, "spectrogram", duration, (0.0, bands_count))
    top = max(float(spec.db.max()), QUIETEST_TOP_DB)
    ax.imshow(
        spec.db, origin="lower", aspect="auto", extent=(0.0, duration, 0.0, bands_count), cmap="magma",
        vmin=top - DYNAMIC_RANGE_DB, vmax=top, interpolation="bilinear",
    )
    ax.set_xlim(0.0, duration)
    ax.set_ylim(0.0, bands_count)
    if beats_s.size:
        ax.vlines(beats_s, 0, bands_count, colors="white", alpha=0.16, lw=0.5)
    if downbeats_s.size:
        ax.vlines(downbeats_s, 0, bands_count, colors="white", alpha=0.38, lw=0.7)
    starts = [band.start_s for band in bands if band.start_s > 0]
    if starts:
        ax.vlines(starts, 0, bands_count, colors="white", alpha=0.95, lw=1.3)
        wave.vlines(starts, -1.05, 1.05, colors="white", lw=1.3)

    if float(peak.max(initial=0.0)) < SILENT_PEAK:
        ax.text(0.5, 0.5, "silence", transform=ax.transAxes, ha="center", va="center", fontsize=LABEL_PT + 1,
                color="#9A9A9A")
    _frequency_ticks(figure, ax, spec)
    _time_ticks(ax, duration)


def draw_song(
    audio: Audio,
    path: str | os.PathLike,
    sections: Sequence[Any] = (),
    beats: Sequence[float] = (),
    downbeats: Sequence[float] = (),
    title: str = "",
) -> Path:
    """Write a PNG picture of ``audio`` to ``path`` and return the path.

    Args:
        audio: the version the listener is hearing.
        path: where the PNG goes; written to a temporary file beside it and renamed into
            place, so ``path`` is never a partial picture. Its folder is created if missing.
        sections: ``(name, start_s, end_s)`` tuples (or objects with ``name``, ``start``,
            ``end``), in the time of ``audio``; may be empty.
        beats: beat times in seconds; may be empty.
        downbeats: bar-start times in seconds; may be empty.
        title: written at the top; shortened with an ellipsis when too long.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ParameterError: if ``audio`` is not an :class:`~tools.audio.Audio` or a section is
            malformed.
    """
    if not isinstance(audio, Audio):
        raise ParameterError(f"audio must be tools.audio.Audio, got {type(audio).__name__}")
    path = Path(path)
    duration = audio.duration_s
    mono, rate = _mono(audio)
    spec = _spectrogram(mono, rate, duration, MAX_COLUMNS, N_BANDS, FMIN_HZ, FMAX_HZ)
    envelope = _envelope(mono, rate, PLOT_WIDTH_PX)
    del mono
    beats_s, downbeats_s = thin_beats(beats, downbeats, duration)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _DRAW_LOCK:
        bands = layout_sections(sections, duration)
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        try:
            FigureCanvasAgg(figure)
            _draw(figure, duration, spec, envelope, bands, beats_s, downbeats_s, title)
            with atomic_path(path, suffix=".png") as partial:
                figure.savefig(partial, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 3})
        finally:
            figure.clear()
    return path
