"""Reading a request: normalise, tokenise, correct typos, tag phrases and quantities.

The words live in data files next to this module (``lexicon/*.toml``); style and genre names
come from the tools themselves (``tools.styles`` PRESETS and STYLE_ALIASES, ``tools.grooves``
GENRES and GENRE_ALIASES). A request is read in four steps:

1. **Normalise and tokenise**: lower case, accents dropped, contractions and chat spellings
   rewritten ("what's" -> "what is", "pls" -> "please"), digits split from letters ("124bpm"
   -> "124 bpm", "1.25x" -> "1.25 x"), "&" read as "and", "+" and "-" as signs before a
   number. Every lexicon phrase goes through the same steps, so "lo-fi" and "lo fi" match.
2. **Correct**: a word that is neither in the lexicon nor an English word (the sentence
   model's WordPiece vocabulary serves as the list of English words) is lemmatised
   ("taking" -> "take") or matched against the lexicon's words with rapidfuzz
   (Damerau-Levenshtein: one edit for words up to seven letters, two beyond; "vocels" ->
   "vocals", "nightcor" -> "nightcore", "chrous" -> "chorus").
3. **Tag**: every lexicon phrase and every number with its unit ("a minute and a half",
   "two semitones", "1.25x", "version 3") is a candidate span; the longest candidates win,
   ties go by the precedence in ``grammar.toml``. So "slowed and reverb" and "drum and bass"
   are read whole before their "and" could split a clause.
4. **Phrasal verbs**: a verb and its particle up to three words later ("turn the bass down",
   "speed it up") become one operation.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

__all__ = ["LEXICON_DIR", "Quantity", "Span", "Reading", "Lexicon", "lexicon", "load_toml"]

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"

_TOKEN = re.compile(r"\d+:\d{2}|\d+(?:\.\d+)?|[a-z]+|[%,;.!?+\-]")
_WORD = re.compile(r"[a-z0-9/']+")
_PUNCTUATION = {",", ";", ".", "!", "?"}
# Suffixes tried by the lemmatiser, in order: (suffix, replacement).
_SUFFIXES = (("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""))
_PARTICLE_REACH = 4  # a phrasal verb's particle may come up to three words after it


def load_toml(name: str) -> dict[str, Any]:
    """One lexicon file, parsed."""
    with open(LEXICON_DIR / name, "rb") as handle:
        return tomllib.load(handle)


@dataclass(frozen=True)
class Quantity:
    """A number and its unit (None for a bare number), in the unit's base (seconds, semitones).

    ``signed`` is True when the request wrote its sign ("+2", "minus 3").
    """

    value: float
    unit: str | None = None
    signed: bool = False


@dataclass(frozen=True)
class Span:
    """Tokens ``[start, end)`` read as one thing.

    ``kind`` is what they are (stem, style, genre, voice, section, op, quantity, ...) and
    ``value`` what they mean (stem names, a preset id, an operation, a Quantity, ...).
    """

    kind: str
    value: Any
    start: int
    end: int


@dataclass(frozen=True)
class Reading:
    """A request as the planner sees it.

    Attributes:
        source: the request as written.
        text: the normalised text.
        tokens: its tokens after correction.
        spans: the tagged spans, in order; tokens in no span carry no meaning here.
        corrections: (typed, read) pairs for every corrected word.
        ask: the request opens like a question about the song ("what key ...", "how fast ...").
        request: it opens like a polite request ("can you ...", "how about ...").
        question_mark: it ends with "?".
        topics: what a question would be about (key, tempo, sections, length, changes, ...).
        read: indices of the tokens that mean something here (in a span, or a verb's particle).
    """

    source: str
    text: str
    tokens: tuple[str, ...]
    spans: tuple[Span, ...]
    corrections: tuple[tuple[str, str], ...]
    ask: bool
    request: bool
    question_mark: bool
    topics: frozenset[str]
    read: frozenset[int]


@lru_cache(maxsize=1)
def _english_words() -> frozenset[str]:
    """Whole words of the sentence model's WordPiece vocabulary: a list of English words.

    Read from ``tokenizer.json`` inside the model package's zip; empty when the package is
    missing (then every unknown word is a typo candidate).
    """
    from tools.errors import BackendUnavailable

    from .embeddings import model_zip

    try:
        with zipfile.ZipFile(model_zip()) as archive:
            vocab = json.loads(archive.read("tokenizer.json"))["model"]["vocab"]
    except (BackendUnavailable, OSError, KeyError, ValueError, zipfile.BadZipFile):
        return frozenset()
    return frozenset(word for word in vocab if word.isalpha() and word.isascii())


class Lexicon:
    """The phrase table, numbers and units, and the readers built on them (see the module doc)."""

    def __init__(self) -> None:
        from tools.grooves import GENRE_ALIASES, GENRES
        from tools.styles import PRESETS, STYLE_ALIASES

        self.words = load_toml("words.toml")
        self.ops = load_toml("ops.toml")
        self.names = load_toml("names.toml")
        self.grammar = load_toml("grammar.toml")
        self.rewrites: dict[str, str] = self.words["normalise"]["rewrites"]
        numbers = self.words["numbers"]
        self.number_words: dict[str, float] = numbers["words"]
        self.scales: dict[str, float] = numbers["scales"]
        self.articles = set(numbers["articles"])
        self.article_ordinals, self.article_pauses = set(numbers["article_ordinals"]), set(numbers["article_pauses"])
        self.and_a_half = [self._key(p) for p in numbers["and_a_half"]]
        self.half_of = [self._key(p) for p in numbers["half_of"]]
        self.fractions: dict[str, float] = numbers["fractions"]
        self.minus_words, self.plus_words = set(numbers["minus"]), set(numbers["plus"])
        self.units = sorted(
            ((self._key(p), u["unit"], float(u["per"])) for u in self.words["units"] for p in u["phrases"]),
            key=lambda item: -len(item[0]),
        )
        self.prefix_units = {p: u["unit"] for u in self.words["prefix_units"] for p in u["phrases"]}
        self.phrasal: dict[str, dict[str, str]] = self.ops["phrasal"]
        sections = self.words["sections"]
        self.needs_determiner = {self._key(p) for p in sections["needs_determiner"]}
        self.determiners = set(sections["determiners"]) | set(self.words["ordinals"]["numbers"])
        self.precedence = {kind: i for i, kind in enumerate(self.grammar["precedence"]["kinds"])}
        questions = self.words["questions"]
        self.ask_openers = [self._key(p) for p in questions["ask"]]
        self.request_openers = [self._key(p) for p in questions["request"]]
        self.interjections = set(questions["interjections"])
        self.topics = {topic: [self._key(p) for p in phrases] for topic, phrases in self.words["topics"].items()}
        # intensity phrases that name an amount rather than a change of it ("all the way", "halfway")
        self.absolute = {self._key(p) for p in self.words["absolute_intensity"]["phrases"]}

        self.phrases: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
        self._add_words()
        self._add_names(PRESETS, STYLE_ALIASES, GENRES, GENRE_ALIASES)
        self._add_ops()
        self.max_phrase = max(len(key) for key in self.phrases)
        self.vocabulary = self._vocabulary()
        self._targets = sorted(word for word in self.vocabulary if word.isalpha() and len(word) >= 3)
        self.english = _english_words()

    # -------------------------------------------------------------------- building the table

    def _key(self, phrase: str) -> tuple[str, ...]:
        return tuple(self.tokenize(phrase))

    def _add(self, phrase: str, kind: str, value: Any) -> None:
        readings = self.phrases.setdefault(self._key(phrase), [])
        if (kind, value) not in readings:
            readings.append((kind, value))

    def _add_words(self) -> None:
        words = self.words
        for stem, phrases in words["stems"].items():
            for phrase in phrases:
                self._add(phrase, "stem", (stem,))
        for group in words["stem_groups"].values():
            for phrase in group["phrases"]:
                self._add(phrase, "stem", tuple(group["stems"]))
        for compound in words["compounds"]:
            for phrase in compound["phrases"]:
                self._add(phrase, "compound", (compound["op"], tuple(compound["stems"])))
        plurals = set(words["sections"]["plurals"])
        for label in ("intro", "verse", "chorus", "bridge", "drop", "outro"):
            for phrase in words["sections"][label]:
                self._add(phrase, "section", (label, phrase in plurals))
        for phrase in words["sections"]["every"]:
            self._add(phrase, "every", True)
        for phrase, number in words["ordinals"]["numbers"].items():
            self._add(phrase, "ordinal", number)
        for phrase in words["ordinals"]["last"]:
            self._add(phrase, "ordinal", "last")
        for where in ("start", "end"):
            for phrase in words["positions"][where]:
                self._add(phrase, "position", where)
        for where in ("before", "after"):
            for phrase in words["positions"][where]:
                self._add(phrase, "relpos", where)
        for level, phrases in words["intensity"].items():
            for phrase in phrases:
                self._add(phrase, "intensity", level)
        for kind, phrases in words["object_words"].items():
            for phrase in phrases:
                self._add(phrase, "object", kind)
        for phrase, (value, unit) in words["quantities"].items():
            self._add(phrase, "quantity", Quantity(float(value), unit))
        references = words["references"]
        for kind, key in (("ref", "pronouns"), ("same", "same"), ("instead", "instead")):
            for phrase in references[key]:
                self._add(phrase, kind, True)
        for phrase in words["clauses"]["boundaries"]:
            self._add(phrase, "boundary", True)
        for phrase in words["clauses"]["target_prepositions"]:
            self._add(phrase, "target_prep", True)
        keys = words["keys"]
        for note, pitch_class in keys["notes"].items():
            for phrasing in keys["phrasings"]:
                if note not in keys["words"] or phrasing.startswith(("key", "the key")):
                    self._add(phrasing.format(note=note), "note", pitch_class)

    def _add_names(self, presets, style_aliases, genres, genre_aliases) -> None:
        ignore = self.names["ignore"]
        for preset in presets.values():
            self._add(preset.id.replace("_", " "), "style", preset.id)
            self._add(preset.title, "style", preset.id)
        for alias, preset_id in style_aliases.items():
            if alias not in ignore["style_aliases"]:
                self._add(alias, "style", preset_id)
        for genre in genres.values():
            self._add(genre.id.replace("_", " "), "genre", genre.id)
            self._add(genre.title, "genre", genre.id)
        for alias, genre_id in genre_aliases.items():
            if alias not in ignore["genre_aliases"]:
                self._add(alias, "genre", genre_id)
        for kind in ("styles", "genres", "voices"):
            for name, phrases in self.names[kind].items():
                for phrase in phrases:
                    self._add(phrase, kind[:-1], name)

    def _add_ops(self) -> None:
        for op, entry in self.ops["ops"].items():
            for phrase in entry["phrases"]:
                self._add(phrase, "op", op)

    def _vocabulary(self) -> frozenset[str]:
        words: set[str] = {token for key in self.phrases for token in key}
        words |= set(self.number_words) | set(self.scales) | set(self.fractions) | {t for key, _, _ in self.units for t in key}
        words |= set(self.phrasal) | {p for particles in self.phrasal.values() for p in particles}
        words |= {t for key in self.ask_openers + self.request_openers for t in key}
        words |= {t for keys in self.topics.values() for key in keys for t in key}
        return frozenset(words)

    # ------------------------------------------------------------------------------ reading

    def normalise(self, text: str) -> str:
        """Lower case, ASCII, contractions rewritten (see ``words.toml`` [normalise])."""
        text = text.replace("\u2019", "'").replace("\u2018", "'")
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
        text = _WORD.sub(lambda m: self.rewrites.get(m.group(0), m.group(0)), text)
        text = re.sub(r"'s\b", "", text).replace("'", "").replace("&", " and ")
        return " ".join(text.split())

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``: words, numbers ("1.25", "1:30"), "%", punctuation and signs."""
        raw = _TOKEN.findall(self.normalise(text))
        tokens: list[str] = []
        for i, token in enumerate(raw):
            if token in "+-":
                before_number = i + 1 < len(raw) and raw[i + 1][0].isdigit()
                after_number = bool(tokens) and tokens[-1][0].isdigit()
                if before_number and not after_number:
                    tokens.append(token)
                elif token == "+":
                    tokens.append("and")
                continue  # a hyphen joins words: "lo-fi" is "lo fi"
            tokens.append(token)
        return tokens

    def correct(self, tokens: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """Lemmatise or fuzzy-correct the words the lexicon does not know (see the module doc)."""
        out, corrections = [], []
        for token in tokens:
            fixed = self._correct(token)
            if fixed != token:
                corrections.append((token, fixed))
            out.append(fixed)
        return out, corrections

    def _correct(self, token: str) -> str:
        if not token.isalpha() or token in self.vocabulary:
            return token
        for suffix, replacement in _SUFFIXES:
            if token.endswith(suffix) and len(token) - len(suffix) >= 2:
                stem = token[: -len(suffix)]
                for lemma in (stem + replacement, stem[:-1] if stem[-1:] == stem[-2:-1] else None):
                    if lemma and lemma in self.vocabulary:
                        return lemma
        if len(token) < 4 or token in self.english:
            return token
        edits = 1 if len(token) <= 7 else 2
        found = process.extract(token, self._targets, scorer=DamerauLevenshtein.distance, score_cutoff=edits, limit=None)
        if not found:
            return token
        # Fewest edits, then the same length (a slip of the finger: "intor" is "intro", not "into").
        return min(found, key=lambda hit: (hit[1], abs(len(hit[0]) - len(token)), -fuzz.ratio(token, hit[0]), hit[0]))[0]

    def read(self, text: str) -> Reading:
        """The full reading of a request: tokens, corrections, spans, question cues, topics."""
        tokens, corrections = self.correct(self.tokenize(text))
        spans, particles = self._phrasal(tokens, self._tag(tokens))
        start = 0
        while start < len(tokens) and tokens[start] in self.interjections:
            start += 1
        ask = self._opens(tokens, start, self.ask_openers)
        request = self._opens(tokens, start, self.request_openers)  # "can you tell me" asks, "can you" requests
        topics = frozenset(
            topic for topic, keys in self.topics.items() if any(_contains(tokens, key) for key in keys)
        )
        return Reading(
            source=text,
            text=" ".join(tokens),
            tokens=tuple(tokens),
            spans=tuple(spans),
            corrections=tuple(corrections),
            ask=ask > request,
            request=request > 0 and request >= ask,
            question_mark=text.strip().endswith("?"),
            topics=topics,
            read=frozenset(i for span in spans for i in range(span.start, span.end)) | particles,
        )

    @staticmethod
    def _opens(tokens: list[str], start: int, openers: list[tuple[str, ...]]) -> int:
        """Length of the longest opener at ``start`` (0 when none)."""
        return max((len(key) for key in openers if tuple(tokens[start : start + len(key)]) == key), default=0)

    # ------------------------------------------------------------------------------ tagging

    def _tag(self, tokens: list[str]) -> list[Span]:
        candidates: list[tuple[int, int, int, Span]] = []
        for i in range(len(tokens)):
            for length in range(min(self.max_phrase, len(tokens) - i), 0, -1):
                key = tuple(tokens[i : i + length])
                for kind, value in self.phrases.get(key, ()):
                    if kind == "section" and key in self.needs_determiner and (i == 0 or tokens[i - 1] not in self.determiners):
                        continue
                    candidates.append((-length, self.precedence[kind], i, Span(kind, value, i, i + length)))
            found = self._quantity_at(tokens, i)
            if found is not None:
                quantity, end = found
                kind = "number" if quantity.unit is None else "quantity"
                candidates.append((-(end - i), self.precedence[kind], i, Span(kind, quantity, i, end)))
        taken = [False] * len(tokens)
        chosen: list[Span] = []
        for *_, span in sorted(candidates, key=lambda c: c[:3]):
            if not any(taken[span.start : span.end]):
                taken[span.start : span.end] = [True] * (span.end - span.start)
                chosen.append(span)
        return sorted(chosen, key=lambda s: s.start)

    def _phrasal(self, tokens: list[str], spans: list[Span]) -> tuple[list[Span], frozenset[int]]:
        """Join verbs to their particles ("turn the bass down" -> reduce), see ``ops.toml`` [phrasal].

        Returns the spans and the indices of the particles joined to their verbs.
        """
        by_start = {span.start: span for span in spans}
        dropped: set[int] = set()
        joined: dict[int, Span] = {}
        covered = {i for span in spans for i in range(span.start, span.end) if span.end - span.start > 1}
        for i, token in enumerate(tokens):
            particles = self.phrasal.get(token)
            if particles is None or i in covered:
                continue
            for j in range(i + 1, min(i + 1 + _PARTICLE_REACH, len(tokens))):
                span = by_start.get(j)
                if tokens[j] in _PUNCTUATION or (span is not None and span.kind == "boundary"):
                    break
                if tokens[j] in particles and j not in covered and j not in dropped:
                    joined[i] = Span("op", particles[tokens[j]], i, i + 1)
                    dropped.add(j)
                    break
        out = [joined.pop(span.start, span) for span in spans if span.start not in dropped]
        out.extend(joined.values())  # verbs that were in no span ("take ... out")
        return sorted(out, key=lambda s: s.start), frozenset(dropped)

    def _quantity_at(self, tokens: list[str], i: int) -> tuple[Quantity, int] | None:
        """A number at token ``i`` with its sign, "and a half" and unit, and the index after it."""
        n = len(tokens)
        if tokens[i] in self.prefix_units:
            found = self._bare_number(tokens, i + 1)
            if found is not None:
                return Quantity(found[0], self.prefix_units[tokens[i]]), found[1]
            return None
        sign, j = 1.0, i
        if tokens[i] in ("+", "-") or tokens[i] in self.minus_words or tokens[i] in self.plus_words:
            sign = -1.0 if tokens[i] == "-" or tokens[i] in self.minus_words else 1.0
            j += 1
        signed = j > i
        if j < n and re.fullmatch(r"\d+:\d{2}", tokens[j]):
            minutes, seconds = tokens[j].split(":")
            return Quantity(sign * (int(minutes) * 60 + int(seconds)), "seconds", signed), j + 1
        found = self._bare_number(tokens, j)
        needs_unit = False
        if found is None:
            half = next((k for k in self.half_of if tuple(tokens[j : j + len(k)]) == k), None)
            if half is not None:
                found, needs_unit = (0.5, j + len(half)), True
            elif j < n and tokens[j] in self.articles:
                found, needs_unit = (1.0, j + 1), True
            else:
                return None
        value, j = found
        if j < n and tokens[j] in self.fractions and not needs_unit:  # "three quarters"
            value, j = value * self.fractions[tokens[j]], j + 1
        half = self._half_length(tokens, j)  # "two and a half minutes"
        value, j = value + (0.5 if half else 0.0), j + half
        for key, unit, per in self.units:
            if tuple(tokens[j : j + len(key)]) == key:
                end = j + len(key)
                if needs_unit and not half and self._names_at(tokens, end):
                    return None  # "a second harmony", "a second chorus": an ordinal, not a length
                if needs_unit and not half and i > 0 and tokens[i - 1] in self.article_pauses:
                    return None  # "wait a second, undo that": a pause in speech, not a length
                after = 0 if half else self._half_length(tokens, end)  # "a minute and a half"
                return Quantity(sign * (value + (0.5 if after else 0.0)) * per, unit, signed), end + after
        if needs_unit:
            return None
        return Quantity(sign * value, None, signed), j

    _NAMED = frozenset({"voice", "style", "genre", "stem", "section"})

    def _names_at(self, tokens: list[str], j: int) -> bool:
        """Whether a phrase at ``j`` names a voice, style, genre, stem or section (or is "time")."""
        return (j < len(tokens) and tokens[j] in self.article_ordinals) or any(
            kind in self._NAMED
            for length in range(1, min(self.max_phrase, len(tokens) - j) + 1)
            for kind, _ in self.phrases.get(tuple(tokens[j : j + length]), ())
        )

    def _half_length(self, tokens: list[str], j: int) -> int:
        """Length of an "and a half" at ``j``, 0 when there is none."""
        return next((len(k) for k in self.and_a_half if tuple(tokens[j : j + len(k)]) == k), 0)

    def _bare_number(self, tokens: list[str], i: int) -> tuple[float, int] | None:
        """Digits or number words ("one hundred and twenty two") at ``i``: (value, end)."""
        n = len(tokens)
        if i >= n:
            return None
        if re.fullmatch(r"\d+(\.\d+)?", tokens[i]):
            return float(tokens[i]), i + 1
        total = current = 0.0
        j, seen = i, False
        if tokens[i] in self.articles and i + 1 < n and tokens[i + 1] in self.scales:
            current, seen, j = 1.0, True, i + 1
        while j < n:
            token = tokens[j]
            if token in self.number_words:
                current += self.number_words[token]
            elif token in self.scales and seen:
                if self.scales[token] >= 1000:
                    total, current = total + current * self.scales[token], 0.0
                else:
                    current *= self.scales[token]
            elif token == "and" and seen and tokens[j - 1] in self.scales and j + 1 < n and tokens[j + 1] in self.number_words:
                pass
            else:
                break
            seen = True
            j += 1
        return (total + current, j) if seen else None


def _contains(tokens: list[str], key: tuple[str, ...]) -> bool:
    return any(tuple(tokens[i : i + len(key)]) == key for i in range(len(tokens) - len(key) + 1))


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The lexicon, built once per process."""
    return Lexicon()
