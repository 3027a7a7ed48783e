"""The one audio type, and reading and writing audio files."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ParameterError
from .files import atomic_path
from .settings import Settings, get_settings

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
            # A read-only view: the caller's array stays theirs, this value cannot be changed.
            samples = samples.view()
            samples.flags.writeable = False
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @classmethod
    def trusted(cls, samples: np.ndarray, sample_rate: int) -> "Audio":
        """An ``Audio`` over samples this package wrote and validated itself, without rescanning them.

        For memory-mapped cached stems: the NaN scan of the normal constructor would read a
        whole long file into memory just to build the value. Shape, dtype and rate are still
        checked, and the array is still made read-only.
        """
        if samples.ndim != 2 or samples.dtype != np.float32 or min(samples.shape) < 1:
            raise ParameterError(f"trusted audio must be non-empty float32 (channels, frames), got {samples.shape}")
        if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
            raise ParameterError(f"sample_rate={sample_rate!r} out of range")
        if samples.flags.writeable:
            samples = samples.view()
            samples.flags.writeable = False
        value = object.__new__(cls)
        object.__setattr__(value, "samples", samples)
        object.__setattr__(value, "sample_rate", int(sample_rate))
        return value

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


# Reading ----------------------------------------------------------------------------------

_READABLE = "wav, flac, mp3, ogg (vorbis), opus, m4a/aac or aiff"
_BYTES_PER_MB = 1_000_000
# FFmpeg opens only these containers (its demuxers' names), and only local files: never a
# playlist (HLS), a concat script, an image sequence or a network address, which would make it
# read other files than the one uploaded. Browsers record voice notes as webm (matroska).
_AV_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,aac,mp3,ogg,wav,w64,flac,aiff,caf,matroska,webm"
_AV_OPTIONS = {"format_whitelist": _AV_FORMATS, "protocol_whitelist": "file"}
# The first bytes of the formats read here: a file that starts like one of them but cannot be
# opened is damaged (truncated, or corrupt), not of an unknown kind.
_SIGNATURES = (
    (0, b"RIFF", "a WAV"), (0, b"RF64", "a WAV"), (0, b"fLaC", "a FLAC"), (0, b"OggS", "an Ogg"),
    (0, b"ID3", "an MP3"), (4, b"ftyp", "an MP4/M4A"), (0, b"FORM", "an AIFF"), (0, b"caff", "a CAF"),
    (0, b"\x1aE\xdf\xa3", "a WebM/Matroska"),
)
_MAX_NAME_CHARS = 120
# Encoders pad the last codec frame (AAC: 1024 frames per packet); a decoded tail longer
# than an MP4 header's exact duration by at most this many frames is padding, and is trimmed.
_MAX_CODEC_PADDING_FRAMES = 4096


class _Undecodable(Exception):
    """Internal: one decoder could not read the file (``opened`` if it got past the header)."""

    def __init__(self, reason: str, *, opened: bool) -> None:
        super().__init__(reason)
        self.opened = opened


def load(
    path: str | os.PathLike,
    *,
    settings: Settings | None = None,
    sample_rate: int | None = None,
) -> Audio:
    """Read an audio file into an :class:`Audio`.

    libsndfile (through ``soundfile``) reads wav, flac, aiff, mp3, ogg vorbis and opus;
    FFmpeg (through PyAV) reads m4a/aac and is the fallback whenever libsndfile cannot
    read a file. Limits are checked before decoding where possible: the file size first,
    then the duration the header declares, and again while decoding.

    Args:
        path: the audio file.
        settings: limits to apply (``max_upload_mb``, ``max_duration_s``); defaults to
            :func:`get_settings`.
        sample_rate: resample to this rate (frames per second); ``None`` keeps the file's
            own rate.

    Returns:
        float32 samples [shape=(channels, frames)] at the file's rate (or ``sample_rate``);
        every channel of the file is kept, mono as ``(1, n)``.

    Raises:
        ParameterError: the file is missing, a folder, empty, too large, too long, not
            audio, corrupt, holds no audio frames, or holds NaN or infinite samples. The
            message names the file and the problem.
    """
    settings = settings or get_settings()
    path = Path(path)
    name = _display_name(path)
    if sample_rate is not None and (
        not isinstance(sample_rate, (int, np.integer)) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise ParameterError(
            f"sample_rate={sample_rate!r} must be an integer between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}"
        )
    _check_file(path, name, settings.max_upload_mb)

    try:
        samples, file_rate = _read_soundfile(path, name, settings.max_duration_s)
    except _Undecodable as sf_error:
        try:
            samples, file_rate = _read_av(path, name, settings.max_duration_s)
        except _Undecodable as av_error:
            # The decoders' own messages (kept as the cause) name machine paths and codec
            # internals; the message says what is wrong with the file in plain words.
            if sf_error.opened or av_error.opened:
                raise ParameterError(
                    f"cannot load '{name}': the audio data is corrupt or truncated and could not be decoded"
                ) from (av_error if av_error.opened else sf_error)
            kind = _signature(path)
            if kind is not None:
                raise ParameterError(
                    f"cannot load '{name}': it starts like {kind} file but is corrupt or truncated, "
                    "so it could not be decoded"
                ) from av_error
            raise ParameterError(
                f"cannot load '{name}': not a recognised audio file (expected {_READABLE})"
            ) from av_error

    if samples.shape[1] == 0:
        raise ParameterError(f"cannot load '{name}': the file contains no audio (0 frames)")
    if not np.isfinite(samples).all():
        raise ParameterError(f"cannot load '{name}': the audio contains NaN or infinite samples")
    try:
        audio = Audio(samples, file_rate)
    except ParameterError as exc:
        raise ParameterError(f"cannot load '{name}': {exc}") from None
    return audio.resample(int(sample_rate)) if sample_rate is not None else audio


def _display_name(path: Path) -> str:
    """The file's name as messages show it: harmless in a terminal, a log or a chat.

    Control characters (a newline, a terminal escape sequence, NUL) and invisible formatting
    ones (a right-to-left override, which makes a name read backwards from there on) are
    written as escapes; a very long name keeps its start and its end.
    """
    name = path.name or str(path)
    shown = "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char)[0] == "C" else char
        for char in name
    )
    if len(shown) > _MAX_NAME_CHARS:
        shown = f"{shown[: _MAX_NAME_CHARS - 31]}...{shown[-28:]}"
    return shown


def _signature(path: Path) -> str | None:
    """The audio format the file's first bytes announce ("a FLAC"), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    # An MPEG audio frame header: the sync word, then a valid sampling rate index.
    if len(head) >= 3 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        if head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0x0F < 13:
            return "an AAC (ADTS)"
        # A layer set, a version not "reserved", a bitrate index not "bad", a rate not "reserved".
        if head[1] & 0x06 and head[1] & 0x18 != 0x08 and head[2] >> 4 != 0x0F and (head[2] >> 2) & 0x03 != 0x03:
            return "an MP3"
    return None


def _check_file(path: Path, name: str, max_upload_mb: float) -> None:
    """Refuse a missing, non-regular, empty or over-large file before any decoder sees it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ParameterError(f"cannot load '{name}': file not found") from None
    except OSError as exc:
        raise ParameterError(f"cannot load '{name}': the file cannot be read ({exc.strerror})") from None
    except ValueError:  # a NUL character in the path: no file can have that name
        raise ParameterError(f"cannot load '{name}': not a valid file name") from None
    if path.is_dir():
        raise ParameterError(f"cannot load '{name}': it is a folder, not an audio file")
    if not path.is_file():
        raise ParameterError(f"cannot load '{name}': not a regular file")
    if stat.st_size == 0:
        raise ParameterError(f"cannot load '{name}': the file is empty (0 bytes)")
    size_mb = stat.st_size / _BYTES_PER_MB
    if size_mb > max_upload_mb:
        raise ParameterError(
            f"cannot load '{name}': the file is too large ({size_mb:.1f} MB; the limit is {max_upload_mb:g} MB)"
        )


def _too_long(name: str, duration_s: float, max_duration_s: float, *, at_least: bool = False) -> ParameterError:
    length = f"{'at least ' if at_least else ''}{duration_s:.1f} s"
    return ParameterError(f"cannot load '{name}': the audio is too long ({length}; the limit is {max_duration_s:g} s)")


def _read_soundfile(path: Path, name: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Decode with libsndfile. Returns float32 [shape=(channels, frames)] and the rate."""
    import soundfile as sf

    try:
        handle = sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        raise _Undecodable(str(exc), opened=False) from exc
    with handle:
        sample_rate = handle.samplerate
        if sample_rate <= 0:
            raise _Undecodable(f"invalid sample rate {sample_rate}", opened=True)
        # The header's frame count: refuse a long file before decoding it.
        if handle.frames / sample_rate > max_duration_s:
            raise _too_long(name, handle.frames / sample_rate, max_duration_s)
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, ValueError, MemoryError) as exc:
            raise _Undecodable(str(exc), opened=True) from exc
    return np.ascontiguousarray(data.T), int(sample_rate)


def _read_av(path: Path, name: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with FFmpeg (PyAV), guarding the duration while decoding.

    Returns float32 [shape=(channels, frames)] and the stream's rate.
    """
    import av

    try:
        # An absolute path, so that no part of a name can read as a protocol ("concat:...").
        container = av.open(os.path.abspath(path), container_options=_AV_OPTIONS)
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise _Undecodable(str(exc), opened=False) from exc
    with container:
        if not container.streams.audio:
            raise _Undecodable("no audio stream", opened=False)
        stream = container.streams.audio[0]
        header_duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            header_duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            header_duration_s = container.duration / av.time_base
        if header_duration_s is not None and header_duration_s > max_duration_s:
            raise _too_long(name, header_duration_s, max_duration_s)

        resampler = None  # converts any sample format and layout to planar float32
        blocks: list[np.ndarray] = []
        frames = 0
        sample_rate = 0
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    sample_rate = frame.sample_rate
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sample_rate)
                for out in resampler.resample(frame):
                    blocks.append(out.to_ndarray())
                    frames += out.samples
                if frames > max_duration_s * sample_rate:
                    raise _too_long(name, frames / sample_rate, max_duration_s, at_least=True)
            if resampler is not None:
                for out in resampler.resample(None):
                    blocks.append(out.to_ndarray())
                    frames += out.samples
        except ParameterError:
            raise  # too long: a ValueError too, but not a decoding failure
        except (av.FFmpegError, ValueError, MemoryError) as exc:
            raise _Undecodable(str(exc), opened=True) from exc
    if not blocks:
        return np.zeros((max(stream.channels, 1), 0), np.float32), int(sample_rate or stream.rate or 0)
    samples = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
    if header_duration_s is not None and "mp4" in container.format.name:
        # MP4 stores the exact duration; other headers (ADTS, mp3) hold only an estimate.
        expected = round(header_duration_s * sample_rate)
        if 0 < samples.shape[1] - expected <= _MAX_CODEC_PADDING_FRAMES:
            samples = samples[:, :expected]
    return np.ascontiguousarray(samples), int(sample_rate)


# Writing ----------------------------------------------------------------------------------

# format -> (libsndfile major format, default subtype); mp3 goes through pedalboard.
_WRITERS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_24"),
    "ogg": ("OGG", "VORBIS"),
    "aiff": ("AIFF", "PCM_16"),
    "mp3": (None, None),
}
_EXTENSION_ALIASES = {"aif": "aiff", "oga": "ogg", "wave": "wav"}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_WRITE_BLOCK_FRAMES = 65_536
_MP3_SAMPLE_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
_MP3_BITRATES_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
# Nominal libvorbis bitrates (44.1 kHz stereo) for quality 0.0 ... 1.0.
_VORBIS_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)
_VORBIS_QUALITY = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def save(
    audio: Audio,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    bitrate_kbps: int = 256,
    subtype: str | None = None,
) -> Path:
    """Write ``audio`` to ``path`` atomically.

    The file is written to a hidden temporary file in the same folder and moved onto
    ``path`` only once complete, so a failure never leaves a half-written file and never
    replaces an existing good one. Parent folders are created. Samples are clipped to
    [-1, 1] for every format except float WAV/AIFF (``subtype="FLOAT"`` or ``"DOUBLE"``).
    An mp3 must have 1 or 2 channels and an MPEG rate: any other rate is resampled to the
    next MPEG rate up (48 kHz at most) on the way out.

    Args:
        audio: the audio to write.
        path: the target file; its extension picks the format unless ``format`` is given.
        format: one of ``wav`` (16-bit PCM), ``flac`` (24-bit), ``ogg`` (vorbis), ``mp3``,
            ``aiff`` (16-bit PCM).
        bitrate_kbps: target bitrate for mp3 (snapped to the nearest MP3 bitrate; MPEG-2
            rates cap it at 160) and ogg vorbis (mapped to a vorbis quality), 32 to 320.
        subtype: libsndfile subtype for wav, flac and aiff, e.g. ``"PCM_24"`` or ``"FLOAT"``.

    Returns:
        The path written.

    Raises:
        ParameterError: an unknown format, a subtype the format cannot hold, a bitrate out
            of range, more than 2 channels for mp3 or 8 for flac, or an encoder that refuses
            the audio.
    """
    if not isinstance(audio, Audio):
        raise ParameterError(f"save() needs an Audio, got {type(audio).__name__}")
    path = Path(path)
    name = _display_name(path)
    fmt = _format_for(path, format)
    major, default_subtype = _WRITERS[fmt]
    if fmt in ("mp3", "ogg"):
        if not isinstance(bitrate_kbps, (int, np.integer)) or not 32 <= bitrate_kbps <= 320:
            raise ParameterError(
                f"cannot save '{name}': bitrate_kbps={bitrate_kbps!r} must be an integer between 32 and 320"
            )
        if subtype is not None:
            raise ParameterError(f"cannot save '{name}': subtype={subtype!r} applies to wav, flac and aiff only")
    if fmt == "mp3":
        if audio.channels > 2:
            raise ParameterError(
                f"cannot save '{name}': mp3 holds 1 or 2 channels, the audio has {audio.channels}; "
                "downmix first, e.g. audio.to_channels(2)"
            )
        if audio.sample_rate not in _MP3_SAMPLE_RATES:
            target = min((r for r in _MP3_SAMPLE_RATES if r >= audio.sample_rate), default=_MP3_SAMPLE_RATES[-1])
            audio = audio.resample(target)
    else:
        if fmt == "flac" and audio.channels > 8:
            raise ParameterError(
                f"cannot save '{name}': flac holds at most 8 channels, the audio has {audio.channels}"
            )
        subtype = (subtype or default_subtype).upper()
        import soundfile as sf

        if not sf.check_format(major, subtype):
            raise ParameterError(
                f"cannot save '{name}': subtype={subtype!r} is not valid for {fmt}; expected one of "
                f"{', '.join(sorted(sf.available_subtypes(major)))}"
            )
    clip = subtype not in _FLOAT_SUBTYPES

    # Keep the format's extension on the temporary file: some writers pick the codec from it.
    with atomic_path(path, suffix=f".tmp.{fmt}") as temp:
        try:
            if fmt == "mp3":
                _write_mp3(audio, temp, bitrate_kbps, clip)
            else:
                _write_soundfile(audio, temp, major, subtype, bitrate_kbps, clip)
        except (RuntimeError, ValueError, TypeError) as exc:
            # libsndfile's error_string leaves out the (temporary) path that str(exc) holds.
            reason = getattr(exc, "error_string", None) or str(exc)
            raise ParameterError(f"cannot save '{name}' as {fmt}: {reason}") from exc
        _fsync(temp)
    return path


def _format_for(path: Path, format: str | None) -> str:
    """The write format from ``format`` or the extension; an unknown one lists the valid ones."""
    given = format if format is not None else path.suffix
    fmt = str(given).lower().lstrip(".")
    fmt = _EXTENSION_ALIASES.get(fmt, fmt)
    if fmt not in _WRITERS:
        what = f"format={format!r}" if format is not None else f"extension {path.suffix or '(none)'!r} of '{path.name}'"
        raise ParameterError(f"cannot save {what}: supported formats are {', '.join(_WRITERS)}")
    return fmt


def _blocks(audio: Audio, clip: bool):
    """Successive float32 blocks [shape=(channels, <= _WRITE_BLOCK_FRAMES)], clipped if asked."""
    for start in range(0, audio.frames, _WRITE_BLOCK_FRAMES):
        block = audio.samples[:, start : start + _WRITE_BLOCK_FRAMES]
        yield np.clip(block, -1.0, 1.0) if clip else block


def _write_soundfile(audio: Audio, path: Path, major: str, subtype: str, bitrate_kbps: int, clip: bool) -> None:
    """wav, flac, aiff and ogg vorbis through libsndfile, in blocks.

    One huge write can make libsndfile's vorbis encoder fail or stall, so every format is
    written in blocks of ``_WRITE_BLOCK_FRAMES``.
    """
    import soundfile as sf

    options = {}
    if major == "OGG":
        # libsndfile sets vorbis quality = 1 - compression_level.
        quality = float(np.interp(bitrate_kbps, _VORBIS_KBPS, _VORBIS_QUALITY))
        options["compression_level"] = 1.0 - quality
    with sf.SoundFile(
        str(path), "w", samplerate=audio.sample_rate, channels=audio.channels,
        subtype=subtype, format=major, **options,
    ) as handle:
        for block in _blocks(audio, clip):
            handle.write(np.ascontiguousarray(block.T))


def _write_mp3(audio: Audio, path: Path, bitrate_kbps: int, clip: bool) -> None:
    """mp3 through pedalboard's LAME writer, constant bitrate.

    pedalboard rather than libsndfile: it takes the bitrate directly (``quality=kbps``),
    writes the LAME/Xing header that gives gapless decoding, and caps the bitrate for
    MPEG-2 rates itself; libsndfile's writer defaults to a low VBR quality (~40 kbps) and
    offers no direct bitrate setting.
    """
    from pedalboard.io import AudioFile

    kbps = min(_MP3_BITRATES_KBPS, key=lambda b: abs(b - bitrate_kbps))
    with AudioFile(str(path), "w", audio.sample_rate, audio.channels, quality=kbps) as handle:
        for block in _blocks(audio, clip):
            handle.write(np.ascontiguousarray(block))


def _fsync(path: Path) -> None:
    """Flush the finished file to disk before it is moved into place."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
