"""Short replies for the listener: what a turn's calls will change, or why nothing changes.

Every planner uses this module (the offline planner and the LLM planner alike):
``reply_for(calls, context)`` turns the calls of a turn into one plain sentence ("Vocals out
and a whole tone lower. Say 'more' or 'less' to adjust."), and answers a ``describe`` call
from the song's analysis when the context carries it. ``reply_without_calls(reason)`` says why
nothing changed and what can be done. The wording lives in ``lexicon/replies.toml``; style and
genre names are the tools' own titles.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping

from .language import lexicon, load_toml
from .planner import PlanContext

__all__ = ["reply_for", "reply_without_calls", "answer"]

_ADJUSTABLE = {"restyle", "genre_shift", "revoice", "tempo_pitch"}
_ANSWER_TOPICS = ("key", "tempo", "sections", "length", "loudness")


@lru_cache(maxsize=1)
def _texts() -> dict[str, Any]:
    return load_toml("replies.toml")


def _num(value: float) -> str:
    return f"{float(value):g}"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def reply_without_calls(reason: str) -> str:
    """Why nothing changes and what can be done; ``reason`` is a key of replies.toml [no_calls]."""
    from tools.grooves import GENRES

    texts = _texts()
    template = texts["no_calls"].get(reason, texts["no_calls"]["unclear"])
    genres = ", ".join(style.title for style in GENRES.values())
    return template.format(capabilities=texts["capabilities"], genres=genres)


def reply_for(calls: Iterable[Mapping[str, Any]], context: PlanContext | None = None) -> str:
    """One short reply for a turn's calls: the changes in plain words, answers to questions."""
    context = context or PlanContext()
    calls = list(calls)
    if not calls:
        return reply_without_calls("unclear")
    texts = _texts()
    edits = [call for call in calls if call.get("tool") != "describe"]
    sentences = []
    if edits:
        phrases = [_phrase(call) for call in edits]
        sentence = _join(phrases)
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        if any(_adjustable(call) for call in edits):
            sentences.append(texts["hints"]["adjust"])
        elif any(call.get("tool") != "history" for call in edits):
            sentences.append(texts["hints"]["undo"])
    for call in calls:
        if call.get("tool") == "describe":
            sentences.append(answer(call.get("args", {}).get("question") or "", context))
    return " ".join(sentences)


def _adjustable(call: Mapping[str, Any]) -> bool:
    """A change that "more" or "less" can adjust next (not a removal)."""
    args = call.get("args") or {}
    if call.get("tool") in _ADJUSTABLE:
        return args.get("change") != "remove"
    return args.get("action") in ("louder", "quieter")


def answer(question: str, context: PlanContext | None = None) -> str:
    """The answer to a question about the song, from ``context.analysis`` (and ``context.spec``)."""
    from tools.describe import describe

    answers = _texts()["answers"]
    analysis = context.analysis if context is not None else None
    if analysis is None:
        return answers["no_song"]
    topics = [topic for topic in _ANSWER_TOPICS if topic in lexicon().read(question).topics]
    if not topics:
        return describe(analysis, context.spec)
    out = []
    for topic in topics:
        if topic == "key":
            out.append(answers["key"].format(key=analysis.key, mode=analysis.mode))
        elif topic == "tempo":
            out.append(answers["tempo"].format(bpm=f"{analysis.tempo:.0f}") if analysis.tempo else answers["no_tempo"])
        elif topic == "sections":
            out.append(answers["sections"].format(sections=", ".join(analysis.section_names())))
        elif topic == "length":
            out.append(answers["length"].format(length=_clock(analysis.duration_s)))
        elif analysis.loudness_lufs is not None:
            out.append(answers["loudness"].format(lufs=f"{analysis.loudness_lufs:.1f}"))
    return " ".join(out) or describe(analysis, context.spec)


def _phrase(call: Mapping[str, Any]) -> str:
    """The words for one call, from replies.toml [calls]."""
    texts = _texts()
    tool, args = call.get("tool", ""), dict(call.get("args") or {})
    if tool == "tempo_pitch":
        parts = [
            texts["calls"][f"tempo_pitch.{key}"].format(**_fields(tool, args))
            for key in ("bpm", "tempo_pct", "semitones")
            if args.get(key) is not None
        ]
        return _join(parts) if parts else tool
    action = args.get("action") or args.get("change") or "set"
    if tool == "revoice" and action == "remove" and _voice_id(args.get("voice")) == "all":
        action = "remove_all"
    template = texts["calls"].get(f"{tool}.{action}")
    return template.format(**_fields(tool, args)) if template else f"{tool.replace('_', ' ')} {action}"


def _voice_id(voice: Any) -> str:
    """A revoice voice as its preset id ("T-Pain" -> "autotune"), "all", or a voice model's name."""
    from tools.voices import MODEL_PREFIX, resolve_voice

    text = str(voice or "").strip()
    preset = resolve_voice(text) if text else None
    if preset is not None:
        return preset
    if text.lower() in ("all", "everything", "original", "none", "normal", "natural"):
        return "all"
    return text[len(MODEL_PREFIX) :] if text.startswith(MODEL_PREFIX) else text


def _voice_fields(args: dict[str, Any], amount_words: str) -> dict[str, str]:
    """``voice`` (what a set does), ``voice_noun`` and ``voice_amount`` of a revoice call."""
    texts = _texts()
    voice = _voice_id(args.get("voice"))
    name = voice.replace("_", " ")
    name = name.title() if name == name.lower() else name  # a voice model's name, as a name
    voices, nouns = texts["voices"], texts["voice_nouns"]
    out = {
        "voice": voices[voice] if voice in voices else voices["other"].format(name=name),
        "voice_noun": nouns[voice] if voice in nouns else nouns["other"].format(name=name),
        "voice_amount": amount_words,
    }
    own = texts["voice_amounts"].get(voice)
    amount = args.get("amount")
    if own is not None and amount is not None:
        level = "full" if amount >= 0.99 else "light" if amount <= 0.35 else "strong" if amount >= 0.75 else None
        out["voice_amount"] = own.get(level, "") if level else ""
    return out


def _in_section(section: str) -> str:
    """" in every chorus", " in verse 2", " in the last chorus", " in the bridge"."""
    words = _texts()["words"]
    text = " ".join(section.replace("_", " ").split())
    if text in words["repeating"]:
        return words["in_every"].format(section=text)
    if text[-1:].isdigit():
        return words["in_named"].format(section=text)
    return words["in_section"].format(section=text)


def _fields(tool: str, args: dict[str, Any]) -> dict[str, str]:
    """The template fields of one call's args."""
    from tools.grooves import GENRES
    from tools.styles import PRESETS

    words, fields = _texts()["words"], {}
    stems = args.get("stems") or []
    fields["stems"] = _join([words["stem_names"].get(s, s) for s in stems]) if stems else words["all_stems"]
    fields["db"] = f"{_num(args['amount_db'])} dB" if args.get("amount_db") else words["default_db"]
    amount = args.get("amount")
    fields["amount"] = (
        "" if amount is None else words["full"] if amount >= 0.99 else words["light"] if amount <= 0.35
        else words["strong"] if amount >= 0.75 else ""
    )
    target = args.get("target")
    fields["target"] = words["on_target"].format(target=target) if target and target != "mix" else ""
    style = args.get("style")
    fields["style"] = PRESETS[style].title if style in PRESETS else str(style or "")
    genre = args.get("genre")
    fields["genre"] = GENRES[genre].title if genre in GENRES else str(genre or "the genre")
    fields["bpm"] = _num(args.get("bpm") or 0)
    fields["genre_bpm"] = f" at {fields['bpm']} bpm" if args.get("bpm") else ""
    section = args.get("section")
    if tool == "revoice":
        fields.update(_voice_fields(args, fields["amount"]))
        fields["section"] = _in_section(str(section)) if section else ""
    elif tool == "restyle":
        fields["section"] = _in_section(str(section)) if section else ""
    else:
        fields["section"] = section or words["sections"]
    times = args.get("times") or 2
    fields["times"] = words["once"] if times == 1 else words["twice"] if times == 2 else words["times"].format(n=times)
    position = str(args.get("position") or "")
    where, _, anchor = position.partition(":")
    fields["position"] = words[where].format(section=anchor) if where in ("start", "end", "before", "after") else position
    seconds = args.get("seconds")
    fields["length"] = _clock(seconds) if seconds else ""
    fields["seconds"] = f"{_num(seconds)}-second" if seconds else words["default_fade"]
    pct = args.get("tempo_pct")
    if pct is not None:
        fields["tempo"] = (
            words["half_speed"] if abs(pct + 50) < 0.5 else words["double_speed"] if abs(pct - 100) < 0.5
            else (words["faster"] if pct > 0 else words["slower"]).format(pct=_num(abs(pct)))
        )
    semitones = args.get("semitones")
    if semitones is not None:
        size = abs(semitones)
        fields["interval"] = (
            words["semitone"] if size == 1 else words["whole_tone"] if size == 2 else words["octave"] if size == 12
            else words["semitones"].format(n=_num(size))
        )
        fields["direction"] = words["higher"] if semitones > 0 else words["lower"]
    steps = args.get("steps") or 1
    one = words["one_change"] if args.get("action") == "undo" else words["one_redo"]
    fields["steps"] = one if steps == 1 else words["changes"].format(n=steps)
    fields["version"] = str(args.get("version", ""))
    return fields
