"""A conversation about one song: the planner, the version tree of specs, and the rendered audio.

Each listener message is planned into tool calls, the calls are validated and applied to the
current version's spec (each edit makes a new version, a child of the current one, so an
undo followed by a new request starts a branch and loses nothing), and the resulting version
is rendered through the engine (memoised, so going back to an earlier version is instant).
A call that fails (a section the song does not have, a value out of range) leaves the
current version as it was and the reply says why.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tools.audio import Audio, save
from tools.calls import TOOLS, HistoryArgs, ToolCall, validate_call
from tools.errors import RemixError
from tools.files import atomic_write_bytes
from tools.render import Renderer, Source
from tools.settings import Settings, get_settings
from tools.spec import RemixSpec

from .planner import PlanContext, PlanResult

__all__ = ["Version", "Turn", "Session", "default_planner", "MAX_MESSAGE_CHARS"]

MAX_MESSAGE_CHARS = 2000  # a request, not a document (planning time grows with length)


@dataclass(frozen=True)
class Version:
    """One node of the version tree: a spec, how it was made, and from which version."""

    number: int
    spec: RemixSpec
    parent: int | None
    calls: tuple[dict[str, Any], ...] = ()
    request: str = ""
    summary: str = "the original song"


@dataclass
class Turn:
    """One exchange: the message, the plan, what was applied, and the version it left current."""

    request: str
    reply: str
    calls: tuple[dict[str, Any], ...]
    version: int
    planner: str = "offline"
    notes: tuple[str, ...] = ()
    audio_path: Path | None = None
    seconds: float = 0.0


def default_planner(settings: Settings):
    """The LLM agent when one is configured (it falls back to the offline planner by itself), else the offline planner."""
    if settings.llm_configured:
        from .agent import AgentPlanner

        return AgentPlanner(settings)
    from .offline import OfflinePlanner

    return OfflinePlanner()


class Session:
    """A conversation about one song.

    Args:
        source: the song.
        settings: engine settings (default: from the environment).
        planner: anything with ``plan(message, context) -> PlanResult`` (default: see
            :func:`default_planner`).
        renderer: a shared renderer (its caches make revisits instant).
        out_dir: where each version's audio is written (default: a folder of this session's
            own under the data folder, so two sessions on the same song never share files).
    """

    preview_seconds = 8.0

    def __init__(
        self,
        source: Source,
        settings: Settings | None = None,
        planner=None,
        renderer=None,
        out_dir=None,
        store=None,
        session_id: str | None = None,
    ):
        self.settings = settings or get_settings()
        self.source = source
        self.renderer = renderer or Renderer(self.settings)
        self.planner = planner
        self.versions: list[Version] = [Version(0, RemixSpec(), None)]
        self.current = 0
        self.turns: list[Turn] = []
        self.id = session_id or uuid.uuid4().hex
        self.out_dir = Path(out_dir) if out_dir else self.settings.data_dir / "sessions" / self.id
        self._redo: dict[int, int] = {}  # version -> the child an undo came back from
        self.store = store
        self.remixer: str | None = None  # who is asking (credited as the remixer in exports)
        self.source_name = source.path.name if source.path is not None else "the song"
        self.source_sha256: str | None = None
        self._saved = 1  # versions already in the store
        if store is not None and session_id is None:
            if source.path is None:
                raise RemixError("a stored session needs the song's file")
            from tools.provenance import read_source_tags

            self.source_sha256, _ = store.add_source(source.path, source.key, source.path.name, read_source_tags(source.path))
            store.create_session(self.id, self.source_sha256, RemixSpec().model_dump_json())

    @classmethod
    def resume(cls, store, session_id: str, settings: Settings | None = None, planner=None, renderer=None) -> "Session":
        """A stored session as it was left: its song, version tree, current version and turns.

        Raises:
            RemixError: no such session, or its song's file is missing from the store.
        """
        record = store.load_session(session_id)
        if record is None:
            raise RemixError(f"there is no session {session_id!r}")
        if not record.source_path.exists():
            raise RemixError(f"the song of session {session_id} ({record.source_name}) is missing from the store")
        source = Source.from_path(record.source_path, settings)
        session = cls(source, settings, planner=planner, renderer=renderer, store=None, session_id=record.id)
        session.store, session.source_sha256, session.source_name = store, record.source_sha256, record.source_name
        session.versions = [
            Version(v["number"], RemixSpec.model_validate_json(v["spec"]), v["parent"], tuple(v["calls"]), v["request"], v["summary"] or "the original song")
            for v in record.versions
        ]  # fmt: skip
        session._saved = len(session.versions)
        session.current = record.current if 0 <= record.current < len(session.versions) else 0
        session._redo = dict(record.redo)
        session.turns = [
            Turn(t["request"], t["reply"], tuple(t["calls"]), t["version"], t["planner"], tuple(t["notes"]), seconds=t["seconds"])
            for t in record.turns
        ]  # fmt: skip
        return session

    def _persist(self, turn: "Turn | None") -> None:
        """Write what changed (new versions, where the session stands, the turn) in one transaction."""
        if self.store is None:
            return
        fresh = [
            {"number": v.number, "parent": v.parent, "spec": v.spec.model_dump_json(), "calls": list(v.calls),
             "request": v.request, "summary": v.summary}
            for v in self.versions[self._saved:]
        ]  # fmt: skip
        record = None
        if turn is not None:
            record = {"request": turn.request, "reply": turn.reply, "calls": list(turn.calls), "version": turn.version,
                      "planner": turn.planner, "notes": list(turn.notes), "seconds": turn.seconds}  # fmt: skip
        self.store.save_turn(self.id, fresh, self.current, self._redo, record)
        self._saved = len(self.versions)

    def record_use(self, number: int, kind: str, detail: str = "") -> None:
        """A play or an export of version ``number``, for the usage ledger."""
        if self.store is not None and self.source_sha256:
            self.store.record_use(self.id, number, kind, self.source_sha256, detail)

    # ------------------------------------------------------------------ state

    @property
    def analysis(self):
        return self.renderer.context(self.source).analysis

    @property
    def spec(self) -> RemixSpec:
        return self.versions[self.current].spec

    def context(self) -> PlanContext:
        previous = self.turns[-1].calls if self.turns else ()
        recent = tuple((t.request, t.reply) for t in self.turns[-4:])
        return PlanContext(previous_calls=previous, analysis=self.analysis, spec=self.spec, recent_turns=recent)

    # ------------------------------------------------------------------ a turn

    def turn(self, message: str, render: bool = True) -> Turn:
        """Plan ``message``, apply its calls, render the version it leads to, and record the turn."""
        started = time.perf_counter()
        message = (message or "").strip()
        if len(message) > MAX_MESSAGE_CHARS:
            turn = self._record(
                message[:200] + "...",
                PlanResult(reply=f"That message is very long ({len(message)} characters); "
                           f"please ask in fewer words (at most {MAX_MESSAGE_CHARS} characters)."),
                (), started, render,
            )  # fmt: skip
            return turn
        if not message:
            return self._record(message, PlanResult(reply="Tell me what you would like to hear."), (), started, render)
        if self.planner is None:
            self.planner = default_planner(self.settings)
        try:
            plan = self.planner.plan(message, self.context())
        except RemixError as error:
            plan = PlanResult(reply=f"Sorry, I could not work that out: {error}")
        applied, problems = self._apply(plan.calls, message)
        reply = plan.reply
        if problems:
            reply = (reply + " " if applied and reply else "") + " ".join(problems)
        result = PlanResult(calls=applied, reply=reply, planner=plan.planner, notes=plan.notes)
        return self._record(message, result, applied, started, render)

    def act(self, calls: list[dict[str, Any]], label: str, reply: str = "", render: bool = True) -> Turn:
        """Apply ``calls`` without planning (a button: undo, redo, go to a version) and record the turn."""
        started = time.perf_counter()
        applied, problems = self._apply(calls, label)
        text = " ".join(problems) if problems else reply
        return self._record(label, PlanResult(calls=applied, reply=text, planner="button"), applied, started, render)

    def export(self, number: int, format: str = "wav") -> Path:
        """Version ``number`` as a ``wav``, ``flac`` or ``mp3`` file (rendered if needed)."""
        if format not in ("wav", "flac", "mp3"):
            raise RemixError(f"format {format!r}: expected wav, flac or mp3")
        if not 0 <= number < len(self.versions):
            raise RemixError(f"there is no version {number}; versions go from 0 to {len(self.versions) - 1}")
        path = self.out_dir / f"v{number}.{format}"
        if not path.exists():
            from tools import provenance

            result = self.renderer.render(self.source, self.versions[number].spec)
            manifest = provenance.build_manifest(
                self.source,
                self.versions[number].spec,
                provenance.lineage_from_versions(self.versions, number),
                result.provenance,
                remixer=self.remixer,
                render_key=result.key,
            )
            # Tags, a signed C2PA manifest where the format takes one, and a .credits.json sidecar.
            provenance.export(result.audio, path, manifest, self.settings, source_file=self.source.path)
        self.record_use(number, "export", format)
        return path

    def _apply(self, calls, message: str) -> tuple[tuple[dict[str, Any], ...], list[str]]:
        applied: list[dict[str, Any]] = []
        problems: list[str] = []
        for raw in calls:
            try:
                call = ToolCall.model_validate(raw)
                args = validate_call(call)
                if isinstance(args, HistoryArgs):
                    self._history(args)
                else:
                    tool = TOOLS[call.tool]
                    if tool.apply is not None:
                        spec = tool.edit(self.spec, args, lambda: self.analysis, self.settings)
                        if spec != self.spec:
                            self._new_version(spec, call, message)
                applied.append(call.model_dump())
            except (RemixError, ValidationError) as error:
                problems.append(f"I could not {_verb(raw)}: {_short(error)}.")
        return tuple(applied), problems

    def _new_version(self, spec: RemixSpec, call: ToolCall, message: str) -> None:
        number = len(self.versions)
        self.versions.append(Version(number, spec, self.current, (call.model_dump(),), message, _summary(call)))
        self.current = number

    def _history(self, args: HistoryArgs) -> None:
        steps = args.steps or 1
        if args.action == "undo":
            for _ in range(steps):
                parent = self.versions[self.current].parent
                if parent is None:
                    break
                self._redo[parent] = self.current
                self.current = parent
        elif args.action == "redo":
            for _ in range(steps):
                child = self._redo.get(self.current)
                if child is None:
                    break
                self.current = child
        elif args.action == "reset":
            self.current = 0
        else:
            if args.version is None or not 0 <= args.version < len(self.versions):
                raise RemixError(f"there is no version {args.version}; versions go from 0 to {len(self.versions) - 1}")
            self.current = args.version

    def _record(self, message: str, plan: PlanResult, applied, started: float, render: bool) -> Turn:
        turn = Turn(
            request=message,
            reply=plan.reply,
            calls=tuple(applied),
            version=self.current,
            planner=plan.planner,
            notes=tuple(plan.notes),
        )
        self._persist(turn)  # the recipe is kept before any audio is made
        if render:
            try:
                turn.audio_path = self.render_version(self.current)
            except RemixError as error:
                turn.reply = f"{turn.reply} (The audio could not be rendered: {error}.)".strip()
        turn.seconds = time.perf_counter() - started
        self.turns.append(turn)
        return turn

    # ------------------------------------------------------------------ audio

    def render_version(self, number: int, progress=None) -> Path:
        """Render version ``number`` (memoised) and write it as ``v<number>.wav``; returns the path.

        ``progress(stage name, index, count)`` is told each render stage as it starts.
        """
        path = self.out_dir / f"v{number}.wav"
        if path.exists():
            return path
        result = self.renderer.render(self.source, self.versions[number].spec, progress)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"spec": self.versions[number].spec.model_dump(mode="json"), "provenance": list(result.provenance)}
        atomic_write_bytes(self.out_dir / f"v{number}.json", json.dumps(manifest, indent=2).encode())
        save(result.audio, path)  # atomic: a render killed halfway leaves no file under this name
        if self.store is not None and self.source_sha256:
            self.store.record_render(self.id, number, path, self.source_sha256)
        return path

    def is_rendered(self, number: int) -> bool:
        return (self.out_dir / f"v{number}.wav").exists()

    def preview_window(self) -> tuple[float, float] | None:
        """Where a preview listens: (start, seconds), on a bar line at the first chorus (or the
        first section after the intro); None when the song is short enough to render whole."""
        analysis = self.analysis
        seconds = self.preview_seconds
        if analysis.duration_s < 2.5 * seconds:
            return None
        sections = analysis.sections
        chosen = next((s for s in sections if s.label == "chorus"), None)
        if chosen is None:
            chosen = next((s for s in sections if s.start > 0 and s.label != "intro"), sections[0] if sections else None)
        start = chosen.start if chosen is not None else 0.0
        if analysis.downbeats:
            start = min(analysis.downbeats, key=lambda t: abs(t - start))
        start = max(0.0, min(start, analysis.duration_s - seconds))
        return start, seconds

    def preview(self, number: int) -> tuple[Path, float, float] | None:
        """A short window of version ``number`` rendered first, so a change is heard at once.

        Returns (path, start, seconds) of the window in the original song's time, or None
        when there is nothing to gain (already rendered, a short song) or a window cannot be
        quick (see Renderer.preview).
        """
        window = self.preview_window()
        if window is None or self.is_rendered(number):
            return None
        result = self.renderer.preview(self.source, self.versions[number].spec, *window)
        if result is None:
            return None
        path = self.out_dir / f"v{number}-preview.wav"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save(result.audio, path)
        return path, window[0], window[1]

    def audio(self, number: int | None = None) -> Audio:
        return self.renderer.render(self.source, self.versions[self.current if number is None else number].spec).audio


def _verb(raw: Any) -> str:
    tool = raw.get("tool") if isinstance(raw, dict) else getattr(raw, "tool", "")
    return {"separate": "change the stems", "restyle": "change the style", "genre_shift": "change the genre",
            "rearrange": "rearrange the song", "tempo_pitch": "change tempo or pitch", "history": "go there"}.get(
        tool, f"use {tool or 'that tool'}"
    )  # fmt: skip


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0]
    return text[:300]


def _summary(call: ToolCall) -> str:
    args = ", ".join(f"{k} {v}" for k, v in call.args.items())
    return f"{call.tool}: {args}" if args else call.tool
