"""The offline planner: a request in words to tool calls, with no LLM.

It is a small semantic parser over a lexicon and a grammar kept in data files
(``lexicon/*.toml``), with a sentence-embedding classifier for what the grammar cannot place:

1. **Guard**: requests to run commands, reveal instructions or secrets (``guard.toml``) get no
   calls, whatever else they ask.
2. **Read** (``assistant.language``): tokens, typo corrections, tagged spans (stems, styles,
   genres, voices, sections, operations, numbers with units, intensity, references).
3. **Clauses**: the spans split at boundaries ("and", "then", ",", "with", ...); a clause that
   only names more of the same ("... and the bass", "..., like a minute") joins its neighbour,
   so "remove the drums and the bass" stays one edit and "skip the intro and loop the chorus
   twice" makes two.
4. **Frames**: in each clause every operation attaches to the nearest object it applies to
   (the next one, else the one before: "turn the bass down", "vocals out"); a generic verb
   ("make") yields to a specific one ("louder"); an object without an operation borrows its
   coordinated neighbour's or takes its kind's default ("lo-fi" sets the style). The pair
   (operation, object kind) selects a call template in ``grammar.toml``; stems next to a style
   become its target, a bpm next to a genre its tempo, numbers and intensity words fill the
   amounts.
5. **Context**: an operation with no object ("more", "a bit less", "put it back", "again",
   "same for the drums") applies to the previous turn's calls.
6. **Questions** about the song become a ``describe`` call answered from the analysis.
7. **Embeddings** (``assistant.embeddings``): a message (or clause) the grammar could not place
   is labelled by its nearest example in ``intents.toml``: a paraphrase of an edit ("make it
   sound like an old video game"), or chit-chat, help, off-topic or hostile talk, which get
   no calls and a reply that says what can be done. Without the model the rules still work.

Every call is validated with its tool's own args model before it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, get_args

from pydantic import ValidationError

from tools.calls import TOOLS
from tools.errors import RemixError
from tools.settings import Settings, get_settings

from .embeddings import IntentClassifier, IntentMatch, classifier
from .language import Quantity, Reading, Span, lexicon, load_toml
from .planner import PlanContext, PlanResult
from .replies import reply_for, reply_without_calls

__all__ = ["OfflinePlanner", "validate_call"]

Call = dict[str, Any]
_IMPLIED = {"tempo", "pitch", "length", "fade", "history", "describe"}  # objects an operation can imply
_UNIT_KIND = {"semitones": "pitch", "bpm": "tempo", "multiplier": "tempo", "percent": "tempo", "seconds": "length"}
_ANSWERABLE = {"key", "tempo", "sections", "length", "loudness", "changes"}


def validate_call(call: Call) -> str | None:
    """None when ``call`` validates with its tool's own args model, else what is wrong."""
    tool = TOOLS.get(call.get("tool", ""))
    if tool is None:
        return f"unknown tool {call.get('tool')!r}"
    try:
        tool.args_model.model_validate(call.get("args", {}))
    except ValidationError as error:
        return f"{call['tool']} {call.get('args')}: {error.errors(include_url=False)[0]['msg']}"
    except RemixError as error:
        return f"{call['tool']} {call.get('args')}: {error}"
    return None


@dataclass
class _Object:
    """Something a clause works on, and the operation it gets."""

    kind: str  # stem, style, genre, voice, section, arrangement, tempo, pitch, length, fade, history, describe
    value: Any  # stems, a preset / genre / voice id, a section name, or None
    position: int
    op: str | None = None
    rank: int = -1
    named: bool = False  # named in words rather than implied by an operation
    target: bool = False  # a stem after "on" / "to": the target of a style
    distance: int = 1 << 30  # tokens between it and its operation (the nearer of two equal operations wins)
    quantities: list[Quantity] = field(default_factory=list)


SECTION_LIMIT_NOTE = "A genre covers the whole song: it cannot be kept to one section, so the whole song has it."


@dataclass
class _Clause:
    """A clause's spans, read into objects, modifiers and operations left over."""

    spans: list[Span]
    objects: list[_Object] = field(default_factory=list)
    free_ops: list[str] = field(default_factory=list)
    intensity: str = "normal"
    absolute: bool = False  # the intensity names an amount ("all the way", "halfway"), not a change of it
    numbers: list[tuple[Quantity, int]] = field(default_factory=list)  # bare numbers and where they are
    modifiers: dict[str, list[Quantity]] = field(default_factory=dict)  # db, times, steps, version, percent, bpm
    positions: list[str] = field(default_factory=list)
    same: bool = False
    ref: bool = False  # points at something ("it", "that", "them")
    instead: bool = False
    strong: bool = False
    needs_song: bool = False  # asks for a change relative to the song's own key or tempo, which the context lacks
    context_kinds: set[str] = field(default_factory=set)  # what a free operation may adjust (empty: anything)
    location: "_Object | None" = None  # the section its vocal change is limited to


class OfflinePlanner:
    """Plans requests with the lexicon, the grammar and the intent bank (see the module doc)."""

    name = "offline"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.lexicon = lexicon()
        grammar = self.lexicon.grammar
        self.rules: dict[str, dict[str, dict[str, Any]]] = grammar["rules"]
        self.default_ops: dict[str, str] = grammar["default_ops"]
        self.absorbs: dict[str, list[str]] = grammar["absorbs"]
        self.inverse: dict[str, dict[str, Any]] = grammar["inverse"]
        self.levels: dict[str, dict[str, float]] = grammar["intensity"]
        bare = grammar["bare_numbers"]
        self.by_words = set(bare["by_words"])
        self.length_change_after = set(bare["length_change_after"])
        self.bpm_range: tuple[float, float] = tuple(bare["bpm_range"])
        self.op_object = {op: entry["object"] for op, entry in self.lexicon.ops["ops"].items()}
        self.op_rank = {op: entry.get("rank", 1) for op, entry in self.lexicon.ops["ops"].items()}
        self.op_needs_ref = {op for op, entry in self.lexicon.ops["ops"].items() if entry.get("needs_ref")}
        self.guard = [re.compile(p, re.IGNORECASE) for p in load_toml("guard.toml")["patterns"]]
        models = grammar["voice_models"]
        tokenize = self.lexicon.tokenize
        self.model_cues = sorted((tuple(tokenize(p)) for p in models["before"]), key=len, reverse=True)
        self.model_possessive = re.compile(
            r"\b([a-z0-9][\w.-]*)'s\s+(?:" + "|".join(re.escape(p) for p in models["possessive"]) + r")\b", re.IGNORECASE
        )
        self.model_named = re.compile(
            r"\b([a-z0-9][\w.-]*)(?:'s)?\s+(?:" + "|".join(re.escape(p) for p in models["named"]) + r")\b", re.IGNORECASE
        )
        self.model_cues_capitalised = sorted((tuple(tokenize(p)) for p in models["before_capitalised"]), key=len, reverse=True)
        self.model_max_words: int = models["max_words"]
        self.model_stop = set(models["stop"])
        self.model_not_names = set(models["not_names"])
        goals = grammar["voice_targets"]
        self.goal_voices, self.goal_verbs, self.goal_styles = set(goals["voices"]), set(goals["verbs"]), set(goals["styles"])
        self.goal_prepositions, self.goal_articles = set(goals["prepositions"]), set(goals["articles"])
        self.voice_presets = set(self.lexicon.names["voices"])
        self.limit_words = {tuple(tokenize(p)) for p in grammar["section_limits"]["phrases"]}
        self._classifier: IntentClassifier | None = None
        self._classifier_error: str | None = None

    # ---------------------------------------------------------------------------- the model

    def classifier(self) -> IntentClassifier | None:
        """The intent classifier, loaded on first need; None (with a note) when the model is unavailable."""
        if self._classifier is None and self._classifier_error is None:
            try:
                self._classifier = classifier(str(self.settings.models_path))
                self._classifier.warm()
            except Exception as error:  # the rules must work without the model, whatever broke
                self._classifier, self._classifier_error = None, f"{type(error).__name__}: {error}"
        return self._classifier

    def warm(self) -> None:
        """Load everything now (the lexicon is loaded already): the sentence model and the bank."""
        self.classifier()

    def _classify(self, text: str, notes: list[str]) -> IntentMatch | None:
        model = self.classifier()
        if model is None:
            notes.append(f"the sentence model is unavailable, so only the rules were used ({self._classifier_error})")
            return None
        return model.classify(text)

    # ----------------------------------------------------------------------------- planning

    def plan(self, message: str, context: PlanContext | None = None) -> PlanResult:
        """Calls and a reply for one message (see the module doc for how)."""
        context = context or PlanContext()
        notes: list[str] = []
        if not message.strip():
            return PlanResult((), reply_without_calls("empty"), self.name)
        if any(pattern.search(message) for pattern in self.guard):
            return PlanResult((), reply_without_calls("hostile"), self.name)
        reading = self._voice_models(self.lexicon.read(message))
        notes += [f"read {typed!r} as {read!r}" for typed, read in reading.corrections]
        previous = [dict(call) for call in context.previous_calls]
        clauses = [self._read_clause(spans, reading) for spans in self._clauses(reading, notes)]
        calls: list[Call] = []
        unplaced: list[_Clause] = []
        wanted_context = False
        for clause in clauses:
            found = self._frames(clause, reading, context)
            if not found and (clause.free_ops or clause.same or clause.objects or clause.absolute):
                wanted_context = wanted_context or any(self.op_rank[op] > 0 for op in clause.free_ops) or clause.same
                found = self._from_context(clause, previous)
            calls += found
            if not found:
                unplaced.append(clause)
        asking = reading.ask or (reading.question_mark and not reading.request)
        if asking and not any(clause.strong for clause in clauses):
            calls = [call for call in calls if call["tool"] in ("describe", "history")]
            if not calls and reading.topics & _ANSWERABLE:
                calls = [self._describe(message)]
        # "more" or "tone it down" with no earlier turn: say so, rather than guess.
        reason = "no_context" if wanted_context and not previous and self._all_read(reading) else None
        if any(clause.needs_song for clause in clauses):
            reason = "needs_song"
        if calls and unplaced and len(clauses) > 1:
            for clause in unplaced:
                calls += self._classified(self._clause_text(clause, reading), clause, notes)
        elif not calls and reason is None:
            calls, reason = self._classified_message(message, reading, notes)
        calls = self._valid(self._tidy(calls), notes)
        reply = reply_for(calls, context) if calls else reply_without_calls(reason or "unclear")
        return PlanResult(tuple(calls), reply, self.name, tuple(notes))

    def _voice_models(self, reading: Reading) -> Reading:
        """The reading with a voice model's name read as a voice ("a cover sung by Aria", "in Aria's voice").

        The name is taken from the words as typed (names are not typos); a name the lexicon
        reads ("sung by a woman", "in a child's voice") is left to the grammar.
        """
        raw = self.lexicon.tokenize(reading.source)
        if len(raw) != len(reading.tokens):
            return reading
        found: list[tuple[int, int]] = []
        # Words written with a capital, other than the first: names for the weaker cues.
        capitalised = {w.lower() for w in re.findall(r"(?<=\s)[A-Z][A-Za-z0-9.-]*", reading.source.strip())}
        for cues, capital in ((self.model_cues, False), (self.model_cues_capitalised, True)):
            for i in range(len(raw)):
                for cue in cues:
                    if tuple(raw[i : i + len(cue)]) == cue:
                        start = i + len(cue)
                        end = start
                        while end < len(raw) and end - start < self.model_max_words and raw[end].isalnum() and raw[end] not in self.model_stop:
                            end += 1
                        if not capital or (start < end and raw[start] in capitalised and raw[start][:1].isalpha()):
                            found.append((start, end))
                        break
        for match in [*self.model_possessive.finditer(reading.source), *self.model_named.finditer(reading.source)]:
            end = len(self.lexicon.tokenize(reading.source[: match.end(1)]))
            start = end - 1
            words = reading.source[: match.start(1)].split()
            while words and end - start < self.model_max_words and words[-1][:1].isupper() and words[-1].isalpha():
                words.pop()
                start -= 1  # "Freddie Mercury's voice": the capitalised words before the name
            found.append((start, end))
        spans = list(reading.spans)
        for start, end in found:
            if start >= end or start < 0 or raw[start] in self.model_not_names or not all(t.isalnum() for t in raw[start:end]):
                continue
            # Words the lexicon reads as typed are its own ("sung by women", "a child's voice").
            if any(s.start < end and s.end > start and s.kind != "number" for s in spans) and all(
                raw[k] == reading.tokens[k] for k in range(start, end)
            ):
                continue
            spans = [s for s in spans if s.end <= start or s.start >= end] + [Span("voice", " ".join(raw[start:end]), start, end)]
        if spans == list(reading.spans):
            return reading
        return replace(
            reading,
            spans=tuple(sorted(spans, key=lambda s: s.start)),
            read=reading.read | {i for s in spans if s.kind == "voice" for i in range(s.start, s.end)},
        )

    def _all_read(self, reading: Reading) -> bool:
        """Every word of the request is part of some span (or an interjection, or "please")."""
        return all(
            i in reading.read or token in self.lexicon.interjections or token in ("please", "pls") or not token.isalnum()
            for i, token in enumerate(reading.tokens)
        )

    def _describe(self, message: str) -> Call:
        return {"tool": "describe", "args": {"question": message.strip()[:500]}}

    def _classified_message(self, message: str, reading: Reading, notes: list[str]) -> tuple[list[Call], str | None]:
        """The intent bank's answer for a whole message the grammar could not place."""
        match = self._classify(message, notes)
        if match is None:
            return [], "unclear"
        model = self.classifier()
        if match.intent.call is None:
            return [], match.intent.name if match.score >= model.threshold else "unclear"
        if match.score < model.edit_threshold:
            return [], "unclear"
        clause = self._read_clause(list(reading.spans), reading)
        return self._from_intent(match, message, clause), None

    def _classified(self, text: str, clause: _Clause, notes: list[str]) -> list[Call]:
        """The intent bank's edit for one clause, when it is a confident one."""
        match = self._classify(text, notes)
        model = self.classifier()
        if match is None or match.intent.call is None or match.score < model.clause_threshold:
            return []
        return self._from_intent(match, text, clause)

    def _from_intent(self, match: IntentMatch, text: str, clause: _Clause) -> list[Call]:
        """The intent's call, with the intensity and the stems the message names."""
        call = {"tool": match.intent.call["tool"], "args": dict(match.intent.call.get("args", {}))}
        if call["tool"] == "describe":
            return [self._describe(text)]
        levels = self.levels[clause.intensity]
        if call["tool"] in ("restyle", "revoice") and levels.get("amount") is not None:
            call["args"].setdefault("amount", levels["amount"])
        stems = [s for o in clause.objects if o.kind == "stem" for s in o.value]
        if call["tool"] == "separate" and stems:  # the stems the message names win over the example's
            call["args"]["stems"] = list(dict.fromkeys(stems))
        return [call]

    @staticmethod
    def _clause_text(clause: _Clause, reading: Reading) -> str:
        start, end = min(s.start for s in clause.spans), max(s.end for s in clause.spans)
        return " ".join(reading.tokens[start:end])

    # ------------------------------------------------------------------------------ clauses

    def _clauses(self, reading: Reading, notes: list[str]) -> list[list[Span]]:
        """Spans split at boundaries, then coordinated clauses joined (see the module doc)."""
        raw: list[list[Span]] = [[]]
        for span in reading.spans:
            if span.kind == "boundary":
                raw.append([])
            else:
                raw[-1].append(span)
        out: list[list[Span]] = []
        for spans in (s for s in raw if s):
            limits = self._section_limit(spans, out[-1], reading) if out else set()
            if out and (self._modifiers_only(spans) or self._joins(spans, out[-1]) or limits & {"voice", "style"}):
                out[-1] = out[-1] + spans
            elif "genre" in limits:
                # "turn it into house, only in the chorus": a genre covers the whole song; the
                # limit must not become "keep only the chorus", which would cut the rest.
                notes.append(SECTION_LIMIT_NOTE)
            elif out and self._joins(out[-1], spans) and not self._strong_ops(out[-1]):
                out[-1] = out[-1] + spans
            else:
                out.append(spans)
        return out

    def _section_limit(self, spans: list[Span], host: list[Span], reading: Reading) -> set[str]:
        """What ``host`` changes (voice, style, genre) when ``spans`` is only "only" and a section
        ("..., only in verse 2"); empty otherwise (grammar.toml [section_limits])."""
        ops = [s for s in spans if s.kind == "op"]
        if len(ops) != 1 or ops[0].value != "isolate" or tuple(reading.tokens[ops[0].start : ops[0].end]) not in self.limit_words:
            return set()
        if not any(s.kind == "section" for s in spans):
            return set()
        if not all(s.kind in ("op", "section", "ordinal", "every", "number", "target_prep", "intensity") for s in spans):
            return set()
        return self._kinds(host, implied=True) & {"voice", "style", "genre"}

    def _strong_ops(self, spans: list[Span]) -> bool:
        return any(s.kind == "compound" or (s.kind == "op" and self.op_rank[s.value] > 0) for s in spans)

    @staticmethod
    def _modifiers_only(spans: list[Span]) -> bool:
        """Only intensity, numbers and references: "really hard", "not too much"."""
        return all(s.kind in ("intensity", "ref", "number", "target_prep") for s in spans)

    def _kinds(self, spans: list[Span], implied: bool) -> set[str]:
        kinds = set()
        for span in spans:
            if span.kind in ("stem", "compound"):
                kinds.add("stem")
            elif span.kind in ("style", "genre", "voice", "section"):
                kinds.add(span.kind)
            elif span.kind == "quantity" and span.value.unit in _UNIT_KIND:
                kinds.add(_UNIT_KIND[span.value.unit])
            elif implied and span.kind == "op" and self.op_object[span.value] in _IMPLIED:
                kinds.add(self.op_object[span.value])
            elif implied and span.kind == "op" and self.rules.get(span.value, {}).get("stem", {}).get("tool") == "revoice":
                kinds.add("voice")  # "double the vocals" makes a voice
        return kinds

    def _joins(self, bare: list[Span], host: list[Span]) -> bool:
        """``bare`` (no operation of its own) names only more of what ``host`` works on, or what it takes in."""
        kinds = self._kinds(bare, implied=False)
        if self._strong_ops(bare) or not kinds:
            return False
        host_kinds = self._kinds(host, implied=True)
        if kinds <= {k for kind in host_kinds for k in self.absorbs.get(kind, ())}:
            return True  # "make it trap, 140bpm"
        return self._strong_ops(host) and kinds <= host_kinds

    def _read_clause(self, spans: list[Span], reading: Reading) -> _Clause:
        """Objects, modifiers and free operations of one clause, operations attached."""
        clause = _Clause(spans)
        tempo_cue = any(
            (s.kind == "op" and self.op_object[s.value] == "tempo") or (s.kind == "object" and s.value == "tempo")
            or (s.kind == "quantity" and s.value.unit in ("bpm", "multiplier"))
            for s in spans
        )
        genre = any(s.kind == "genre" for s in spans)
        named_effect = any(s.kind in ("style", "genre", "voice") for s in spans)
        implied: dict[str, _Object] = {}

        def implied_object(kind: str, position: int) -> _Object:
            if kind not in implied:
                implied[kind] = _Object(kind, None, position)
                clause.objects.append(implied[kind])
            return implied[kind]

        skip: set[int] = set()
        for i, span in enumerate(spans):
            if i in skip:
                continue
            before = spans[i - 1] if i else None
            if span.kind == "stem":
                target = before is not None and before.kind == "target_prep"
                clause.objects.append(_Object("stem", span.value, span.start, named=True, target=target))
            elif span.kind == "compound":
                op, stems = span.value
                clause.objects.append(_Object("stem", stems, span.start, op=op, rank=2, named=True))
            elif span.kind in ("style", "genre", "voice"):
                clause.objects.append(_Object(span.kind, span.value, span.start, named=True))
            elif span.kind == "section":
                name, used = self._section_name(spans, i)
                skip |= used
                first = min(used | {i})
                before = spans[first - 1] if first else None
                if before is not None and before.kind == "relpos":
                    clause.positions.append(f"{before.value}:{name}")
                else:
                    clause.objects.append(_Object("section", name, span.start, named=True))
            elif span.kind == "position":
                clause.positions.append(span.value)
            elif span.kind == "object":
                obj = implied_object(span.value, span.start) if span.value in _IMPLIED else _Object(span.value, None, span.start)
                if obj not in clause.objects:
                    clause.objects.append(obj)
            elif span.kind == "quantity":
                unit = span.value.unit
                if unit == "percent" and named_effect and not tempo_cue:
                    after_by = span.start > 0 and reading.tokens[span.start - 1] in self.by_words
                    clause.modifiers.setdefault("step" if after_by else "amount", []).append(span.value)
                elif unit == "bpm" and genre:
                    clause.modifiers.setdefault("bpm", []).append(span.value)
                elif unit in _UNIT_KIND:
                    implied_object(_UNIT_KIND[unit], span.start).quantities.append(span.value)
                else:
                    clause.modifiers.setdefault(unit, []).append(span.value)
            elif span.kind == "number":
                clause.numbers.append((span.value, span.start))
            elif span.kind == "ref":
                clause.ref = True
            elif span.kind == "intensity" and tuple(reading.tokens[span.start : span.end]) in self.lexicon.absolute:
                clause.intensity, clause.absolute = span.value, True  # "all the way" wins over "really"
            elif span.kind == "intensity" and clause.intensity == "normal":
                clause.intensity = span.value
            elif span.kind == "note":  # "transpose to the key of C"
                implied_object("pitch", span.start).quantities.append(Quantity(span.value, "note"))
            elif span.kind in ("same", "instead"):
                clause.same = True
                clause.instead = clause.instead or span.kind == "instead"
        self._attach(clause, spans, implied_object)
        return clause

    @staticmethod
    def _section_name(spans: list[Span], i: int) -> tuple[str, set[int]]:
        """A section's name as the analysis reads it ("verse 2", "last chorus", "chorus"), and the spans it used."""
        label, plural = spans[i].value
        used: set[int] = set()
        ordinal: int | str | None = None
        before = spans[i - 1] if i else None
        after = spans[i + 1] if i + 1 < len(spans) else None
        if before is not None and before.kind == "ordinal" and before.end == spans[i].start:
            ordinal, used = before.value, {i - 1}
        elif before is not None and before.kind == "every" and before.end == spans[i].start:
            plural = True
        if after is not None and after.kind == "number" and after.start == spans[i].end:  # "verse 2"
            if float(after.value.value).is_integer():
                ordinal, used = int(after.value.value), used | {i + 1}
        if plural or ordinal is None:
            return label, used
        return (f"last {label}" if ordinal == "last" else f"{label} {ordinal}"), used

    def _attach(self, clause: _Clause, spans: list[Span], implied_object) -> None:
        """Attach each operation to the nearest object it applies to; the rest stay free."""
        for span in spans:
            if span.kind != "op":
                continue
            op, rank = span.value, self.op_rank[span.value]
            fits = [o for o in clause.objects if o.kind in self.rules.get(op, {})]
            after = [o for o in fits if o.position > span.start]
            before = [o for o in fits if o.position < span.start]
            target = min(after, key=lambda o: o.position) if after else max(before, key=lambda o: o.position) if before else None
            if target is None and self.op_object[op] in _IMPLIED:
                target = implied_object(self.op_object[op], span.start)
            if target is None:
                clause.free_ops.append(op)
            elif (rank, -abs(target.position - span.start)) > (target.rank, -target.distance):
                target.op, target.rank, target.distance = op, rank, abs(target.position - span.start)
        db = clause.modifiers.get("db")
        for obj in clause.objects:
            if db and obj.kind == "stem" and obj.op is None:  # "vocals at -6 dB"
                obj.op, obj.rank = ("quieter" if db[0].value < 0 else "louder"), 1
        fade, length = (next((o for o in clause.objects if o.kind == k), None) for k in ("fade", "length"))
        if fade is not None and length is not None and length.op is None:  # "a 10 second fade out"
            fade.quantities += length.quantities
            clause.objects.remove(length)
        last_op: dict[str, tuple[str, int]] = {}
        for obj in sorted(clause.objects, key=lambda o: o.position):
            if obj.op is None and obj.kind in last_op:
                obj.op, obj.rank = last_op[obj.kind]  # "remove the intro and the outro"
            elif obj.op is not None:
                last_op[obj.kind] = (obj.op, obj.rank)

    # ------------------------------------------------------------------------------- frames

    def _frames(self, clause: _Clause, reading: Reading, context: PlanContext) -> list[Call]:
        """The calls a clause makes from its own objects."""
        calls: list[Call] = []
        hosts = [o for o in clause.objects if o.kind in ("style", "voice", "genre")]
        targets = [o for o in clause.objects if o.kind == "stem" and hosts and (o.target or o.rank < 1)]
        if self._voice_goal(clause, reading):  # "lower the voice to a man's": the vocals become that voice
            targets += [
                o for o in clause.objects
                if (o.kind == "stem" and tuple(o.value) == ("vocals",) and o.op in self.goal_verbs)
                or (o.kind == "style" and o.value in self.goal_styles)
                or (o.kind == "pitch" and not o.named and not o.quantities and o.op in self.goal_verbs)  # "higher, like a girl"
            ]
        numbers = list(clause.numbers)
        location = clause.location = self._voice_location(clause, reading)
        for obj in sorted(clause.objects, key=lambda o: o.position):
            if obj in targets or obj is location or obj not in clause.objects:  # a target, a voice's section, or taken in
                continue
            op = obj.op if obj.op is not None else self.default_ops.get(obj.kind)
            rule = self.rules.get(op, {}).get(obj.kind) if op else None
            if rule is None or (rule.get("needs_number") and not obj.quantities and not numbers):
                continue  # "what's the bpm" names the tempo but asks nothing of it
            if obj.value is None and obj.kind in ("style", "voice") and obj.op is not None:
                clause.free_ops.append(obj.op)  # "get rid of that effect": the previous turn's
                clause.context_kinds.add(obj.kind)
                continue
            call = self._fill(rule, obj, clause, numbers, targets, reading, context)
            if call is not None and not clause.needs_song:
                calls.append(call)
                clause.strong = clause.strong or self._is_strong(obj)
        if any(c["tool"] == "revoice" and c["args"].get("voice") == "all" for c in calls):
            # "go back to the real singer" names what to go back to: the voices come off, and
            # nothing else of the last turn is undone.
            calls = [c for c in calls if not (c["tool"] == "history" and c["args"].get("action") == "undo")]
        return calls

    def _voice_goal(self, clause: _Clause, reading: Reading) -> bool:
        """The clause names who the singer should become ("to a man's", "into a woman", "like a kid"); see grammar.toml [voice_targets]."""
        for obj in clause.objects:
            if obj.kind != "voice" or obj.value is None:
                continue
            if obj.value not in self.goal_voices and obj.value in self.voice_presets:
                continue
            i = obj.position - 1
            while i >= 0 and reading.tokens[i] in self.goal_articles:
                i -= 1
            if i >= 0 and reading.tokens[i] in self.goal_prepositions:
                return True
        return False

    def _voice_location(self, clause: _Clause, reading: Reading) -> _Object | None:
        """The section a clause's vocal change or style is limited to, if it names one.

        A vocal change is a named voice (or a stem verb that makes one: "double the vocals");
        a named style is read the same way ("reverb only in the chorus", "make the intro lo-fi").
        Its section is one with no operation of its own ("harmonies in the chorus", "the last
        chorus needs a choir"), only "only" ("autotune only on verse 2"), or a generic verb that
        has the section as its recipient ("give the chorus some harmonies", "make verse 2 a
        female voice"); a section right before the voice names which voice it is ("remove the
        chorus harmonies"), and the voice takes the verb. A section with its own arranging verb
        ("cut the chorus") or a place to go ("put the chorus first") stays an arrangement.
        """
        voices = [o for o in clause.objects if o.kind in ("voice", "style") and o.value is not None]
        makers = [
            o for o in clause.objects
            if o.kind == "stem" and o.op and self.rules.get(o.op, {}).get("stem", {}).get("tool") == "revoice"
        ]
        if not (voices or makers) or clause.positions:
            return None
        # "only" / "just" limit a vocal change; "keep only" / "isolate" keep a section of the song
        # (a transcript drops the comma of "female voice, keep only the chorus").
        bare_only = all(
            tuple(reading.tokens[s.start : s.end]) in self.limit_words
            for s in clause.spans
            if s.kind == "op" and s.value == "isolate"
        )
        for section in (o for o in clause.objects if o.kind == "section"):
            if section.op is None or (section.op == "isolate" and bare_only) or (
                section.op != "isolate" and self.op_rank[section.op] < 1
            ):
                if section.op is not None and section.op != "isolate":
                    for voice in voices:
                        if voice.op is None:
                            voice.op, voice.rank = section.op, section.rank
                return section
            voice = self._voice_after(clause, section, voices)
            if voice is not None and voice.op is None:  # "remove the chorus harmonies"
                voice.op, voice.rank = section.op, section.rank
                return section
        return None

    @staticmethod
    def _voice_after(clause: _Clause, section: _Object, voices: list[_Object]) -> _Object | None:
        """The voice named right after ``section``'s words ("the chorus harmonies", "verse 2 autotune"), if any."""
        spans = clause.spans
        i = next((k for k, s in enumerate(spans) if s.start == section.position and s.kind == "section"), None)
        if i is None:
            return None
        end = spans[i].end
        if i + 1 < len(spans) and spans[i + 1].kind == "number" and spans[i + 1].start == end:
            end = spans[i + 1].end
        return next((v for v in voices if v.position == end), None)

    def _is_strong(self, obj: _Object) -> bool:
        """Clear enough to be an edit even inside a question ("is it slow?" is not)."""
        return (obj.named and (obj.rank >= 1 or obj.kind in ("style", "genre", "voice"))) or any(
            q.unit is not None for q in obj.quantities
        )

    def _fill(
        self,
        rule: dict[str, Any],
        obj: _Object,
        clause: _Clause,
        numbers: list[tuple[Quantity, int]],
        targets: list[_Object],
        reading: Reading,
        context: PlanContext,
    ) -> Call | None:
        """A call from a template and the clause's slots."""
        tool, args = rule["tool"], dict(rule.get("args", {}))
        levels = self.levels[clause.intensity]
        if tool == "separate":
            stems = list(obj.value) if obj.kind == "stem" else []
            if not stems and args["action"] != "restore":
                stems = ["vocals", "drums", "bass", "other"] if obj.kind == "stem" else []
            args["stems"] = stems
            if args["action"] in ("louder", "quieter"):
                db = self._take(clause, "db") or self._pop_number(numbers, 0.5, 24.0)
                args["amount_db"] = abs(db) if db else levels.get("amount_db")
        elif tool == "restyle":
            if obj.kind == "style":
                args["style"] = obj.value
            if "style" not in args or args["style"] is None:
                return None
            target = next((t for t in targets if len(t.value) == 1), None)
            if target is not None:
                args["target"] = target.value[0]
            if clause.location is not None and clause.location.value is not None:
                args["section"] = clause.location.value
            self._amounts(args, clause, levels)
        elif tool == "genre_shift":
            if obj.kind == "genre":
                args["genre"] = obj.value
            bpm = self._take(clause, "bpm") or self._pop_number(numbers, *self.bpm_range)
            if bpm:
                args["bpm"] = bpm
            self._amounts(args, clause, levels)
        elif tool == "revoice":
            if obj.kind == "voice":
                args["voice"] = obj.value
            if obj.kind == "stem" and tuple(obj.value) != ("vocals",):
                return None
            if args.get("voice") == "all":
                return self._all_voices(obj.op or "set", context)
            section = clause.location
            if section is not None and section in clause.objects:
                args["section"] = section.value
                clause.objects.remove(section)
            self._amounts(args, clause, levels)
        elif tool == "rearrange":
            self._arrangement(args, obj, clause, context, reading)
        elif tool == "tempo_pitch":
            args.update(self._tempo_pitch(obj, rule.get("sign", 1), clause, numbers, reading, context))
        elif tool == "history":
            steps = self._take(clause, "steps") or self._take(clause, "times")
            version = self._take(clause, "version")
            number = self._pop_number(numbers, 0.0, 100.0)
            if version is not None or (args["action"] == "goto" and number is not None):
                args = {"action": "goto", "version": int(version if version is not None else number)}
            elif args["action"] == "goto":  # "take it back to how it was": no version named
                args = {"action": "undo"}
            elif args["action"] in ("undo", "redo") and (steps or number):
                args["steps"] = int(steps or number)
        elif tool == "describe":
            return self._describe(reading.source)
        return {"tool": tool, "args": args}

    @staticmethod
    def _all_voices(op: str, context: PlanContext) -> Call | None:
        """Every vocal style off ("put the original voice back", "remove all vocal effects").

        Only when a vocal style is on (the spec's voices, else the previous turn's calls) or
        the request says to remove them; otherwise "the original voice back" takes back the
        previous turn's voice-like style on the vocals, else brings the vocals back as they were.
        """
        if op in ("more", "less", "raise", "reduce", "louder", "quieter", "isolate"):
            return None
        previous = [call for call in context.previous_calls if isinstance(call, dict)]
        voices = getattr(context.spec, "voices", None) if context.spec is not None else None
        if voices is not None:
            applied = bool(voices)
        else:
            applied = any(
                c.get("tool") == "revoice" and (c.get("args") or {}).get("change", "set") != "remove" for c in previous
            )
        if applied or op == "remove":
            return {"tool": "revoice", "args": {"voice": "all", "change": "remove"}}
        for call in reversed(previous):
            args = call.get("args") or {}
            if call.get("tool") == "restyle" and args.get("target") == "vocals" and args.get("change", "set") != "remove":
                return {"tool": "restyle", "args": {"style": args.get("style"), "change": "remove", "target": "vocals"}}
        return {"tool": "separate", "args": {"action": "restore", "stems": ["vocals"]}}

    def _amounts(self, args: dict[str, Any], clause: _Clause, levels: dict[str, float]) -> None:
        """Amount (for set) or step (for more / less) from a percentage or the intensity.

        A more / less with an amount named outright ("crank the autotune all the way", "turn the
        reverb down to 20 percent") sets that amount; "up by 20 percent" is a step of 0.2.
        """
        if args.get("change") in ("more", "less") and (clause.absolute or clause.modifiers.get("amount")):
            args["change"] = "set"
        if args.get("change", "set") == "set":
            percent = self._take(clause, "amount")
            amount = percent / 100.0 if percent is not None else levels.get("amount")
            if amount is not None:
                args["amount"] = min(1.0, max(0.0, amount))
        elif args.get("change") in ("more", "less"):
            percent = self._take(clause, "step")
            step = percent / 100.0 if percent is not None else levels.get("step")
            if step is not None:
                args["step"] = min(1.0, max(0.01, step))

    def _arrangement(
        self, args: dict[str, Any], obj: _Object, clause: _Clause, context: PlanContext, reading: Reading
    ) -> None:
        """Section, times, position and length of a rearrange call; a length is shortened or extended to as the song allows.

        A length said as a change ("shorten it by 10 seconds", "10 seconds shorter", "cut 10
        seconds off") is taken from the version's own length; "make it 30 seconds" is the length.
        """
        if obj.kind == "section":
            args["section"] = obj.value
            times = self._take(clause, "times")
            if args["action"] == "repeat" and "times" not in args and times:
                args["times"] = int(times)
            if args["action"] == "move" and "position" not in args and clause.positions:
                args["position"] = clause.positions[0]
        if args["action"] == "shorten" and clause.positions and clause.positions[0] in ("start", "end"):
            args["position"] = clause.positions[0]  # "cut 10 seconds off the end"
        seconds = next((q.value for q in obj.quantities if q.unit == "seconds"), None)
        if seconds:
            args["seconds"] = abs(seconds)
            analysis = context.analysis
            if obj.kind == "length" and args["action"] == "shorten" and obj.op == "set" and analysis is not None:
                args["action"] = "extend" if seconds > analysis.duration_s else "shorten"
            if (
                obj.kind == "length" and args["action"] in ("shorten", "extend") and analysis is not None
                and self._length_change(obj, clause, reading)
            ):  # fmt: skip
                from tools.arrange import arranged_length
                from tools.spec import RemixSpec

                now = arranged_length(context.spec or RemixSpec(), analysis)
                target = now - abs(seconds) if args["action"] == "shorten" else now + abs(seconds)
                args["seconds"] = round(max(target, 0.0), 1)

    def _length_change(self, obj: _Object, clause: _Clause, reading: Reading) -> bool:
        """Whether the length is said as a change: "by" before it, or "shorter", "longer", "off" after it."""
        tokens = reading.tokens
        for span in clause.spans:
            if span.kind == "quantity" and any(span.value is q for q in obj.quantities):
                before = tokens[span.start - 1] if span.start > 0 else ""
                after = tokens[span.end] if span.end < len(tokens) else ""
                return before in self.by_words or after in self.length_change_after
        return False

    def _tempo_pitch(
        self,
        obj: _Object,
        sign: int,
        clause: _Clause,
        numbers: list[tuple[Quantity, int]],
        reading: Reading,
        context: PlanContext,
    ) -> dict[str, float]:
        """Tempo (bpm or tempo_pct) or pitch (semitones) from the quantities, numbers and intensity.

        A bpm below the tempo range with a direction ("10 bpm faster") and a key ("to the key
        of C") are read against the song's analysis; without one they give nothing.
        """
        out: dict[str, float] = {}
        for q in obj.quantities:
            if q.unit == "bpm" and obj.op not in (None, "set") and abs(q.value) < self.bpm_range[0]:
                current = self._current_bpm(context)
                if current is None:
                    clause.needs_song = True
                    return {}
                out["bpm"] = round(current + sign * abs(q.value), 2)
            elif q.unit == "bpm":
                out["bpm"] = abs(q.value)
            elif q.unit == "note":
                key = self._current_key(context)
                if key is None:
                    clause.needs_song = True
                    return {}
                out["semitones"] = float((int(q.value) - key + 6) % 12 - 6)
            elif q.unit == "multiplier" and q.value > 0:
                out["tempo_pct"] = round((q.value - 1.0) * 100.0, 3)
            elif q.unit == "percent":
                out["tempo_pct"] = q.value if q.signed else sign * abs(q.value)
            elif q.unit == "semitones":
                out["semitones"] = out.get("semitones", 0.0) + (q.value if q.signed else sign * abs(q.value))
        if out:
            return out
        levels = self.levels[clause.intensity]
        if obj.kind == "tempo":
            if numbers:
                value, position = numbers[0][0].value, numbers[0][1]
                after_by = position > 0 and reading.tokens[position - 1] in self.by_words
                low, high = self.bpm_range
                if not after_by and low <= value <= high:  # "slow it down to 80", "tempo 110"
                    return {"bpm": self._pop_number(numbers)}
                return {"tempo_pct": sign * abs(self._pop_number(numbers))}  # "slow down by 20"
            return {"tempo_pct": sign * levels["tempo_pct"]}
        number = self._pop_number(numbers, 0.0, 24.0)
        return {"semitones": sign * abs(number) if number else sign * levels["semitones"]}

    @staticmethod
    def _current_bpm(context: PlanContext) -> float | None:
        """The remix's tempo now: the spec's target, else the song's tempo times the spec's ratio."""
        spec, analysis = context.spec, context.analysis
        if spec is not None and spec.tempo.bpm is not None:
            return spec.tempo.bpm
        if analysis is None or not analysis.tempo:
            return None
        return analysis.tempo * (spec.tempo.ratio if spec is not None else 1.0)

    @staticmethod
    def _current_key(context: PlanContext) -> int | None:
        """The pitch class the remix is in now: the song's key moved by the spec's pitch shift."""
        if context.analysis is None:
            return None
        names = get_args(type(context.analysis).model_fields["key"].annotation)  # "C" ... "B", from the Analysis model
        shift = context.spec.pitch.semitones if context.spec is not None else 0.0
        return (names.index(context.analysis.key) + int(round(shift))) % 12

    @staticmethod
    def _take(clause: _Clause, unit: str) -> float | None:
        """The clause's next quantity in ``unit`` (db, times, steps, version, amount, bpm), used up."""
        values = clause.modifiers.get(unit)
        return values.pop(0).value if values else None

    @staticmethod
    def _pop_number(numbers: list[tuple[Quantity, int]], low: float = 0.0, high: float = float("inf")) -> float | None:
        """The clause's next bare number when its size is within [low, high], used up."""
        if numbers and low <= abs(numbers[0][0].value) <= high:
            return numbers.pop(0)[0].value
        return None

    # ------------------------------------------------------------------------------ context

    def _from_context(self, clause: _Clause, previous: list[Call]) -> list[Call]:
        """Calls for a clause that refers to the previous turn ("more", "put it back", "same for the drums")."""
        edits = [call for call in previous if call.get("tool") not in ("history", "describe")]
        if not edits:
            return []
        # "all the way", "halfway" alone: the previous turn's style, genre or voice at that amount.
        for op in clause.free_ops or (["more"] if clause.absolute and not clause.objects else []):
            if op in self.op_needs_ref and not (clause.ref or clause.context_kinds):
                continue
            if op == "again":
                return [{"tool": c["tool"], "args": dict(c.get("args", {}))} for c in edits]
            if op == "restore":
                return [self._inverse(edits)]
            for call in reversed(edits):
                if clause.context_kinds and self._kind_of(call) not in clause.context_kinds:
                    continue
                made = self._adjust(op, call, clause.intensity, clause.absolute)
                if made is not None:
                    return [made]
        if clause.objects:
            return self._retarget(clause, edits[-1])
        return []

    def _inverse(self, edits: list[Call]) -> Call:
        """The call that takes the last undoable edit back ("put it back", "bring them back")."""
        for call in reversed(edits):
            args = call.get("args", {})
            entry = self.inverse.get(f"{call['tool']}.{args.get('action') or args.get('change') or 'set'}")
            if entry is not None:
                made = dict(entry["args"])
                made.update({key: args[key] for key in entry.get("keep", []) if key in args})
                return {"tool": entry["tool"], "args": made}
        fallback = self.inverse["fallback"]
        return {"tool": fallback["tool"], "args": dict(fallback["args"])}

    def _adjust(self, op: str, call: Call, intensity: str, absolute: bool = False) -> Call | None:
        """``op`` ("more", "less", "louder", "remove", ...) applied to a previous call, or None if it does not apply.

        With an ``absolute`` intensity ("crank it all the way") a style, genre or voice is set to the level's amount.
        """
        args, levels = dict(call.get("args", {})), self.levels[intensity]
        kind = self._kind_of(call)
        rule = self.rules.get(op, {}).get(kind) if kind else None
        if rule is None:
            return None
        made_tool, made = rule["tool"], dict(rule.get("args", {}))
        relative = rule.get("relative")
        if kind == "stem":
            if relative and args.get("action") not in ("louder", "quieter"):
                return None
            if relative == "same":
                made["action"] = args["action"]
            elif relative == "back":
                made["action"] = "quieter" if args["action"] == "louder" else "louder"
            made["stems"] = list(args.get("stems", []))
            if made["action"] in ("louder", "quieter"):
                db = levels.get("amount_db") or (self.levels["small"]["amount_db"] if relative == "back" else None)
                if db:
                    made["amount_db"] = db
        elif kind in ("style", "genre", "voice"):
            made[kind] = args.get(kind)  # the arg is named like the kind
            if kind == "style" and args.get("target", "mix") != "mix":
                made["target"] = args["target"]
            if made.get("change") in ("more", "less") and absolute and levels.get("amount") is not None:
                made["change"], made["amount"] = "set", levels["amount"]
            elif made.get("change") in ("more", "less") and levels.get("step") is not None:
                made["step"] = levels["step"]
        elif kind in ("tempo", "pitch"):
            made = self._relative(args, kind, rule, intensity)
        elif made_tool == "rearrange":
            made = {"action": "restore"} if made.get("action") == "remove" or op == "remove" else made
        return {"tool": made_tool, "args": made}

    @staticmethod
    def _kind_of(call: Call) -> str | None:
        """The kind of object a previous call worked on."""
        args = call.get("args", {})
        pitch_only = args.get("semitones") is not None and args.get("tempo_pct") is None and args.get("bpm") is None
        return {
            "separate": "stem", "restyle": "style", "genre_shift": "genre", "revoice": "voice",
            "tempo_pitch": "pitch" if pitch_only else "tempo",
            "rearrange": "section" if args.get("section") else "arrangement",
        }.get(call.get("tool"))

    def _relative(self, args: dict[str, Any], kind: str, rule: dict[str, Any], intensity: str) -> dict[str, float]:
        """A tempo or pitch change relative to the previous one: the same again (half for "a bit"), or half of it back."""
        key = "semitones" if kind == "pitch" else "tempo_pct"
        last, relative = args.get(key), rule.get("relative")
        if last is None or relative is None:
            return {key: rule.get("sign", 1) * self.levels[intensity][key]}
        if relative == "same":
            value = last * (0.5 if intensity == "small" else 1.0)
        else:
            value = -last / 2.0
        if kind == "pitch":
            value = (1 if value > 0 else -1) * max(1, round(abs(value)))
        return {key: round(value, 3)}

    def _retarget(self, clause: _Clause, last: Call) -> list[Call]:
        """The previous call on other stems or sections ("same for the drums", "on the vocals instead")."""
        stems = [s for o in clause.objects if o.kind == "stem" for s in o.value]
        sections = [o.value for o in clause.objects if o.kind == "section"]
        args = dict(last.get("args", {}))
        if last["tool"] == "separate" and stems:
            again = {"tool": "separate", "args": {**args, "stems": stems}}
            if clause.instead and args.get("action") in ("remove", "isolate", "louder", "quieter"):
                return [{"tool": "separate", "args": {"action": "restore", "stems": list(args.get("stems", []))}}, again]
            return [again]
        if last["tool"] in ("restyle",) and len(stems) == 1:
            return [{"tool": "restyle", "args": {**args, "target": stems[0]}}]
        if last["tool"] == "rearrange" and sections and args.get("section"):
            return [{"tool": "rearrange", "args": {**args, "section": section}} for section in sections]
        return []

    # ------------------------------------------------------------------------------ the end

    def _tidy(self, calls: list[Call]) -> list[Call]:
        """Merge what belongs together, drop repeats, write whole numbers as integers."""
        out: list[Call] = []
        for call in calls:
            args = {
                key: int(value) if isinstance(value, float) and value.is_integer() and key != "amount" else value
                for key, value in call["args"].items()
                if value is not None
            }
            call = {"tool": call["tool"], "args": args}
            if call in out:
                continue
            tempo = next((c for c in out if c["tool"] == "tempo_pitch" == call["tool"] and not set(c["args"]) & set(args)), None)
            if tempo is not None and not ({"bpm", "tempo_pct"} <= set(tempo["args"]) | set(args)):
                tempo["args"].update(args)
                continue
            same = next(
                (c for c in out if c["tool"] == "separate" == call["tool"]
                 and c["args"].get("action") == args.get("action") and c["args"].get("amount_db") == args.get("amount_db")),
                None,
            )
            if same is not None and same["args"]["stems"] and args.get("stems"):  # an empty list is every stem
                same["args"]["stems"] = list(dict.fromkeys([*same["args"]["stems"], *args["stems"]]))
                continue
            out.append(call)
        return out

    @staticmethod
    def _valid(calls: list[Call], notes: list[str]) -> list[Call]:
        """Only the calls their tools' args models accept; each rejection is noted."""
        kept = []
        for call in calls:
            problem = validate_call(call)
            if problem is None:
                kept.append(call)
            else:
                notes.append(f"dropped an invalid call: {problem}")
        return kept
