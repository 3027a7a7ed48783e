"""The ``rearrange`` tool and the arrangement render stage: section-aware edits of whole songs.

A rearrangement is a running order of source spans: whole sections by id ("s3") or explicit
spans (a shortened or extended version). The tool edits that order with the song's
analysis at hand ("remove verse 2", "loop the chorus twice", "make it 30 seconds"); the
render turns it into an :class:`EditPlan` (frames, splices) and cuts the audio.

Splices: every boundary sits on a beat (a downbeat where the section starts on one), moved
onto the song's own attacks at 3 ms resolution. At each join the outgoing span fades out
over the 25 ms *before* the beat while the incoming span's own lead-in fades up under it, so
the new downbeat's attack stays intact. The fade law follows the correlation of the two
overlapping pieces (equal power when they are unrelated, equal gain when they are the same
music), so a join neither dips nor bumps. The output is exactly as long as the spans added
up, and the same plan, with the same gains, cuts every stem, so stems keep summing to the mix.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import ParameterError
from .spec import Arrangement, ArrangementItem, RemixSpec

__all__ = [
    "ARRANGE_VERSION",
    "RearrangeArgs",
    "apply",
    "Splice",
    "EditPlan",
    "build_plan",
    "arranged_analysis",
    "current_items",
    "describe_order",
]

# Bump when a plan's cuts or fades change for the same arrangement: part of the cache key.
ARRANGE_VERSION = 2
CROSSFADE_S = 0.025
EDGE_FADE_S = 0.005
DEFAULT_FADE_S = 4.0
DEFAULT_REPEATS = 2

Action = Literal["remove", "repeat", "move", "keep_only", "shorten", "extend", "fade_in", "fade_out", "restore"]


class RearrangeArgs(BaseModel):
    """Change the song's form: take sections out, repeat or move them, keep only some, fit it to a length, fade.

    `section` names a section as the analysis does ("intro", "chorus", "verse 2", "the last
    chorus", "drop"); a bare label that occurs several times means all of them for `remove`
    and `keep_only`, the first one otherwise. `times` is how many times a repeated section
    plays (default 2). `position` for `move`: start, end, before:SECTION or after:SECTION.
    `seconds`: the target length for `shorten` / `extend` (the song is cut or grown on beats
    to within a second of it), or the length of `fade_in` / `fade_out` (default 4). `shorten`
    keeps the most representative stretch, or with `position` end / start cuts from the end
    (keeps the beginning) / from the start (keeps the ending).
    `restore` goes back to the original form.
    """

    model_config = ConfigDict(extra="forbid")

    action: Action
    section: str | None = Field(None, max_length=80, description="section name, e.g. 'chorus' or 'verse 2'")
    times: int | None = Field(None, ge=1, le=16, description="how many times the section plays (repeat)")
    seconds: float | None = Field(None, gt=0.0, le=1200.0, description="target length, or fade length")
    position: str | None = Field(
        None, pattern=r"^(start|end|(before|after):.+)$", description="start, end, before:SECTION, after:SECTION"
    )

    @model_validator(mode="after")
    def _needs(self) -> "RearrangeArgs":
        if self.action in ("remove", "repeat", "move", "keep_only") and not self.section:
            raise ValueError(f"{self.action} needs a section, e.g. 'chorus' or 'verse 2'")
        if self.action in ("shorten", "extend") and self.seconds is None:
            raise ValueError(f"{self.action} needs the length in seconds")
        if self.action == "move" and not self.position:
            raise ValueError("move needs a position: start, end, before:SECTION or after:SECTION")
        if self.action == "shorten" and self.position not in (None, "start", "end"):
            raise ValueError("shorten cuts from the start or the end: position start or end")
        if self.action in ("fade_in", "fade_out") and self.seconds is not None and self.seconds > 120:
            raise ValueError("a fade can be at most 120 seconds")
        return self


# ---------------------------------------------------------------------------------- the tool


def current_items(spec: RemixSpec, analysis) -> list[ArrangementItem]:
    """The running order as it stands: the spec's, or every section in the original order."""
    if spec.arrangement.items is not None:
        return list(spec.arrangement.items)
    return [ArrangementItem(section=s.id) for s in analysis.sections]


def _bare_label(text: str, analysis) -> str | None:
    """The label when ``text`` is a bare label ("chorus", "the choruses") that occurs more than once."""
    words = re.sub(r"^the ", "", re.sub(r"\s+", " ", text.strip().lower()))
    for suffix in ("es", "s", ""):
        label = words[: len(words) - len(suffix)] if suffix and words.endswith(suffix) else words
        if sum(s.label == label for s in analysis.sections) > 1:
            return label
    return None


def _item_span(item: ArrangementItem, analysis) -> tuple[float, float]:
    if item.section is not None:
        section = analysis.find_section(item.section)
        return section.start, section.end
    return float(item.start), float(item.end)


def _matcher(name: str, analysis, every: bool):
    """A predicate on items: does this item play the section(s) ``name`` means?"""
    label = _bare_label(name, analysis) if every else None
    sections = [s for s in analysis.sections if s.label == label] if label else [analysis.find_section(name)]

    def matches(item: ArrangementItem) -> bool:
        start, end = _item_span(item, analysis)
        return any(start >= s.start - 0.05 and end <= s.end + 0.05 for s in sections)

    return matches, ", ".join(s.name for s in sections)


def _order_names(items: list[ArrangementItem], analysis) -> str:
    return ", ".join(describe_item(item, analysis) for item in items)


def describe_item(item: ArrangementItem, analysis) -> str:
    if item.section is not None:
        name = analysis.find_section(item.section).name
    else:
        name = f"{_fmt_time(item.start)}-{_fmt_time(item.end)}"
    return f"{name} x{item.repeats}" if item.repeats > 1 else name


def _fmt_time(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def apply(spec: RemixSpec, args: RearrangeArgs, analysis=None) -> RemixSpec:
    """The spec with this rearrangement applied; needs the song's analysis (its sections and beats)."""
    arrangement = spec.arrangement
    if args.action == "restore":
        return spec.update(arrangement=Arrangement())
    if args.action in ("fade_in", "fade_out"):
        seconds = args.seconds if args.seconds is not None else DEFAULT_FADE_S
        field = "fade_in_s" if args.action == "fade_in" else "fade_out_s"
        return spec.update(arrangement=arrangement.model_copy(update={field: float(seconds)}))
    if analysis is None:
        raise ParameterError("rearranging needs the song's analysis (its sections and beats)")
    items = current_items(spec, analysis)
    if args.action in ("shorten", "extend"):
        items, fade_out = _fit_length(items, analysis, float(args.seconds), args.position)
        fades = {"fade_out_s": max(arrangement.fade_out_s, fade_out)} if fade_out else {}
        return spec.update(arrangement=arrangement.model_copy(update={"items": tuple(items), **fades}))
    every = args.action in ("remove", "keep_only")
    matches, meant = _matcher(args.section, analysis, every)
    chosen = [i for i, item in enumerate(items) if matches(item)]
    if not chosen:
        raise ParameterError(
            f"{meant} is not in the current arrangement; it plays: {_order_names(items, analysis)}"
        )
    if args.action == "remove":
        items = [item for i, item in enumerate(items) if i not in chosen]
        if not items:
            raise ParameterError(f"removing {meant} would leave nothing to play")
    elif args.action == "keep_only":
        items = [items[i] for i in chosen]
    elif args.action == "repeat":
        first = chosen[0]
        items[first] = items[first].model_copy(update={"repeats": args.times or DEFAULT_REPEATS})
    else:  # move
        item = items.pop(chosen[0])
        items.insert(_position(args.position, items, analysis), item)
    return spec.update(arrangement=arrangement.model_copy(update={"items": tuple(items)}))


def _position(position: str, items: list[ArrangementItem], analysis) -> int:
    if position == "start":
        return 0
    if position == "end":
        return len(items)
    where, name = position.split(":", 1)
    matches, meant = _matcher(name, analysis, every=False)
    found = [i for i, item in enumerate(items) if matches(item)]
    if not found:
        raise ParameterError(f"{meant} is not in the current arrangement; it plays: {_order_names(items, analysis)}")
    return found[0] if where == "before" else found[0] + 1


# ---------------------------------------------------------------- fitting to a length


def arranged_length(spec: RemixSpec, analysis) -> float:
    """Seconds of the song as ``spec`` arranges it (before tempo changes), what a length is cut or grown from."""
    return _items_duration(current_items(spec, analysis), analysis)


def _items_duration(items: list[ArrangementItem], analysis) -> float:
    return sum((lambda s: (s[1] - s[0]) * item.repeats)(_item_span(item, analysis)) for item in items)


def _snap(t: float, analysis, reach: float = 1.0) -> float:
    """The downbeat nearest ``t`` within ``reach`` seconds, else the nearest beat within half that, else ``t``."""
    for grid, limit in ((analysis.downbeats, reach), (analysis.beats, min(reach, 0.5))):
        if grid:
            times = np.asarray(grid)
            nearest = float(times[np.argmin(np.abs(times - t))])
            if abs(nearest - t) <= limit:
                return nearest
    return t


def _fit_length(
    items: list[ArrangementItem], analysis, seconds: float, position: str | None = None
) -> tuple[list[ArrangementItem], float]:
    """A running order about ``seconds`` long (within a second), and the fade-out it should end with."""
    total = _items_duration(items, analysis)
    if abs(total - seconds) <= 0.5:
        return items, 0.0
    if seconds < total:
        return _shorten(items, analysis, seconds, position), 0.0 if position == "start" else min(3.0, 0.1 * seconds)
    return _extend(items, analysis, seconds), 0.0


def _shorten(items: list[ArrangementItem], analysis, seconds: float, position: str | None = None) -> list[ArrangementItem]:
    """The most representative ``seconds`` of the running order ``items``: from its first chorus
    (or the loudest section), ending on a bar.

    ``position`` "end" cuts from the end (the first ``seconds``), "start" from the start (the
    last ``seconds``, starting on a bar). The cut is made in the order as it plays, so what a
    listener took out stays out; for the song's own order that is the song's own timeline.
    """
    if seconds < 2.0:
        raise ParameterError(f"{seconds:g} s is too short to keep anything musical; ask for at least 2 seconds")
    pieces = [_item_span(item, analysis) for item in items for _ in range(item.repeats)]  # in play order
    starts = [0.0]  # where each piece starts in the order
    for begin, end in pieces:
        starts.append(starts[-1] + end - begin)
    total = starts[-1]

    def placed(sections) -> float | None:
        """Where the first piece inside one of ``sections`` starts in the order."""
        return next(
            (at for (begin, end), at in zip(pieces, starts)
             if any(begin >= sec.start - 0.05 and end <= sec.end + 0.05 for sec in sections)),
            None,
        )  # fmt: skip

    def snap(t: float) -> float:
        """``t`` (in the order) moved onto the bar or beat :func:`_snap` finds in the song, when
        the song plays on unbroken from ``t`` to it."""
        i = min(max(bisect.bisect_right(starts, t) - 1, 0), len(pieces) - 1)
        low, high = i, i
        while low > 0 and abs(pieces[low - 1][1] - pieces[low][0]) < 1e-3:
            low -= 1
        while high < len(pieces) - 1 and abs(pieces[high][1] - pieces[high + 1][0]) < 1e-3:
            high += 1
        source = pieces[i][0] + t - starts[i]
        snapped = _snap(source, analysis)
        return t + snapped - source if pieces[low][0] <= snapped <= pieces[high][1] else t

    chorus = placed([s for s in analysis.sections if s.label in ("chorus", "drop")])
    lead = chorus if chorus is not None else placed([max(analysis.sections, key=lambda s: s.energy)]) or 0.0
    start = {"end": 0.0, "start": total}.get(position, lead)
    if start + seconds > total:  # not enough after it: start earlier, on a bar
        start = snap(max(0.0, total - seconds))
        if start + seconds > total + 0.5:
            start = max(0.0, total - seconds)
    end = min(total, snap(start + seconds))
    if abs((end - start) - seconds) > 1.0 or position == "start":  # cut from the start: the order's own ending
        end = min(total, start + seconds) if position != "start" else total
    kept: list[tuple[float, float]] = []
    for (begin, finish), at in zip(pieces, starts):
        a, b = max(start, at), min(end, at + finish - begin)
        if b <= a:
            continue
        a, b = begin + a - at, begin + b - at
        if kept and abs(kept[-1][1] - a) < 1e-3:  # pieces that run on in the song play as one
            kept[-1] = (kept[-1][0], b)
        else:
            kept.append((a, b))
    kept = [(a, b) for a, b in kept if b - a > 0.05]
    if not kept:
        raise ParameterError(f"{seconds:g} s could not be cut from this version")
    return [ArrangementItem(start=round(a, 4), end=round(b, 4)) for a, b in kept]


def _extend(items: list[ArrangementItem], analysis, seconds: float) -> list[ArrangementItem]:
    """Grow the form to ``seconds`` by repeating its body sections in turn, then a bar-aligned part of one.

    The intro stays first and the outro last; choruses and verses come round again as a
    listener expects of a longer version, never a hard loop of the whole file.
    """
    head = [items[0]] if _label_of(items[0], analysis) == "intro" and len(items) > 2 else []
    tail = [items[-1]] if _label_of(items[-1], analysis) == "outro" and len(items) > 2 else []
    body = items[len(head) : len(items) - len(tail)] or items
    order = list(items)
    total = _items_duration(order, analysis)
    cycle = [it.model_copy(update={"repeats": 1}) for it in body]
    insert_at = len(order) - len(tail)
    k = 0
    while True:
        nxt = cycle[k % len(cycle)]
        length = _items_duration([nxt], analysis)
        if total + length > seconds + 0.5:
            break
        order.insert(insert_at, nxt)
        insert_at += 1
        total += length
        k += 1
    remaining = seconds - total
    if remaining > 0.5:
        # A part of the next body section from its start, cut on a bar (else a beat).
        start, end = _item_span(cycle[k % len(cycle)], analysis)
        cut = _snap(start + remaining, analysis, reach=min(1.0, remaining / 2))
        if abs((cut - start) - remaining) > 1.0 or cut <= start:
            cut = start + remaining
        order.insert(insert_at, ArrangementItem(start=round(start, 4), end=round(min(end, cut), 4)))
    return order


def _label_of(item: ArrangementItem, analysis) -> str | None:
    if item.section is None:
        return None
    return analysis.find_section(item.section).label


# -------------------------------------------------------------------------- the render


@dataclass(frozen=True)
class Splice:
    """A join at output frame ``at``: the previous span fades out over ``fade_out`` while the next fades in.

    ``where`` is ``before`` (the crossfade ends on the beat, under the next span's own lead-in
    from the source), ``after`` (it starts on the beat, over the previous span's own
    continuation: used when the next span starts the song, so has no lead-in) or ``dip``
    (neither exists: a quick fade out and in around the beat).
    """

    at: int
    source_end: int  # where the previous span ended in the source (exclusive)
    source_start: int  # where the next span starts in the source
    fade_out: np.ndarray
    fade_in: np.ndarray
    where: str = "before"


@dataclass(frozen=True)
class EditPlan:
    """Source spans in frames, in playing order, and how they join."""

    spans: tuple[tuple[int, int], ...]
    splices: tuple[Splice, ...]
    source_frames: int
    sample_rate: int
    pieces: tuple[tuple[int, int], ...] = ()  # the items' spans before contiguous ones were merged

    @property
    def frames(self) -> int:
        return sum(b - a for a, b in self.spans)

    def offsets(self) -> list[int]:
        return list(np.cumsum([0] + [b - a for a, b in self.spans])[:-1])

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """Cut ``samples`` [shape=(channels, source_frames)] by this plan."""
        if samples.shape[1] != self.source_frames:
            raise ParameterError(f"the plan is for {self.source_frames} frames, got {samples.shape[1]}")
        out = np.empty((samples.shape[0], self.frames), dtype=np.float32)
        for (a, b), at in zip(self.spans, self.offsets()):
            out[:, at : at + b - a] = samples[:, a:b]
        for splice in self.splices:
            n, at = len(splice.fade_in), splice.at
            if splice.where == "before":
                lead = samples[:, splice.source_start - n : splice.source_start]
                out[:, at - n : at] = out[:, at - n : at] * splice.fade_out + lead * splice.fade_in
            elif splice.where == "after":
                tail = samples[:, splice.source_end : splice.source_end + n]
                out[:, at : at + n] = tail * splice.fade_out + out[:, at : at + n] * splice.fade_in
            else:
                out[:, at - n : at] *= splice.fade_out
                out[:, at : at + n] *= splice.fade_in
        edge = max(1, int(EDGE_FADE_S * self.sample_rate))
        if self.spans and self.spans[0][0] > 0:  # starts mid-song: no click on the first sample
            out[:, :edge] *= np.linspace(0.0, 1.0, edge, dtype=np.float32)
        if self.spans and self.spans[-1][1] < self.source_frames:
            out[:, -edge:] *= np.linspace(1.0, 0.0, edge, dtype=np.float32)
        return out

    def map_times(self, times: np.ndarray) -> np.ndarray:
        """Where source times (seconds) play in the output, every time they play, sorted."""
        times = np.asarray(times, dtype=np.float64)
        out = []
        for (a, b), at in zip(self.spans, self.offsets()):
            inside = times[(times * self.sample_rate >= a) & (times * self.sample_rate < b)]
            out.append(inside - a / self.sample_rate + at / self.sample_rate)
        return np.sort(np.concatenate(out)) if out else np.zeros(0)


def _read(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """samples[:, start:stop], zero-padded where the range leaves the song."""
    out = np.zeros((samples.shape[0], stop - start), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, samples.shape[1])
    if hi > lo:
        out[:, lo - start : hi - start] = samples[:, lo:hi]
    return out


def _snap_to_beat(t: float, beats: np.ndarray, duration: float) -> float:
    """Section edges onto the nearest (attack-aligned) beat within 150 ms; the song's ends stay put."""
    if t <= 1e-3 or t >= duration - 1e-3 or len(beats) == 0:
        return min(max(t, 0.0), duration)
    nearest = float(beats[np.argmin(np.abs(beats - t))])
    return nearest if abs(nearest - t) <= 0.15 else t


def _fade_pair(outgoing: np.ndarray, incoming: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Crossfade gains whose law follows the two pieces' correlation (equal power for 0, equal gain for 1)."""
    a, b = outgoing.mean(axis=0), incoming.mean(axis=0)
    denom = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    r = float(np.clip(np.sum(a * b) / denom, 0.0, 1.0)) if denom > 1e-12 else 0.0
    p = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)  # a raised-cosine glide from 0 to 1
    norm = np.sqrt((1 - p) ** 2 + p**2 + 2 * r * p * (1 - p))
    return ((1 - p) / norm).astype(np.float32), (p / norm).astype(np.float32)


def build_plan(arrangement: Arrangement, analysis, audio_samples: np.ndarray, sample_rate: int, beats=None) -> EditPlan:
    """The edit plan of ``arrangement`` over a song (its mix decides the fade laws).

    Args:
        arrangement: the spec's arrangement (``items`` must be set).
        analysis: the song's analysis (sections, beats).
        audio_samples: the song's mix [shape=(channels, frames)].
        sample_rate: its rate.
        beats: beat times to cut on (default the analysis's beats).
    """
    frames = audio_samples.shape[1]
    duration = frames / sample_rate
    beats = np.asarray(analysis.beats if beats is None else beats, dtype=np.float64)
    spans: list[tuple[int, int]] = []
    for item in arrangement.items or ():
        start, end = _item_span(item, analysis)
        start, end = _snap_to_beat(start, beats, duration), _snap_to_beat(end, beats, duration)
        a, b = int(round(start * sample_rate)), int(round(end * sample_rate))
        if b - a < int(0.05 * sample_rate):
            continue
        spans.extend([(a, b)] * item.repeats)
    if not spans:
        raise ParameterError("the arrangement plays nothing")
    merged = [spans[0]]
    for a, b in spans[1:]:  # contiguous pieces of the source need no join
        if a == merged[-1][1]:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    n = int(CROSSFADE_S * sample_rate)
    splices, at = [], 0
    for (a0, a1), (b0, b1) in zip(merged[:-1], merged[1:]):
        at += a1 - a0
        length = min(n, a1 - a0, b1 - b0)
        if b0 >= length:  # the next span's own lead-in exists: fade it up under the outgoing tail
            where, outgoing, incoming = "before", audio_samples[:, a1 - length : a1], audio_samples[:, b0 - length : b0]
        elif a1 + length <= frames:  # it starts the song: let the outgoing span ring on into it instead
            where, outgoing, incoming = "after", audio_samples[:, a1 : a1 + length], audio_samples[:, b0 : b0 + length]
        else:
            where, length = "dip", min(length, int(EDGE_FADE_S * sample_rate))
        if where == "dip":
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)
            fade_out, fade_in = (1.0 - ramp).astype(np.float32), ramp.astype(np.float32)
        else:
            fade_out, fade_in = _fade_pair(outgoing, incoming, length)
        splices.append(Splice(at, a1, b0, fade_out, fade_in, where))
    return EditPlan(
        spans=tuple(merged), splices=tuple(splices), source_frames=frames, sample_rate=sample_rate, pieces=tuple(spans)
    )


def arranged_analysis(analysis, plan: EditPlan):
    """The analysis of the rearranged song: beats, downbeats and sections where they now play."""
    from .analyze import Section

    sr = plan.sample_rate
    sections, counts, seen = [], {}, {}
    pieces = []
    starts = np.cumsum([0] + [b - a for a, b in plan.pieces])[:-1]
    for (a, b), at in zip(plan.pieces, starts):
        middle = (a + b) / 2 / sr
        source = next((s for s in analysis.sections if s.start <= middle < s.end), analysis.sections[-1])
        pieces.append((source, at / sr, (at + b - a) / sr))
        counts[source.label] = counts.get(source.label, 0) + 1
    for index, (source, start, end) in enumerate(pieces):
        seen[source.label] = seen.get(source.label, 0) + 1
        numbered = counts[source.label] > 1
        sections.append(
            Section(
                id=f"s{index}",
                name=f"{source.label} {seen[source.label]}" if numbered else source.label,
                label=source.label,
                ordinal=seen[source.label],
                start=start,
                end=end,
                energy=source.energy,
            )
        )
    return analysis.model_copy(
        update={
            "duration_s": plan.frames / sr,
            "beats": [float(t) for t in plan.map_times(analysis.beats)],
            "downbeats": [float(t) for t in plan.map_times(analysis.downbeats)],
            "sections": sections,
        }
    )


def describe_order(spec: RemixSpec, analysis) -> str:
    """The running order in words, e.g. "intro, chorus 1 x2, verse 2, outro (1:42)"."""
    items = current_items(spec, analysis)
    return f"{_order_names(items, analysis)} ({_fmt_time(_items_duration(items, analysis))})"
