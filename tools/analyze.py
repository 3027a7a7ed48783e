"""Music analysis: tempo, beats, meter and downbeats, key, loudness and labelled sections.

``analyze(audio)`` is a pure function of the samples; ``analyze_cached`` keeps its result as
JSON on disk, keyed by the source and ``ANALYSIS_VERSION``. librosa (and so numba) is imported
lazily inside functions so that ``prepare_numba_cache`` can point numba's cache at the data
directory before the first import.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .audio import Audio
from .errors import ParameterError
from .files import atomic_write_bytes
from .loudness import integrated_lufs

__all__ = [
    "ANALYSIS_VERSION",
    "Analysis",
    "Section",
    "SectionLabel",
    "analyze",
    "analyze_cached",
    "prepare_numba_cache",
]

log = logging.getLogger(__name__)

# Bump whenever a change to the method changes results: it is part of the cache key.
ANALYSIS_VERSION = 2

ANALYSIS_SAMPLE_RATE = 22_050
HOP_LENGTH = 512
ONSET_LATENCY_FRAMES = 1.0
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SectionLabel = Literal["intro", "verse", "chorus", "bridge", "drop", "outro", "section"]

# Audio shorter than this, or quieter than this RMS, gets a single section and no beats.
MIN_RHYTHM_DURATION_S = 2.0
SILENCE_RMS = 1e-4
MIN_BPM = 40.0
# Section finding: novelty peaks must exceed mean + this many standard deviations; sections
# whose aligned bar-by-bar similarity passes REPEAT_THRESHOLD are repeats of each other.
NOVELTY_THRESHOLD_STD = 0.25
REPEAT_THRESHOLD = 0.6
MAX_BPM = 240.0

# Krumhansl-Kessler key profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
    "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6,
}  # fmt: skip


class Section(BaseModel):
    """One contiguous part of the song.

    Attributes:
        id: stable identifier in time order, ``"s0"``, ``"s1"``, ...
        name: what a listener calls it: the label, plus the ordinal when the label occurs more
            than once (``"verse 2"``).
        label: its role in the song.
        ordinal: 1-based count of this label in time order.
        start: start time in seconds.
        end: end time in seconds.
        energy: RMS of the section relative to the loudest section, 0..1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    label: SectionLabel
    ordinal: int = Field(ge=1)
    start: float = Field(ge=0.0)
    end: float = Field(ge=0.0)
    energy: float = Field(ge=0.0, le=1.0)

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class Analysis(BaseModel):
    """What the engine knows about a song.

    Attributes:
        duration_s: length of the audio in seconds.
        sample_rate: the sample rate of the analysed source.
        tempo: global tempo in beats per minute; 0 when no beat was found (silence, very
            short audio).
        beats: beat times in seconds.
        downbeats: bar-start times in seconds (a subset of ``beats``).
        beats_per_bar: 3 or 4.
        sections: contiguous sections covering ``0..duration_s``.
        key: tonic pitch class, ``"C"`` ... ``"B"``.
        mode: ``"major"`` or ``"minor"``.
        key_confidence: correlation of the chroma with the winning key profile (-1..1).
        loudness_lufs: integrated loudness, ``None`` for silence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: float
    sample_rate: int
    tempo: float
    beats: list[float]
    downbeats: list[float]
    beats_per_bar: Literal[3, 4]
    sections: list[Section]
    key: Literal["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    mode: Literal["major", "minor"]
    key_confidence: float
    loudness_lufs: float | None

    def section_names(self) -> list[str]:
        """The names of all sections in time order."""
        return [section.name for section in self.sections]

    def find_section(self, name: str) -> Section:
        """The section a listener means by ``name``.

        Accepts a section name (``"verse 2"``), a bare label meaning its first occurrence
        (``"chorus"``), ordinal words (``"the second chorus"``, ``"3rd verse"``), ``"last"`` /
        ``"final"`` (``"last chorus"``) and a section id (``"s3"``).

        Raises:
            ParameterError: no such section; the message lists the sections that exist.
        """
        text = re.sub(r"\s+", " ", str(name).strip().lower())
        text = re.sub(r"^the ", "", text)
        for section in self.sections:
            if text in (section.id, section.name):
                return section
        ordinal: int | None = 1
        last = False
        words = text.replace("-", " ").split(" ")
        label_words: list[str] = []
        for word in words:
            if word in ("last", "final"):
                last = True
            elif word in _ORDINAL_WORDS:
                ordinal = _ORDINAL_WORDS[word]
            elif word.isdigit():
                ordinal = int(word)
            elif word:
                label_words.append(word)
        label = " ".join(label_words)
        for plural in ("es", "s"):  # "choruses", "verses"
            if label.endswith(plural) and label[: -len(plural)] in SectionLabel.__args__:
                label = label[: -len(plural)]
        matches = [section for section in self.sections if section.label == label]
        if matches:
            if last:
                return matches[-1]
            if ordinal is not None and 1 <= ordinal <= len(matches):
                return matches[ordinal - 1]
        available = ", ".join(f"{s.name} ({s.id})" for s in self.sections)
        raise ParameterError(f"no section {name!r} in this song; the sections are: {available}")


def prepare_numba_cache(settings) -> None:
    """Point numba's on-disk cache at ``settings.data_dir / "numba"`` unless already set.

    Must run before librosa (and so numba) is first imported; later calls have no effect on
    an already-imported numba.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    cache_dir = Path(settings.data_dir) / "numba"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only data dir must not stop the analysis
        log.warning("cannot create numba cache dir %s: %s", cache_dir, exc)
        return
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)


def analyze_cached(audio: Audio, source_key: str, settings) -> Analysis:
    """``analyze(audio)``, kept as JSON in ``settings.cache_dir / "analysis"``.

    Args:
        audio: the source audio.
        source_key: identifies the source (e.g. its content hash); letters, digits, ``-_.``.
        settings: engine settings (``cache_dir``).

    A cache file that cannot be read or validated is ignored and rewritten. Writes are
    atomic (a temporary file renamed into place).
    """
    if not source_key or not re.fullmatch(r"[A-Za-z0-9._-]+", source_key) or source_key.startswith("."):
        raise ParameterError(f"source_key={source_key!r} must be a non-empty string of letters, digits, '-', '_' or '.'")
    cache_dir = Path(settings.cache_dir) / "analysis"
    path = cache_dir / f"{source_key}-v{ANALYSIS_VERSION}.json"
    if path.exists():
        try:
            return Analysis.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable analysis cache %s: %s", path, exc)
    prepare_numba_cache(settings)
    result = analyze(audio)
    try:
        atomic_write_bytes(path, json.dumps(result.model_dump(mode="json")).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot write analysis cache %s: %s", path, exc)
    return result


def analyze(audio: Audio) -> Analysis:
    """Tempo, beats, meter, downbeats, key, loudness and labelled sections of ``audio``.

    Args:
        audio: any rate, any number of channels; analysed as a 22.05 kHz mono mixdown
            (loudness on the original).

    Returns:
        The analysis. Silent or very short audio (under about 2 s) gets tempo 0, no beats
        and a single section rather than an error.
    """
    if not isinstance(audio, Audio):
        raise ParameterError(f"analyze() needs an Audio, got {type(audio).__name__}")
    duration_s = audio.duration_s
    lufs = integrated_lufs(audio)
    loudness_lufs = round(lufs, 2) if math.isfinite(lufs) else None

    y = _mono_for_analysis(audio)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if duration_s < MIN_RHYTHM_DURATION_S or rms < SILENCE_RMS:
        key, mode, confidence = _estimate_key_simple(y) if rms >= SILENCE_RMS else ("C", "major", 0.0)
        return Analysis(
            duration_s=duration_s,
            sample_rate=audio.sample_rate,
            tempo=0.0,
            beats=[],
            downbeats=[],
            beats_per_bar=4,
            sections=[_make_section(0, "section", 1, 0.0, duration_s, 1.0 if rms >= SILENCE_RMS else 0.0, False)],
            key=key,
            mode=mode,
            key_confidence=confidence,
            loudness_lufs=loudness_lufs,
        )

    feats = _features(y)
    tempo_bpm, beat_frames, beat_positions = _tempo_and_beats(feats)
    beats_per_bar, phase = _meter_and_phase(feats, beat_frames)
    downbeat_frames = beat_frames[phase::beats_per_bar]
    beat_times = frames_to_seconds(beat_positions)
    downbeat_times = beat_times[phase::beats_per_bar]
    key_index, mode, confidence = _estimate_key(y)
    sections = _structure(feats, beat_frames, downbeat_frames, duration_s)

    return Analysis(
        duration_s=duration_s,
        sample_rate=audio.sample_rate,
        tempo=round(float(tempo_bpm), 2),
        beats=[round(float(t), 4) for t in beat_times],
        downbeats=[round(float(t), 4) for t in downbeat_times],
        beats_per_bar=beats_per_bar,
        sections=sections,
        key=PITCH_CLASSES[key_index],
        mode=mode,
        key_confidence=round(float(confidence), 4),
        loudness_lufs=loudness_lufs,
    )


# ----------------------------------------------------------------------------------------
# Features


def _mono_for_analysis(audio: Audio) -> np.ndarray:
    """Mono mixdown at the analysis rate, float32 [shape=(frames,)]."""
    mono = Audio(audio.to_mono()[np.newaxis, :], audio.sample_rate)
    return np.ascontiguousarray(mono.resample(ANALYSIS_SAMPLE_RATE).samples[0], dtype=np.float32)


def frames_to_seconds(frames: np.ndarray) -> np.ndarray:
    """Onset-envelope frame positions to seconds.

    The spectral-flux peak of an onset lands about one frame before the onset itself (the
    centred analysis window sees it early); measured on click tracks, this is corrected here.
    """
    times = (np.asarray(frames, dtype=np.float64) + ONSET_LATENCY_FRAMES) * HOP_LENGTH / ANALYSIS_SAMPLE_RATE
    return np.maximum(times, 0.0)


def _features(y: np.ndarray) -> dict[str, np.ndarray]:
    """Frame-level features shared by every stage (hop ``HOP_LENGTH``)."""
    import librosa

    sr = ANALYSIS_SAMPLE_RATE
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP_LENGTH))
    power = stft**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=96, fmax=11_000)
    mel_db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=HOP_LENGTH, center=False)
    # Low band (below about 200 Hz): kick drum and bass note onsets mark strong beats.
    mel_freqs = librosa.mel_frequencies(n_mels=96, fmax=11_000)
    low = mel_freqs < 200.0
    # Log-compressed magnitude rather than dB: in dB, leakage from any transient into quiet
    # low bands looks like a large onset.
    low_mel = np.log1p(1000.0 * mel[low] / (mel.max() + 1e-12))
    onset_low = librosa.onset.onset_strength(S=low_mel, sr=sr, hop_length=HOP_LENGTH, center=False)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=14)[1:]
    with warnings.catch_warnings():  # tuning estimation warns on unpitched input (click tracks)
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_cqt(
            y=y, sr=sr, hop_length=HOP_LENGTH, bins_per_octave=36, n_octaves=6, fmin=librosa.note_to_hz("C1")
        )
    rms = librosa.feature.rms(S=stft, frame_length=2048, hop_length=HOP_LENGTH)[0]
    frames = min(onset.shape[-1], chroma.shape[-1], mfcc.shape[-1], rms.shape[-1])
    return {
        "onset": onset[:frames],
        "onset_low": onset_low[:frames],
        "mfcc": mfcc[:, :frames],
        "chroma": chroma[:, :frames],
        "rms": rms[:frames],
    }


# ----------------------------------------------------------------------------------------
# Tempo and beats


def _tempo_prior(bpm: np.ndarray) -> np.ndarray:
    """Weight of each tempo: flat over 80..160 bpm, falling off by an octave outside."""
    octaves_out = np.maximum(np.log2(80.0 / np.maximum(bpm, 1e-3)), 0) + np.maximum(np.log2(bpm / 160.0), 0)
    return np.exp(-0.5 * (octaves_out / 0.35) ** 2)


def _tempo_and_beats(feats: dict[str, np.ndarray]) -> tuple[float, np.ndarray, np.ndarray]:
    """Global tempo (bpm), beat frames, and beat positions refined to fractions of a frame."""
    import librosa

    onset = feats["onset"]
    frame_rate = ANALYSIS_SAMPLE_RATE / HOP_LENGTH
    # Autocorrelation of the whole onset envelope: sharper than the windowed tempogram.
    env = onset - onset.mean()
    max_lag = int(frame_rate * 60.0 / MIN_BPM) + 2
    ac = librosa.autocorrelate(env, max_size=max_lag + 1)
    ac = ac / (ac[0] + 1e-12)
    lags = np.arange(1, len(ac))
    bpm = 60.0 * frame_rate / lags
    valid = (bpm >= MIN_BPM) & (bpm <= MAX_BPM)
    # Score each lag by its own peak plus the peaks at its multiples (a beat period's comb).
    score = np.zeros_like(bpm)
    for k, weight in ((1, 1.0), (2, 0.5), (3, 0.33), (4, 0.25)):
        idx = lags * k
        ok = idx < len(ac)
        score[ok] += weight * np.maximum(ac[idx[ok]], 0)
    score = np.where(valid, score * _tempo_prior(bpm), -np.inf)
    best = int(np.argmax(score))
    lag = float(lags[best])
    if 1 <= best < len(score) - 1 and np.isfinite(score[best - 1]) and np.isfinite(score[best + 1]):
        lag += _parabolic_offset(ac[best], ac[best + 1], ac[best + 2]) if best + 2 < len(ac) else 0.0
    tempo_bpm = 60.0 * frame_rate / lag

    _, beats = librosa.beat.beat_track(
        onset_envelope=onset, sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP_LENGTH, bpm=tempo_bpm, tightness=200, trim=True
    )
    beats = np.asarray(beats, dtype=np.int64)
    positions = _refine_beats(onset, beats, 60.0 * frame_rate / tempo_bpm)
    # The tracker sometimes squeezes the last (or first) beats off the grid: drop them.
    while positions.size >= 4:
        ioi = np.median(np.diff(positions))
        if abs((positions[-1] - positions[-2]) - ioi) > 0.1 * ioi:
            positions, beats = positions[:-1], beats[:-1]
        elif abs((positions[1] - positions[0]) - ioi) > 0.1 * ioi:
            positions, beats = positions[1:], beats[1:]
        else:
            break
    if positions.size >= 8:
        # The tempo is the slope of a straight line through the beat positions.
        slope = np.polyfit(np.arange(positions.size), positions, 1)[0]
        refined = 60.0 * frame_rate / slope
        if abs(refined - tempo_bpm) / tempo_bpm < 0.04:
            tempo_bpm = refined
    return float(tempo_bpm), beats, positions


def _refine_beats(onset: np.ndarray, beats: np.ndarray, period_frames: float) -> np.ndarray:
    """Beat positions in fractional frames: each beat moved to a clear onset peak nearby."""
    positions = beats.astype(np.float64)
    reach = max(2, int(round(0.07 * period_frames)))
    floor = 2.0 * float(np.median(onset)) + 1e-9
    for i, f in enumerate(beats):
        lo, hi = max(f - reach, 1), min(f + reach + 1, len(onset) - 1)
        if hi <= lo:
            continue
        peak = lo + int(np.argmax(onset[lo:hi]))
        if onset[peak] < floor or onset[peak] < onset[f]:
            continue
        positions[i] = peak + _parabolic_offset(onset[peak - 1], onset[peak], onset[peak + 1])
    return positions


def _parabolic_offset(left: float, centre: float, right: float) -> float:
    """Sub-sample offset of a peak from three samples around it."""
    denom = left - 2 * centre + right
    if denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


# ----------------------------------------------------------------------------------------
# Meter and downbeats


def _beat_sync(feature: np.ndarray, beat_frames: np.ndarray, aggregate=np.mean) -> np.ndarray:
    """Aggregate frame features [shape=(d, frames)] over each beat span [shape=(d, beats)]."""
    import librosa

    return librosa.util.sync(feature, beat_frames, aggregate=aggregate, pad=False)


def _zscore(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 1e-9 else np.zeros_like(x)


def _meter_and_phase(feats: dict[str, np.ndarray], beat_frames: np.ndarray) -> tuple[int, int]:
    """Beats per bar (3 or 4) and the index of the first downbeat among the beats."""
    n = beat_frames.size
    if n < 8:
        return 4, 0
    # Per-beat evidence that a bar starts here: low-frequency onset strength at the beat,
    # and how much the harmony changes from the previous beat.
    onset_low = feats["onset_low"]
    width = 2
    low = np.array([onset_low[max(f - width, 0) : f + width + 1].max() for f in beat_frames])
    chroma = _beat_sync(feats["chroma"], np.concatenate([beat_frames, [feats["chroma"].shape[1]]]))[:, :n]
    chroma = chroma / (np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9)
    change = np.zeros(n)
    change[1:] = 1.0 - np.sum(chroma[:, 1:] * chroma[:, :-1], axis=0)
    evidence = _zscore(np.log1p(low)) + _zscore(change)

    best = (4, 0, -np.inf)
    for meter in (4, 3):
        usable = n - n % meter
        if usable < 2 * meter:
            continue
        folded = evidence[:usable].reshape(-1, meter)
        for phase in range(meter):
            # Contrast of the candidate downbeat against the other beats of its bar, as a
            # t-statistic so that meters with different numbers of bars compare fairly.
            bars = np.roll(folded, -phase, axis=1)
            diff = bars[:, 0] - bars[:, 1:].mean(axis=1)
            t = diff.mean() / (diff.std() / math.sqrt(diff.size) + 1e-9)
            if meter == 3:
                t -= 0.5  # most popular music is in 4: demand some extra evidence for 3
            if t > best[2]:
                best = (meter, phase, t)
    meter, phase, _ = best
    return meter, phase


# ----------------------------------------------------------------------------------------
# Key


def _key_from_chroma(profile: np.ndarray) -> tuple[int, str, float]:
    best = (0, "major", -2.0)
    for mode, template in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best


def _estimate_key(y: np.ndarray) -> tuple[int, str, float]:
    """Krumhansl-Schmuckler key finding on the loudness-weighted chroma of the harmonic part.

    A long-window STFT chroma of the HPSS harmonic component: drums and note onsets smear a
    short-window chroma, and on synthesised test songs this variant beat a CQT chroma.
    """
    import librosa

    n_fft, hop = 4096, 1024
    stft = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    # Pitch lives below about 5 kHz; zeroing the rest halves the cost of the median filters.
    top = int(5000.0 * n_fft / ANALYSIS_SAMPLE_RATE)
    harmonic = np.zeros_like(stft)
    harmonic[:top], _ = librosa.decompose.hpss(stft[:top], kernel_size=17, margin=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_stft(S=harmonic**2, sr=ANALYSIS_SAMPLE_RATE, n_fft=n_fft, hop_length=hop)
    rms = np.sqrt(np.mean(stft**2, axis=0))
    weights = rms / (rms.max() + 1e-12)
    profile = (chroma * weights[np.newaxis, :]).sum(axis=1)
    if not np.any(profile > 0) or np.ptp(profile) < 1e-12:
        return 0, "major", 0.0
    return _key_from_chroma(profile)


def _estimate_key_simple(y: np.ndarray) -> tuple[str, str, float]:
    """Key of a very short clip from an STFT chroma."""
    import librosa

    chroma = librosa.feature.chroma_stft(y=y, sr=ANALYSIS_SAMPLE_RATE, n_fft=2048, hop_length=HOP_LENGTH)
    profile = chroma.sum(axis=1)
    if np.ptp(profile) < 1e-12:
        return "C", "major", 0.0
    tonic, mode, r = _key_from_chroma(profile)
    return PITCH_CLASSES[tonic], mode, round(r, 4)


# ----------------------------------------------------------------------------------------
# Sections


def _bar_grid(beat_frames: np.ndarray, downbeat_frames: np.ndarray, total_frames: int) -> np.ndarray:
    """Frame indices of bar starts, always beginning at 0 and ending at ``total_frames``."""
    frame_rate = ANALYSIS_SAMPLE_RATE / HOP_LENGTH
    if downbeat_frames.size >= 4:
        grid = downbeat_frames
    else:  # no usable meter: a plain two-second grid
        grid = np.arange(0, total_frames, int(round(2.0 * frame_rate)))
    grid = grid[(grid > 0) & (grid < total_frames)]
    # Where beats stop (a quiet intro or outro), continue the grid at the median bar length.
    if grid.size >= 2:
        bar = int(np.median(np.diff(grid)))
        head = np.arange(grid[0] - bar, 0, -bar)[::-1] if bar > 0 else np.array([], dtype=int)
        tail = np.arange(grid[-1] + bar, total_frames - bar // 2, bar) if bar > 0 else np.array([], dtype=int)
        grid = np.concatenate([head[head > bar // 2], grid, tail])
    return np.unique(np.concatenate([[0], grid, [total_frames]])).astype(np.int64)


def _bar_features(feats: dict[str, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """Standardised per-bar features [shape=(bars, d)]: chroma, timbre (MFCC) and loudness."""
    import librosa

    chroma = librosa.util.sync(feats["chroma"], grid, aggregate=np.mean, pad=False)
    chroma = chroma / (np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9)
    mfcc = librosa.util.sync(feats["mfcc"], grid, aggregate=np.mean, pad=False)
    rms = librosa.util.sync(feats["rms"][np.newaxis], grid, aggregate=np.mean, pad=False)
    loud = np.log(rms + 1e-5)

    def standardise(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=1, keepdims=True)
        return x / (x.std() + 1e-9)

    # Equal weight per feature group whatever its dimension.
    groups = [standardise(chroma), standardise(mfcc), standardise(loud)]
    return np.concatenate([g / math.sqrt(g.shape[0]) for g in groups], axis=0).T


def _self_similarity(bar_feats: np.ndarray) -> np.ndarray:
    """Gaussian-kernel self-similarity of bars [shape=(bars, bars)], values 0..1."""
    diff = bar_feats[:, np.newaxis, :] - bar_feats[np.newaxis, :, :]
    dist2 = np.sum(diff**2, axis=-1)
    scale = np.median(dist2[np.triu_indices_from(dist2, k=1)]) if len(dist2) > 1 else 1.0
    return np.exp(-dist2 / (scale + 1e-9))


def _checkerboard_novelty(ssm: np.ndarray, half_width: int) -> np.ndarray:
    """Foote novelty at each bar boundary (index b = boundary before bar b)."""
    n = len(ssm)
    taper = np.exp(-0.5 * ((np.arange(half_width) + 0.5) / (0.5 * half_width)) ** 2)
    novelty = np.zeros(n + 1)
    for b in range(1, n):
        lo, hi = max(b - half_width, 0), min(b + half_width, n)
        w_before = taper[: b - lo][::-1]
        w_after = taper[: hi - b]
        before = ssm[lo:b, lo:b]
        after = ssm[b:hi, b:hi]
        cross = ssm[lo:b, b:hi]
        within = (np.sum(before * np.outer(w_before, w_before)) / np.sum(np.outer(w_before, w_before))
                  + np.sum(after * np.outer(w_after, w_after)) / np.sum(np.outer(w_after, w_after)))
        across = np.sum(cross * np.outer(w_before, w_after)) / np.sum(np.outer(w_before, w_after))
        novelty[b] = 0.5 * within - across
    return novelty


def _segment(ssm: np.ndarray, bar_s: float, duration_s: float) -> list[int]:
    """Section boundaries as bar indices, from 0 to the number of bars inclusive."""
    n_bars = len(ssm)
    max_sections = int(np.clip(round(duration_s / 12.0) + 1, 1, 32))
    if n_bars < 4 or max_sections < 2:
        return [0, n_bars]
    half_width = int(np.clip(round(8.0 / max(bar_s, 1e-3)), 2, 8))
    novelty = _checkerboard_novelty(ssm, half_width)
    min_bars = max(2, int(math.ceil(4.0 / max(bar_s, 1e-3))))

    # Candidate boundaries: local maxima that stand out from the curve, strongest first.
    candidates = [
        b for b in range(1, n_bars)
        if novelty[b] > 0 and novelty[b] >= novelty[b - 1] and novelty[b] >= novelty[b + 1]
    ]  # fmt: skip
    inner = novelty[1:n_bars]
    threshold = inner.mean() + NOVELTY_THRESHOLD_STD * inner.std()
    chosen: list[int] = []
    for b in sorted(candidates, key=lambda b: -novelty[b]):
        if novelty[b] < threshold or len(chosen) + 1 >= max_sections:
            break
        if b < min_bars or n_bars - b < min_bars or any(abs(b - c) < min_bars for c in chosen):
            continue
        chosen.append(b)
    if not chosen and n_bars >= 8:
        # No clear change of material (a loop, a short excerpt): fall back to phrases, which
        # is how a listener counts such music, 8 bars each (4 in a short piece).
        phrase = 8 if n_bars >= 16 else 4
        chosen = list(range(phrase, n_bars - phrase // 2, phrase))
    return [0, *sorted(chosen), n_bars]


def _section_similarity(ssm: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """How much each pair of sections repeats each other: the mean of the aligned diagonal."""
    k = len(spans)
    sim = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            (a0, a1), (b0, b1) = spans[i], spans[j]
            length = min(a1 - a0, b1 - b0)
            if length <= 0:
                continue
            best = 0.0
            # Allow the repeat to be shifted by up to a bar either way.
            for shift in (-1, 0, 1):
                idx = np.arange(length)
                ai, bi = a0 + idx, b0 + idx + shift
                ok = (bi >= 0) & (bi < len(ssm))
                if ok.sum() == 0:
                    continue
                best = max(best, float(ssm[ai[ok], bi[ok]].mean()))
            # Penalise very different lengths (a 2-bar fill does not repeat a 16-bar chorus).
            ratio = length / max(a1 - a0, b1 - b0)
            sim[i, j] = sim[j, i] = best * (0.5 + 0.5 * ratio)
    return sim


def _group_sections(sim: np.ndarray, threshold: float) -> list[int]:
    """Single-linkage groups of sections whose similarity passes ``threshold``."""
    k = len(sim)
    parent = list(range(k))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(k):
        for j in range(i + 1, k):
            if sim[i, j] >= threshold:
                parent[find(j)] = find(i)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(k)]


def _structure(
    feats: dict[str, np.ndarray], beat_frames: np.ndarray, downbeat_frames: np.ndarray, duration_s: float
) -> list[Section]:
    """Bar-aligned, labelled sections covering ``0..duration_s``."""
    total_frames = feats["rms"].shape[-1]
    frame_s = HOP_LENGTH / ANALYSIS_SAMPLE_RATE
    grid = _bar_grid(beat_frames, downbeat_frames, total_frames)
    n_bars = len(grid) - 1
    if n_bars < 4:
        return [_make_section(0, "section", 1, 0.0, duration_s, 1.0, False)]
    ssm = _self_similarity(_bar_features(feats, grid))
    bar_s = float(np.median(np.diff(grid))) * frame_s
    bounds = _segment(ssm, bar_s, duration_s)
    spans = list(zip(bounds[:-1], bounds[1:]))
    groups = _group_sections(_section_similarity(ssm, spans), REPEAT_THRESHOLD)
    # Adjacent repeats of the same material are one section ("the chorus, twice").
    merged_spans, merged_groups = [spans[0]], [groups[0]]
    for span, group in zip(spans[1:], groups[1:]):
        if group == merged_groups[-1]:
            merged_spans[-1] = (merged_spans[-1][0], span[1])
        else:
            merged_spans.append(span)
            merged_groups.append(group)
    spans, groups = merged_spans, merged_groups

    def to_seconds(bar: int) -> float:
        if bar <= 0:
            return 0.0
        if bar >= n_bars:
            return float(duration_s)
        return float(grid[bar] * frame_s)

    power = feats["rms"].astype(np.float64) ** 2
    rms = np.array([math.sqrt(power[grid[a] : max(grid[b], grid[a] + 1)].mean()) for a, b in spans])
    energy = rms / (rms.max() + 1e-12)
    rising = []
    for a, b in spans:  # a build: the last quarter clearly louder than the first
        seg = power[grid[a] : max(grid[b], grid[a] + 4)]
        quarter = max(len(seg) // 4, 1)
        rising.append(bool(seg[-quarter:].mean() > 2.0 * seg[:quarter].mean() + 1e-12))
    labels = _assign_labels(groups, energy, rising, [to_seconds(a) for a, _ in spans], duration_s)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    seen: dict[str, int] = {}
    sections = []
    for index, ((a, b), label) in enumerate(zip(spans, labels)):
        seen[label] = seen.get(label, 0) + 1
        sections.append(
            _make_section(index, label, seen[label], to_seconds(a), to_seconds(b), energy[index], counts[label] > 1)
        )
    return sections


def _assign_labels(
    groups: list[int], energy: np.ndarray, rising: list[bool], starts_s: list[float], duration_s: float
) -> list[str]:
    """Musical role of each section from its repetition group and energy.

    The repeated group with the highest energy is the chorus; other repeated groups are
    verses; a quiet one-off first (last) section is the intro (outro); a one-off in the
    second half between choruses is a bridge; a loud one-off after a quieter build is a drop.
    """
    k = len(groups)
    labels = ["section"] * k
    if k == 1:
        return labels
    members: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    repeated = [g for g, idx in members.items() if len(idx) > 1]
    chorus_group = max(repeated, key=lambda g: float(np.mean(energy[members[g]]))) if repeated else None
    for g in repeated:
        for i in members[g]:
            labels[i] = "chorus" if g == chorus_group else "verse"
    median_energy = float(np.median(energy))

    def one_off(i: int) -> bool:
        return len(members[groups[i]]) == 1

    if k >= 3 and groups[0] != chorus_group and (one_off(0) or energy[0] < 0.5 * median_energy):
        if energy[0] <= max(0.8, median_energy):
            labels[0] = "intro"
    last = k - 1
    if k >= 3 and groups[last] != chorus_group and (one_off(last) or energy[last] < 0.5 * median_energy):
        if energy[last] <= max(0.8, median_energy):
            labels[last] = "outro"
    chorus_idx = [i for i in range(k) if labels[i] == "chorus"]
    for i in range(1, k - 1):
        if labels[i] != "section" or not one_off(i):
            continue
        build = rising[i - 1] and energy[i - 1] < 0.75 * energy[i]
        if energy[i] >= 0.85 and build:
            labels[i] = "drop"
        elif (
            starts_s[i] >= 0.4 * duration_s
            and any(c < i for c in chorus_idx)
            and any(c > i for c in chorus_idx)
        ):
            labels[i] = "bridge"
    return labels


def _make_section(index: int, label: str, ordinal: int, start: float, end: float, energy: float, numbered: bool):
    return Section(
        id=f"s{index}",
        name=f"{label} {ordinal}" if numbered else label,
        label=label,
        ordinal=ordinal,
        start=float(start),
        end=float(end),
        energy=float(np.clip(energy, 0.0, 1.0)),
    )
