"""Demucs: four-stem separation (vocals, drums, bass, other) with weights from a local folder.

Weights are never downloaded. The user copies them into ``<models path>/demucs`` in the
layout of demucs's own local repositories (``demucs.repo.LocalRepo`` and ``BagOnlyRepo``):

- a single model is ``<name>.th``, or ``<signature>-<sha256 prefix>.th`` (demucs then checks
  the file against the prefix);
- a bag of models is ``<name>.yaml`` (``models: [sig1, sig2, ...]``, optional ``weights`` and
  ``segment``) beside the ``.th`` files of the signatures it lists, e.g. the release files
  ``htdemucs.yaml`` and ``955717e8-8726e21a.th``.

The model is loaded with ``demucs.pretrained.get_model(name, repo=folder)``; with ``repo``
given, demucs only reads that folder (no HuggingFace hub, no remote repository). Inference is
``demucs.apply.apply_model`` in overlapping segments (``split=True``, 25 % overlap, no
random shifts, so results are deterministic), on CUDA when available.

Signal path, per group of the model's channel count (a stereo pair for every released model):

1. resample to the model's rate and up- or down-mix to its channels;
2. normalise as demucs's own ``separate`` does: subtract the mean of the mono reference,
   divide by its standard deviation, and undo both on the estimates;
3. resample the estimates back to the input's rate and channels;
4. ``vocals``, ``drums`` and ``bass`` are the model's estimates of those names (``model.sources``
   order varies between models); ``other`` is the mixture minus those three, which is the
   model's ``other`` plus any extra sources (``guitar``, ``piano`` of ``htdemucs_6s``) plus
   the residual, so the four stems always sum to the input.

Note: ``.th`` files are Python pickles (demucs's format): load only weights you trust.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..audio import Audio
from ..errors import BackendUnavailable, ParameterError
from .common import bound_heap_growth, release_heap, residual

__all__ = ["DEMUCS_DEFAULT_MODEL", "DemucsSeparator", "available_models", "demucs_folder"]

log = logging.getLogger(__name__)

DEMUCS_DEFAULT_MODEL = "htdemucs"
DEMUCS_SUBFOLDER = "demucs"
OUTPUT_STEMS = ("vocals", "drums", "bass", "other")
MODEL_STEMS = ("vocals", "drums", "bass")  # taken from the model by name; "other" is the rest
OVERLAP = 0.25  # fraction of each segment shared with the next (demucs's default)
NORM_EPS = 1e-8  # added to the reference's standard deviation, as demucs's separate does
MODEL_ID_HASH_CHARS = 10
_HASH_BLOCK_BYTES = 1 << 20
_MAX_REASON_CHARS = 300
# Names that demucs.pretrained.get_model resolves without looking at the local folder.
_NOT_LOCAL_NAMES = ("demucs_unittest",)
_NOT_LOCAL_PREFIX = "hf://"


def demucs_folder(models_dir: Path) -> Path:
    """The folder that holds the Demucs weights: ``models_dir / "demucs"``.

    Args:
        models_dir: the models folder (``Settings.models_path``).
    """
    return Path(models_dir) / DEMUCS_SUBFOLDER


def available_models(folder: Path) -> list[str]:
    """The model names that can be loaded from ``folder``, sorted.

    A single model ``<sig>.th`` or ``<sig>-<checksum>.th`` is listed as ``<sig>``; a bag
    ``<name>.yaml`` is listed as ``<name>`` when it parses and every ``.th`` file it lists is
    present. Nothing is opened beyond the bag files: a listed model may still fail to load.

    Args:
        folder: the Demucs weights folder (see :func:`demucs_folder`); missing means none.
    """
    singles, bags = _scan(Path(folder))
    names = set(singles)
    for name, yaml_path in bags.items():
        if name in singles:
            continue
        try:
            _bag_members(yaml_path, singles)
        except BackendUnavailable:
            continue
        names.add(name)
    return sorted(names)


class DemucsSeparator:
    """Separates a song into vocals, drums, bass and other with a local Demucs model.

    Args:
        models_dir: the models folder (``Settings.models_path``); weights are read from its
            ``demucs`` subfolder.
        model_name: a single model or a bag of models in that folder (default ``htdemucs``).
        device: a torch device such as ``"cpu"`` or ``"cuda:0"``; ``None`` picks CUDA when
            available, else the CPU.
        segment_s: length of the segments the song is cut into, in seconds; ``None`` uses
            the model's own (7.8 s for htdemucs). A transformer model cannot take a segment
            longer than the one it was trained on.

    The model is loaded on the first :meth:`separate` and kept on the instance; it is loaded
    again if its weight files change.
    """

    def __init__(
        self,
        models_dir: Path,
        model_name: str = DEMUCS_DEFAULT_MODEL,
        device: str | None = None,
        segment_s: float | None = None,
    ) -> None:
        if not isinstance(model_name, str) or not model_name.strip():
            raise ParameterError(f"model_name={model_name!r} must be the name of a Demucs model, e.g. 'htdemucs'")
        if model_name in _NOT_LOCAL_NAMES or model_name.startswith(_NOT_LOCAL_PREFIX):
            raise ParameterError(
                f"model_name={model_name!r} is not a local model; name a model whose weights are in the "
                "demucs models folder, e.g. 'htdemucs'"
            )
        if "/" in model_name or "\\" in model_name or model_name in (".", ".."):
            raise ParameterError(
                f"model_name={model_name!r} must be a plain model name (a file name without .th or .yaml), "
                "not a path"
            )
        if device is not None and (not isinstance(device, str) or not device.strip()):
            raise ParameterError(f"device={device!r} must be a torch device name such as 'cpu' or 'cuda', or None")
        if segment_s is not None:
            if isinstance(segment_s, bool) or not isinstance(segment_s, (int, float)) or not (
                math.isfinite(segment_s) and segment_s > 0
            ):
                raise ParameterError(f"segment_s={segment_s!r} must be a positive number of seconds, or None")
        self.models_dir = Path(models_dir)
        self.folder = demucs_folder(self.models_dir)
        self.model_name = model_name
        self.device = device
        self.segment_s = None if segment_s is None else float(segment_s)
        self._lock = threading.Lock()
        self._model: Any = None
        self._model_device: Any = None
        self._loaded_stamp: tuple | None = None
        self._hash_memo: tuple[tuple, str] | None = None

    def __repr__(self) -> str:
        return f"DemucsSeparator(model_name={self.model_name!r}, device={self.device!r}, segment_s={self.segment_s!r})"

    # Weights ---------------------------------------------------------------------------

    def weight_files(self) -> list[Path]:
        """The files the model is made of: the bag's ``.yaml`` first, then its ``.th`` files.

        Raises:
            BackendUnavailable: the model is not in the folder, or its bag file is unreadable
                or names a ``.th`` file that is not there.
        """
        singles, bags = _scan(self.folder)
        if self.model_name in singles:  # demucs prefers a single model over a bag of the same name
            return [singles[self.model_name]]
        if self.model_name in bags:
            yaml_path = bags[self.model_name]
            return [yaml_path, *_bag_members(yaml_path, singles)]
        raise BackendUnavailable(_missing_message(self.folder, self.model_name))

    def is_available(self) -> bool:
        """Whether the weight files are present (cheap: nothing is loaded or hashed)."""
        try:
            self.weight_files()
        except BackendUnavailable:
            return False
        return True

    @property
    def model_id(self) -> str:
        """``demucs-<name>-<hash>``: the hash covers the weight files' contents, so a changed file
        gives a new id (a cache key). Memoised on the files' sizes and times.

        Raises:
            BackendUnavailable: the weights are missing.
        """
        files = self.weight_files()
        stamp = _stamp(files)
        memo = self._hash_memo
        if memo is None or memo[0] != stamp:
            digest = hashlib.sha256()
            for path in files:
                digest.update(path.name.encode("utf-8") + b"\0")
                try:
                    with open(path, "rb") as handle:
                        while block := handle.read(_HASH_BLOCK_BYTES):
                            digest.update(block)
                except OSError as exc:
                    raise BackendUnavailable(
                        f"Demucs weight file '{path.name}' in {self.folder} cannot be read: {exc.strerror or exc}"
                    ) from exc
            memo = (stamp, digest.hexdigest()[:MODEL_ID_HASH_CHARS])
            self._hash_memo = memo
        return f"demucs-{self.model_name}-{memo[1]}"

    # Separation ------------------------------------------------------------------------

    def separate(self, audio: Audio, progress: Callable[[float], None] | None = None) -> dict[str, Audio]:
        """Separate ``audio`` into four stems that sum to it.

        Args:
            audio: the mixture, any rate and channel count.
            progress: called with the fraction done, 0 to 1, non-decreasing: at the start,
                after each segment the model processes, and at the end.

        Returns:
            ``{"vocals", "drums", "bass", "other"} -> Audio``, each with the input's rate,
            channels and length; their sum equals the input to float32 rounding.

        Raises:
            ParameterError: ``audio`` is not an Audio, or ``segment_s`` is longer than the
                model allows.
            BackendUnavailable: the weights are missing, unreadable or corrupt (the message
                names the file), or the model does not separate vocals, drums and bass.
        """
        if not isinstance(audio, Audio):
            raise ParameterError(f"separate() needs an Audio, got {type(audio).__name__}")
        report = _Progress(progress)
        report(0.0)
        files = self.weight_files()  # a missing model fails before the (slow) load
        mixture = audio.samples
        if not np.any(mixture):  # silence: nothing to separate
            zeros = np.zeros_like(mixture)
            report(1.0)
            return {name: Audio(zeros, audio.sample_rate) for name in OUTPUT_STEMS}

        model, device = self._loaded(files)
        model_channels = int(model.audio_channels)
        groups = [
            list(range(start, min(start + model_channels, audio.channels)))
            for start in range(0, audio.channels, model_channels)
        ]
        estimates = {name: np.zeros_like(mixture) for name in MODEL_STEMS}
        for index, channels in enumerate(groups):
            part = Audio(mixture[channels], audio.sample_rate)
            stems = self._separate_group(
                model, device, part, lambda fraction, i=index: report((i + fraction) / len(groups))
            )
            for name in MODEL_STEMS:
                estimates[name][channels] = stems[name]

        estimates["other"] = residual(mixture, [estimates[name] for name in MODEL_STEMS])
        report(1.0)
        return {name: Audio(estimates[name], audio.sample_rate) for name in OUTPUT_STEMS}

    def _separate_group(
        self, model: Any, device: Any, part: Audio, report: Callable[[float], None]
    ) -> dict[str, np.ndarray]:
        """Run the model on one group of channels.

        Returns:
            float32 estimates [shape=(part.channels, part.frames)] for ``MODEL_STEMS``, at the
            part's rate.
        """
        import torch
        from demucs.apply import apply_model

        if device.type == "cpu":
            # Measured on the full-size htdemucs over 40 s: with glibc's rising threshold the heap
            # kept about 1.3 GB; with 4 MB, about 0.96 GB, for 1.3 to 1.6 times the time. Demucs
            # on a CPU is memory bound first, so the trade is taken there.
            bound_heap_growth(4 << 20)
        model_rate = int(model.samplerate)
        model_channels = int(model.audio_channels)
        native = part.to_channels(model_channels).resample(model_rate)
        wav = torch.from_numpy(np.array(native.samples, dtype=np.float32))
        ref = wav.mean(0)
        mean = ref.mean()
        std = (ref.std() if ref.numel() > 1 else torch.zeros(())) + NORM_EPS

        total_chunks = _chunk_count(model, wav.shape[-1], self.segment_s)
        done = 0

        def on_chunk(info: dict) -> None:
            nonlocal done
            if info.get("state") == "end":
                done += 1
                if device.type == "cpu":
                    release_heap()
                report(min(done / total_chunks, 1.0))

        kwargs: dict[str, Any] = {}
        if _apply_model_takes_callback():
            kwargs["callback"] = on_chunk
        out = apply_model(
            model,
            ((wav - mean) / std)[None],
            shifts=0,
            split=True,
            overlap=OVERLAP,
            progress=False,
            device=device,
            segment=self.segment_s,
            **kwargs,
        )
        out = (out[0] * std + mean).cpu().numpy()  # [shape=(sources, channels, frames)]
        if not np.isfinite(out).all():
            raise BackendUnavailable(
                f"Demucs model '{self.model_name}' produced NaN or infinite samples; its weights in "
                f"{self.folder} may be damaged"
            )
        sources = list(model.sources)
        stems = {}
        for name in MODEL_STEMS:
            stem = Audio(out[sources.index(name)], model_rate).resample(part.sample_rate)
            stem = stem.to_channels(part.channels).samples
            stems[name] = _fit_length(stem, part.frames)
        report(1.0)
        return stems

    # Loading ---------------------------------------------------------------------------

    def _loaded(self, files: list[Path]) -> tuple[Any, Any]:
        """The model on its device, loaded once; loaded again if the weight files changed."""
        stamp = _stamp(files)
        with self._lock:
            if self._model is None or self._loaded_stamp != stamp:
                self._model = None
                model = self._load(files)
                device = _resolve_device(self.device)
                try:
                    model.to(device)
                except (RuntimeError, AssertionError) as exc:
                    raise BackendUnavailable(f"cannot move the Demucs model to device '{device}': {exc}") from exc
                self._model, self._model_device, self._loaded_stamp = model, device, stamp
            return self._model, self._model_device

    def _load(self, files: list[Path]) -> Any:
        """Load through ``demucs.pretrained.get_model`` with the local folder as the repo.

        Raises:
            BackendUnavailable: a file is unreadable or corrupt, needs a missing package, or
                the model lacks vocals, drums or bass.
            ParameterError: ``segment_s`` is longer than the model allows.
        """
        from demucs.pretrained import get_model
        from demucs.repo import ModelLoadingError

        name = self.model_name
        log.info("loading Demucs model %r from %s", name, self.folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = get_model(name, repo=self.folder)
        except ModelLoadingError as exc:  # checksum mismatch, duplicate signatures, unknown name
            raise BackendUnavailable(f"cannot load Demucs model '{name}' from {self.folder}: {exc}") from exc
        except SystemExit as exc:  # demucs exits when a quantized model needs diffq
            raise BackendUnavailable(
                f"Demucs model '{name}' is quantized and needs the 'diffq' package, which is not installed; "
                "use a model that is not quantized, such as htdemucs"
            ) from exc
        except ImportError as exc:
            raise BackendUnavailable(f"Demucs model '{name}' needs a package that is not installed: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - torch.load/pickle/state errors have no common base
            raise self._load_failure(files, exc) from exc

        sources = [str(source) for source in model.sources]
        lacking = [stem for stem in MODEL_STEMS if stem not in sources]
        if lacking:
            raise BackendUnavailable(
                f"Demucs model '{name}' separates {', '.join(sources)}; four-stem separation needs "
                f"{', '.join(MODEL_STEMS)} (it lacks {', '.join(lacking)})"
            )
        limit_s = _max_segment_s(model)
        if self.segment_s is not None and self.segment_s > limit_s:
            raise ParameterError(
                f"segment_s={self.segment_s:g} is longer than Demucs model '{name}' allows "
                f"(at most {limit_s:g} s, the length it was trained on)"
            )
        return model

    def _load_failure(self, files: list[Path], exc: BaseException) -> BackendUnavailable:
        """A BackendUnavailable naming the weight file that cannot be loaded, and why."""
        from demucs.states import load_model

        culprit, reason = None, _reason(exc)
        weights = [path for path in files if path.suffix == ".th"]
        if len(weights) == 1:
            culprit = weights[0]
        else:  # a bag: find the member that fails on its own
            for path in weights:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        load_model(path)
                except Exception as member_exc:  # noqa: BLE001 - as in _load
                    culprit, reason = path, _reason(member_exc)
                    break
        if culprit is None:
            return BackendUnavailable(
                f"the models of Demucs bag '{files[0].name}' in {self.folder} load one by one but not "
                f"together (different sources, rates or channels, or bad weights): {reason}"
            )
        return BackendUnavailable(
            f"Demucs weight file '{culprit.name}' in {self.folder} cannot be loaded: it is corrupt, truncated "
            f"or not a Demucs model ({reason}); replace it with an intact copy"
        )


# Helpers --------------------------------------------------------------------------------


class _Progress:
    """Calls ``progress`` with non-decreasing fractions in [0, 1], skipping repeats."""

    def __init__(self, progress: Callable[[float], None] | None) -> None:
        self._progress = progress
        self._last = -1.0

    def __call__(self, fraction: float) -> None:
        fraction = min(max(float(fraction), self._last, 0.0), 1.0)
        if self._progress is not None and fraction > self._last:
            self._last = fraction
            self._progress(fraction)


def _scan(folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Single models (signature -> .th) and bags (name -> .yaml), named as demucs's repos name them."""
    singles: dict[str, Path] = {}
    bags: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # missing, not a folder, or unreadable: no models
        return singles, bags
    for path in entries:
        if path.suffix == ".th":
            signature = path.stem.rsplit("-", 1)[0] if "-" in path.stem else path.stem
            singles.setdefault(signature, path)  # a duplicate is reported by demucs on load
        elif path.suffix == ".yaml":
            bags[path.stem] = path
    return singles, bags


def _bag_members(yaml_path: Path, singles: dict[str, Path]) -> list[Path]:
    """The ``.th`` files a bag lists, in order.

    Raises:
        BackendUnavailable: the bag file is unreadable or malformed, or a member is missing.
    """
    import yaml

    where = f"Demucs bag '{yaml_path.name}' in {yaml_path.parent}"
    try:
        bag = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BackendUnavailable(f"{where} cannot be read: {_reason(exc)}") from exc
    signatures = bag.get("models") if isinstance(bag, dict) else None
    if not isinstance(signatures, list) or not signatures or not all(isinstance(s, str) for s in signatures):
        raise BackendUnavailable(f"{where} must hold 'models: [signature, ...]', a non-empty list of names")
    missing = [signature for signature in signatures if signature not in singles]
    if missing:
        raise BackendUnavailable(
            f"{where} lists {', '.join(missing)} but the folder has no "
            f"{' or '.join(f'{s}.th (or {s}-<checksum>.th)' for s in missing)}; copy the bag's .th files beside it"
        )
    return [singles[signature] for signature in signatures]


def _missing_message(folder: Path, name: str) -> str:
    present = available_models(folder)
    listing = ", ".join(present) if present else "none"
    default = "" if name == DEMUCS_DEFAULT_MODEL else f" (for the default model, '{DEMUCS_DEFAULT_MODEL}.th')"
    return (
        f"Demucs model '{name}' is not installed. Put its weights in {folder}: a single model as "
        f"'{name}.th'{default}, or a bag of models as '{name}.yaml' beside the .th files it lists"
        f"{_release_hint(name)}. Models in that folder: {listing}. Nothing is downloaded: the "
        "weights must be copied there by hand, or another separator chosen."
    )


def _release_hint(name: str) -> str:
    """For a released model name: ``" (release files: htdemucs.yaml, 955717e8-8726e21a.th)"``.

    Read from the file lists shipped inside the demucs package; nothing is fetched.
    """
    try:
        import yaml

        remote = importlib.resources.files("demucs") / "remote"
        bag = yaml.safe_load((remote / f"{name}.yaml").read_text(encoding="utf-8"))
        signatures = list(bag["models"])
        files = [
            line.strip()
            for line in (remote / "files.txt").read_text(encoding="utf-8").splitlines()
            if line.strip().endswith(".th")
        ]
        members = [next(f for f in files if f.split("-", 1)[0] == signature) for signature in signatures]
    except Exception:  # noqa: BLE001 - only a hint: an unknown name or a changed layout gives none
        return ""
    return f" (for {name}, demucs's release files are {', '.join([f'{name}.yaml', *members])})"


def _stamp(files: list[Path]) -> tuple:
    """(name, size, mtime, inode) of each file: changes when a file is replaced or rewritten."""
    stamp = []
    for path in files:
        try:
            info = path.stat()
        except OSError as exc:
            raise BackendUnavailable(f"Demucs weight file '{path.name}' cannot be read: {exc.strerror or exc}") from exc
        stamp.append((path.name, info.st_size, info.st_mtime_ns, info.st_ino))
    return tuple(stamp)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def _resolve_device(device: str | None) -> Any:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ParameterError(f"device={device!r} is not a torch device name, e.g. 'cpu' or 'cuda'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device={device!r} was asked for but CUDA is not available here")
    return resolved


def _max_segment_s(model: Any) -> float:
    """The longest segment a model (or bag) accepts: a transformer's training length, else unbounded."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    if isinstance(model, BagOfModels):
        return float(model.max_allowed_segment)
    if isinstance(model, HTDemucs):
        return float(model.segment)
    return math.inf


def _chunk_count(model: Any, frames: int, segment_s: float | None) -> int:
    """How many segments ``apply_model(split=True)`` will run, summed over a bag's models."""
    from demucs.apply import BagOfModels

    members = list(model.models) if isinstance(model, BagOfModels) else [model]
    total = 0
    for member in members:
        segment = segment_s if segment_s is not None else member.segment
        segment_frames = int(member.samplerate * segment)
        stride = max(int((1 - OVERLAP) * segment_frames), 1)
        total += len(range(0, frames, stride))
    return max(total, 1)


_CALLBACK_SUPPORT: bool | None = None


def _apply_model_takes_callback() -> bool:
    """demucs 4.1 reports each segment through ``apply_model(callback=)``; older ones do not."""
    global _CALLBACK_SUPPORT
    if _CALLBACK_SUPPORT is None:
        import inspect

        from demucs.apply import apply_model

        _CALLBACK_SUPPORT = "callback" in inspect.signature(apply_model).parameters
    return _CALLBACK_SUPPORT


def _fit_length(samples: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad [shape=(channels, n)] to ``frames`` (resampling can be a frame off)."""
    if samples.shape[1] >= frames:
        return samples[:, :frames]
    return np.pad(samples, ((0, 0), (0, frames - samples.shape[1])))
