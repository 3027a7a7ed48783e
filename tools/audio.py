"""The one audio type, and reading and writing audio files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["Audio", "load", "save", "STEM_NAMES"]

STEM_NAMES = ("vocals", "drums", "bass", "other")
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 384_000


@dataclass(frozen=True, eq=False)
class Audio:
    """Audio samples and their rate.

    Args:
        samples: float32 array [shape=(channels, frames)]; mono is ``(1, n)``.
        sample_rate: frames per second.

    Validated once on construction: 2-D, non-empty, finite, a sane rate. The array is made
    read-only so that a value shared between caches can never be changed in place.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2:
            raise ParameterError(f"audio samples must have shape (channels, frames), got {samples.shape}")
        channels, frames = samples.shape
        if channels < 1 or frames < 1:
            raise ParameterError(f"audio is empty: shape {samples.shape}")
        if channels > 64:
            raise ParameterError(f"audio has {channels} channels; expected (channels, frames) with at most 64 channels")
        if not isinstance(self.sample_rate, (int, np.integer)) or not (
            MIN_SAMPLE_RATE <= int(self.sample_rate) <= MAX_SAMPLE_RATE
        ):
            raise ParameterError(
                f"sample_rate={self.sample_rate!r} must be an integer between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}"
            )
        if samples.dtype != np.float32:
            samples = samples.astype(np.float32)
        if not np.isfinite(samples).all():
            raise ParameterError("audio contains NaN or infinite samples")
        if samples.flags.writeable:
            samples = samples.copy() if samples.base is not None else samples
            samples.flags.writeable = False
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def replace(self, samples: np.ndarray) -> "Audio":
        """The same rate with new samples."""
        return Audio(samples, self.sample_rate)

    def to_mono(self) -> np.ndarray:
        """The channel mean, float32 [shape=(frames,)]."""
        return self.samples.mean(axis=0, dtype=np.float32)

    def to_channels(self, channels: int) -> "Audio":
        """Up- or down-mix: mono to N copies, N to mono by the mean, else the first N channels."""
        if channels == self.channels:
            return self
        if self.channels == 1:
            return self.replace(np.repeat(self.samples, channels, axis=0))
        if channels == 1:
            return self.replace(self.to_mono()[np.newaxis, :])
        if channels < self.channels:
            return self.replace(self.samples[:channels])
        raise ParameterError(f"cannot upmix {self.channels} channels to {channels}")

    def resample(self, sample_rate: int) -> "Audio":
        """Band-limited resampling (soxr quality) to ``sample_rate``; used at the edges only."""
        if sample_rate == self.sample_rate:
            return self
        import soxr

        out = soxr.resample(self.samples.T, self.sample_rate, sample_rate, quality="HQ").T
        return Audio(np.ascontiguousarray(out, dtype=np.float32), sample_rate)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audio):
            return NotImplemented
        return self.sample_rate == other.sample_rate and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]


def load(path, *, settings=None) -> Audio:  # filled below
    raise NotImplementedError


def save(audio: Audio, path, *, settings=None):  # filled below
    raise NotImplementedError
