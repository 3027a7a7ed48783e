"""MusicGen melody as the generative genre-shift backend, through the transformers implementation.

The model writes at most about 30 seconds at a time, so a whole song is generated in windows:

1. :func:`plan_windows` cuts the song into windows of at most ``window_s`` seconds whose
   boundaries fall on bar starts and which overlap their neighbours by about one bar.
2. Each window is conditioned on the text prompt plus the song's tempo, and on the chroma of
   the song's audio in that window (melody conditioning). The chroma is computed here with
   ``torch.stft`` (:func:`melody_chroma`), exactly as ``MusicgenMelodyFeatureExtractor`` does
   it: a Hann-windowed power spectrogram normalised by the window's energy, the librosa-style
   chroma filter bank, a max-normalisation per frame and an argmax one-hot. Using our own copy
   keeps the feature extractor (which needs torchaudio) out of the path.
3. :func:`tempo_lock` puts each generated window on the song's beat grid: when the beat
   tracker is confident of its tempo and that tempo is within 12 % of the song's (half and
   double time allowed), the window is time-stretched to the song's tempo and shifted so its
   strongest beat of the first bar lands on a bar start; whole bars of the locked audio fill
   the frames the shift or the stretch left empty. Audio without a clear pulse is kept as is.
4. The windows are joined with equal-power crossfades over their overlaps, resampled to the
   song's rate, given the song's channel count and exact length, and peak-normalised.

Sampling is seeded per window inside a forked torch RNG, so the same seed gives the same
audio and the caller's random state is left alone. Weights are only ever read from disk:
``settings.models_path / "musicgen-melody"`` (a ``save_pretrained`` folder) or the local
Hugging Face cache; nothing here touches the network.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..audio import Audio
from ..errors import BackendUnavailable, ParameterError
from ..settings import Settings

if TYPE_CHECKING:
    import torch

__all__ = [
    "MUSICGEN_LICENCE",
    "MUSICGEN_REPO_ID",
    "FOLDER_NAME",
    "BeatEstimate",
    "MusicgenMelody",
    "chroma_filters",
    "estimate_beats",
    "find_weights",
    "load_generator",
    "melody_chroma",
    "plan_windows",
    "tempo_lock",
]

MUSICGEN_LICENCE = "MusicGen melody weights by Meta, CC-BY-NC 4.0 (non-commercial use only)"
MUSICGEN_REPO_ID = "facebook/musicgen-melody"
FOLDER_NAME = "musicgen-melody"

# Sampling settings of the MusicGen reference implementation.
GUIDANCE_SCALE = 3.0
TOP_K = 250
# The feature extractor's defaults, used when a folder has no preprocessor_config.json.
DEFAULT_N_FFT = 16384
DEFAULT_HOP_LENGTH = 4096
DEFAULT_CHUNK_LENGTH_S = 30.0

TEMPO_TOLERANCE = 0.12  # relative tempo difference a window may be stretched by
MIN_PULSE_CLARITY = 0.25  # onset autocorrelation at the beat period; noise scores about 0
MIN_BEATS = 4
OUTPUT_PEAK = 0.5  # -6 dBFS: room for the caller to mix and master
_ONSET_FRAME_S = 512 / 44100  # librosa's usual onset-envelope frame, about 11.6 ms
_PEAK_SEARCH = 2  # onset frames either side of a tracked beat searched for its peak

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")

Progress = Callable[[float, str], None]


# Finding and loading the weights ---------------------------------------------------------


def _missing_files(folder: Path) -> list[str]:
    """What a loadable MusicGen melody folder lacks (empty when complete)."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("the weights (" + " or ".join(_WEIGHT_FILES) + ")")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append("the T5 tokenizer (" + " or ".join(_TOKENIZER_FILES) + ")")
    return missing


def _hub_snapshot() -> Path | None:
    """The cached snapshot of ``MUSICGEN_REPO_ID`` in the local Hugging Face cache, if any (offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(MUSICGEN_REPO_ID, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def find_weights(settings: Settings) -> Path | None:
    """The local folder of complete MusicGen melody weights, or None.

    Looks in ``settings.models_path / "musicgen-melody"`` (a folder written by
    ``save_pretrained``: config.json, weights, tokenizer and preprocessor files), then in the
    local Hugging Face cache for ``MUSICGEN_REPO_ID``. Never touches the network.
    """
    folder = settings.models_path / FOLDER_NAME
    if not _missing_files(folder):
        return folder
    snapshot = _hub_snapshot()
    if snapshot is not None and not _missing_files(snapshot):
        return snapshot
    return None


def load_generator(settings: Settings, folder: Path | None = None, *, device: str | None = None) -> "MusicgenMelody":
    """The MusicGen melody generator from a local folder, loaded once per folder and device.

    Args:
        settings: where to look when ``folder`` is not given (see :func:`find_weights`).
        folder: a ``save_pretrained`` folder to load instead.
        device: torch device; default CUDA when available, else the CPU.

    Raises:
        BackendUnavailable: no weights, an incomplete folder (the message names the folder
            and the missing files) or weights that cannot be loaded.
    """
    import torch

    if folder is None:
        folder = find_weights(settings)
        if folder is None:
            expected = settings.models_path / FOLDER_NAME
            raise BackendUnavailable(
                f"MusicGen melody weights not found: put a save_pretrained folder of {MUSICGEN_REPO_ID} "
                f"(config.json, model.safetensors, tokenizer.json, preprocessor_config.json) in {expected}, "
                f"or have {MUSICGEN_REPO_ID} in the local Hugging Face cache"
            )
    folder = Path(folder)
    if not folder.is_dir():
        raise BackendUnavailable(
            f"MusicGen melody folder {folder} does not exist; write one with save_pretrained from {MUSICGEN_REPO_ID}"
        )
    missing = _missing_files(folder)
    if missing:
        raise BackendUnavailable(
            f"MusicGen melody folder {folder} is incomplete: missing {', '.join(missing)}; "
            f"write it with save_pretrained from {MUSICGEN_REPO_ID}"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return _load(folder.resolve(), device)


@lru_cache(maxsize=1)
def _load(folder: Path, device: str) -> "MusicgenMelody":
    """Model, tokenizer and chroma settings from a complete folder.

    Memoised for the last folder and device only: the real model takes several GB (float32;
    float16 on CUDA).
    """
    import torch
    from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    try:
        model = MusicgenMelodyForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        preprocessor = folder / "preprocessor_config.json"
        features = json.loads(preprocessor.read_text()) if preprocessor.is_file() else {}
        model = model.to(device).eval()
    except (OSError, ValueError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
        raise BackendUnavailable(f"cannot load MusicGen melody from {folder}: {exc}") from exc
    return MusicgenMelody(
        model,
        tokenizer,
        name=folder.name,
        n_fft=int(features.get("n_fft", DEFAULT_N_FFT)),
        hop_length=int(features.get("hop_length", DEFAULT_HOP_LENGTH)),
        max_window_s=float(features.get("chunk_length", DEFAULT_CHUNK_LENGTH_S)),
    )


# Windows -----------------------------------------------------------------------------------


def _snap(bars: np.ndarray, target: float, low: float, high: float) -> float:
    """The bar start in [low, high] nearest ``target``, or ``target`` itself when there is none."""
    inside = bars[(bars >= low) & (bars <= high)]
    if inside.size == 0:
        return target
    return float(inside[np.argmin(np.abs(inside - target))])


def plan_windows(
    duration_s: float, bar_starts: Sequence[float], window_s: float, overlap_s: float
) -> list[tuple[float, float]]:
    """Windows ``(start_s, end_s)`` covering ``[0, duration_s]`` for generation in pieces.

    Every window is at most ``window_s`` long; neighbours overlap by about ``overlap_s``
    (capped at a quarter window), and only neighbours overlap. Inner boundaries fall on bar
    starts when one is close enough (an end within the last quarter of the window, a start
    within half an overlap of the ideal); otherwise, and when ``bar_starts`` is empty, the
    windows fall back to the fixed step ``window_s - overlap_s``.
    """
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ParameterError(f"duration_s={duration_s!r} must be a positive number of seconds")
    if not (math.isfinite(window_s) and window_s > 0):
        raise ParameterError(f"window_s={window_s!r} must be a positive number of seconds")
    overlap_s = min(max(float(overlap_s), 0.0), window_s / 4)
    bars = np.asarray(bar_starts, dtype=np.float64)
    bars = np.unique(bars[np.isfinite(bars) & (bars > 0) & (bars < duration_s)])
    windows: list[tuple[float, float]] = []
    start = 0.0
    while duration_s - start > window_s:
        limit = start + window_s
        end = _snap(bars, limit, start + 0.75 * window_s, limit)
        target = end - overlap_s
        next_start = _snap(bars, target, target - overlap_s / 2, target + overlap_s / 2) if overlap_s > 0 else end
        windows.append((start, end))
        start = next_start
    windows.append((start, float(duration_s)))
    return windows


def _crossfade_weights(frames: int, head: int, tail: int) -> np.ndarray:
    """Gain of one window: equal-power fade-in over ``head`` frames, fade-out over ``tail``."""
    weights = np.ones(frames, dtype=np.float32)
    if head > 0:
        weights[:head] = np.sin(0.5 * np.pi * (np.arange(head) + 0.5) / head)
    if tail > 0:
        weights[frames - tail :] *= np.cos(0.5 * np.pi * (np.arange(tail) + 0.5) / tail)
    return weights


# Melody conditioning -----------------------------------------------------------------------


def chroma_filters(sampling_rate: int, n_fft: int, num_chroma: int = 12) -> "torch.Tensor":
    """The feature extractor's chroma filter bank [shape=(num_chroma, n_fft // 2 + 1)]."""
    import torch
    from transformers.audio_utils import chroma_filter_bank

    bank = chroma_filter_bank(num_frequency_bins=n_fft, num_chroma=num_chroma, sampling_rate=sampling_rate, tuning=0)
    return torch.from_numpy(bank).float()


def melody_chroma(wav: "torch.Tensor", filters: "torch.Tensor", n_fft: int, hop_length: int) -> "torch.Tensor":
    """One-hot chroma of mono audio, as ``MusicgenMelodyFeatureExtractor`` computes it.

    Args:
        wav: float32 audio at the model's rate [shape=(batch, samples)].
        filters: :func:`chroma_filters` for that rate and ``n_fft``.
        n_fft: STFT size (and window length).
        hop_length: STFT hop.

    Returns:
        float32 one-hot chroma [shape=(batch, frames, num_chroma)]: 1 at each frame's
        strongest pitch class.
    """
    import torch

    if wav.shape[-1] < n_fft:
        pad = n_fft - wav.shape[-1]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad - pad // 2))
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(
        wav, n_fft, hop_length=hop_length, window=window, center=True, pad_mode="reflect", return_complex=True
    )
    power = spec.abs().pow(2) / window.pow(2).sum()
    raw = torch.einsum("cf,...ft->...ct", filters.to(wav.device), power)
    norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=1e-6)
    return torch.nn.functional.one_hot(norm.argmax(dim=-2), filters.shape[0]).to(wav.dtype)


# Tempo lock --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeatEstimate:
    """A confident beat-tracker reading: tempo, beat times (s) and the loudness at each beat."""

    bpm: float
    beat_times: np.ndarray
    strengths: np.ndarray


def estimate_beats(mono: np.ndarray, sample_rate: int, near_bpm: float) -> BeatEstimate | None:
    """The beats of ``mono`` when the beat tracker is confident of them, else None.

    Confidence is the normalised autocorrelation of the onset envelope at the tracked beat
    period (pulse clarity): above ``MIN_PULSE_CLARITY`` with at least ``MIN_BEATS`` beats.
    Each beat is moved to the onset peak next to it (the tracker can sit a frame off), and the
    tempo is refined by :func:`_fitted_bpm`.
    """
    import librosa

    hop = max(1, int(round(sample_rate * _ONSET_FRAME_S)))
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    envelope = librosa.onset.onset_strength(y=mono, sr=sample_rate, hop_length=hop)
    if envelope.size < 8 or not np.any(envelope > 0):
        return None
    tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sample_rate, hop_length=hop, start_bpm=near_bpm)
    bpm = float(np.atleast_1d(tempo)[0])
    if not bpm > 0 or len(beats) < MIN_BEATS:
        return None
    centred = envelope - envelope.mean()
    autocorrelation = np.correlate(centred, centred, "full")[centred.size - 1 :]
    autocorrelation /= np.arange(centred.size, 0, -1)  # unbiased: each lag by its overlap
    low = int(60.0 / bpm * sample_rate / hop)
    if autocorrelation[0] <= 0 or not 0 < low < centred.size - 1:
        return None
    if max(autocorrelation[low], autocorrelation[low + 1]) / autocorrelation[0] < MIN_PULSE_CLARITY:
        return None
    beats = np.asarray(beats, dtype=int)
    around = np.clip(beats[:, np.newaxis] + np.arange(-_PEAK_SEARCH, _PEAK_SEARCH + 1), 0, envelope.size - 1)
    peaks = around[np.arange(beats.size), np.argmax(envelope[around], axis=1)]
    times = peaks * hop / sample_rate
    bpm = _fitted_bpm(times, bpm)
    # A beat's strength is the loudness (linear RMS) just after it: the log-compressed onset
    # envelope hides accents.
    rms = librosa.feature.rms(y=mono, frame_length=4 * hop, hop_length=hop)[0]
    after = np.clip(peaks[:, np.newaxis] + np.arange(2 * _PEAK_SEARCH + 1), 0, rms.size - 1)
    return BeatEstimate(bpm=bpm, beat_times=times, strengths=rms[after].max(axis=1))


def _fitted_bpm(times: np.ndarray, bpm: float) -> float:
    """The tempo of beat ``times`` by a straight-line fit, outliers left out; ``bpm`` if it cannot tell.

    The tracker's own tempo is quantised to about half a percent, which drifts by a good part
    of a beat over a 30 s window. Beats are numbered on the tracker's period, so a skipped beat
    does not bend the fit, and beats more than a tenth of a period off the first fit are dropped.
    """
    period = 60.0 / bpm
    index = np.round((times - times[0]) / period)
    if np.unique(index).size < MIN_BEATS:
        return bpm
    slope, intercept = np.polyfit(index, times, 1)
    keep = np.abs(times - (slope * index + intercept)) < 0.1 * period
    if np.unique(index[keep]).size < MIN_BEATS:
        return bpm
    fitted = 60.0 / np.polyfit(index[keep], times[keep], 1)[0]
    return float(fitted) if abs(fitted / bpm - 1.0) < 0.05 else bpm


def _loop_fill(samples: np.ndarray, shift: int, period: int, frames: int) -> np.ndarray:
    """``samples`` delayed by ``shift`` frames into ``frames`` frames.

    Output positions whose source lies outside ``samples`` take the audio whole ``period``s
    away inside it (so a locked groove keeps its grid); silence when a period does not fit.
    """
    length = samples.shape[1]
    source = np.arange(frames) - shift
    if not 0 < period <= length:
        out = np.zeros((samples.shape[0], frames), dtype=np.float32)
        valid = (source >= 0) & (source < length)
        out[:, valid] = samples[:, source[valid]]
        return out
    before = source < 0
    source[before] += period * ((-source[before] + period - 1) // period)
    after = source >= length
    source[after] -= period * ((source[after] - length + period) // period)
    return np.ascontiguousarray(samples[:, source], dtype=np.float32)


def tempo_lock(samples: np.ndarray, sample_rate: int, bpm: float, grid_offset_s: float, bar_s: float) -> np.ndarray:
    """Put generated audio on the song's beat grid, at the same length.

    Args:
        samples: generated audio [shape=(channels, frames)].
        sample_rate: its rate.
        bpm: the song's tempo.
        grid_offset_s: where a bar starts, in seconds from the start of ``samples``.
        bar_s: bar length in seconds.

    Returns:
        float32 [shape=samples.shape]: stretched to ``bpm`` and shifted so the strongest beat of
        the first bar falls on the bar grid, when the beat tracker is confident of a tempo within
        ``TEMPO_TOLERANCE`` of ``bpm`` (half and double time allowed); otherwise ``samples``.
    """
    from ..tempo_pitch import stretch

    estimate = estimate_beats(samples.mean(axis=0), sample_rate, bpm)
    if estimate is None:
        return samples
    factor = min((0.5, 1.0, 2.0), key=lambda f: abs(estimate.bpm * f / bpm - 1.0))
    ratio = bpm / (estimate.bpm * factor)
    if abs(ratio - 1.0) > TEMPO_TOLERANCE:
        return samples
    frames = samples.shape[1]
    if abs(ratio - 1.0) > 1e-3:
        locked = stretch(Audio(samples, sample_rate), ratio).samples
    else:
        locked, ratio = samples, 1.0
    beat_times = estimate.beat_times / ratio
    first_bar = beat_times < beat_times[0] + 0.99 * bar_s
    downbeat = beat_times[np.argmax(np.where(first_bar, estimate.strengths, -np.inf))]
    shift_s = (grid_offset_s - downbeat + bar_s / 2) % bar_s - bar_s / 2
    return _loop_fill(locked, int(round(shift_s * sample_rate)), int(round(bar_s * sample_rate)), frames)


# The generator -----------------------------------------------------------------------------


def _window_progress(progress: Progress, index: int, count: int, fraction: float) -> None:
    """Report the progress of window ``index`` of ``count`` as a fraction of the whole song."""
    progress((index + fraction) / count, f"generating window {index + 1} of {count}")


class _StepProgress:
    """A generate() streamer that reports each decoding step (the first put is the prompt)."""

    def __init__(self, report: Callable[[float], None], steps: int) -> None:
        self._report = report
        self._steps = max(1, steps)
        self._puts = 0

    def put(self, value: Any) -> None:
        self._puts += 1
        if self._puts > 1:
            self._report(min(1.0, (self._puts - 1) / self._steps))

    def end(self) -> None:
        self._report(1.0)


class MusicgenMelody:
    """A loaded MusicGen melody model that regenerates a song's accompaniment in another style."""

    licence: str = MUSICGEN_LICENCE

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str, n_fft: int, hop_length: int, max_window_s: float
    ) -> None:
        config = model.config
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = f"musicgen-melody:{name}"
        self.sampling_rate = int(config.audio_encoder.sampling_rate)
        self.codec_hop = int(config.audio_encoder.hop_length)  # samples per token frame: 640 (50 Hz) for the real model
        decoder = config.decoder
        self.channels = int(decoder.audio_channels)
        self.codebook_delay = decoder.num_codebooks // decoder.audio_channels - 1
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_window_s = max_window_s
        self.filters = chroma_filters(self.sampling_rate, n_fft, int(config.num_chroma))
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MusicgenMelody({self.model_id!r}, {self.sampling_rate} Hz)"

    def accompaniment(
        self,
        song: Audio,
        prompt: str,
        bar_starts: Sequence[float],
        bpm: float,
        progress: Progress | None = None,
        seed: int = 0,
        window_s: float = 30.0,
        *,
        threads: int | None = None,
    ) -> Audio:
        """Regenerate the accompaniment of ``song`` in the style of ``prompt``.

        Args:
            song: the melody source (the whole song, or its vocals and melodic stems).
            prompt: the style, e.g. ``"lo-fi hip hop with dusty drums"``; the tempo is appended.
            bar_starts: bar start times in seconds, ascending (may be empty).
            bpm: the song's tempo; the generated windows are locked to it.
            progress: called with (fraction done, message).
            seed: the same seed gives the same audio.
            window_s: longest window generated at once (at most the model's 30 s).
            threads: torch intra-op threads for this call (restored afterwards); None leaves them.

        Returns:
            The accompaniment at ``song.sample_rate`` with ``song.channels`` channels and exactly
            ``song.frames`` frames, peaked at ``OUTPUT_PEAK``.

        Raises:
            ParameterError: a non-positive tempo or window, or a window longer than the model's.
        """
        import torch

        if not (math.isfinite(bpm) and bpm > 0):
            raise ParameterError(f"bpm={bpm!r} must be a positive tempo")
        if not 0 < window_s <= self.max_window_s:
            raise ParameterError(f"window_s={window_s!r} must be between 0 and {self.max_window_s:g} seconds")
        bars = np.asarray(bar_starts, dtype=np.float64)
        bars = np.unique(bars[np.isfinite(bars)])
        bar_s = float(np.median(np.diff(bars))) if bars.size >= 2 else 240.0 / bpm
        windows = plan_windows(song.duration_s, bars, window_s, bar_s)
        rate = self.sampling_rate
        melody = Audio(song.to_mono()[np.newaxis, :], song.sample_rate).resample(rate).samples[0]
        total = int(round(song.duration_s * rate))
        melody = np.pad(melody, (0, max(0, total - melody.size)))[:total]
        spans = [(int(round(start * rate)), min(total, int(round(end * rate)))) for start, end in windows]
        description = f"{prompt.strip()}, {bpm:.0f} bpm" if prompt.strip() else f"{bpm:.0f} bpm"
        text = self.tokenizer([description], return_tensors="pt")
        out = np.zeros((self.channels, total), dtype=np.float32)

        old_threads = torch.get_num_threads()
        with self._lock:
            try:
                if threads is not None:
                    torch.set_num_threads(threads)
                for index, (first, last) in enumerate(spans):
                    report = None if progress is None else partial(_window_progress, progress, index, len(spans))
                    window = self._generate(melody[first:last], text, seed, index, report)
                    anchor = bars[np.argmin(np.abs(bars - first / rate))] if bars.size else 0.0
                    window = tempo_lock(window, rate, bpm, (anchor - first / rate) % bar_s, bar_s)
                    head = spans[index - 1][1] - first if index > 0 else 0
                    tail = last - spans[index + 1][0] if index + 1 < len(spans) else 0
                    out[:, first:last] += window * _crossfade_weights(last - first, head, tail)
            finally:
                if threads is not None:
                    torch.set_num_threads(old_threads)
        peak = float(np.max(np.abs(out)))
        if peak > 0:
            out *= OUTPUT_PEAK / peak
        result = Audio(out, rate).to_channels(song.channels).resample(song.sample_rate).samples
        result = np.pad(result, ((0, 0), (0, max(0, song.frames - result.shape[1]))))[:, : song.frames]
        if progress is not None:
            progress(1.0, "accompaniment generated")
        return Audio(result, song.sample_rate)

    def _generate(
        self, melody: np.ndarray, text: Any, seed: int, index: int, report: Callable[[float], None] | None
    ) -> np.ndarray:
        """One window [shape=(model channels, len(melody))] at the model's rate, before the tempo lock."""
        import torch

        frames = melody.size
        device = self.model.device
        wav = torch.from_numpy(np.ascontiguousarray(melody, dtype=np.float32))[None].to(device)
        chroma = melody_chroma(wav, self.filters, self.n_fft, self.hop_length)
        tokens = math.ceil(frames / self.codec_hop) + self.codebook_delay
        streamer = _StepProgress(report, tokens) if report is not None else None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            torch.manual_seed((seed * 1_000_003 + index) % 2**63)
            values = self.model.generate(
                input_ids=text["input_ids"].to(device),
                attention_mask=text["attention_mask"].to(device),
                input_features=chroma.to(self.model.dtype),
                do_sample=True,
                guidance_scale=GUIDANCE_SCALE,
                top_k=TOP_K,
                max_new_tokens=tokens,
                streamer=streamer,
            )
        audio = np.nan_to_num(values[0].float().cpu().numpy())
        return np.pad(audio, ((0, 0), (0, max(0, frames - audio.shape[1]))))[:, :frames]
