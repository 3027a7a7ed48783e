"""The studio (Gradio): the chat where a listener talks about a song and hears each version,
and a mixer page with direct controls. The demo song is loaded and ready on first open."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

__all__ = ["StudioBackend", "ChatBackend", "build_app", "launch"]

EXAMPLES = [
    "take the vocals out",
    "make it more lo-fi",
    "turn it into house at 124",
    "skip the intro and loop the chorus twice",
    "a whole tone lower",
    "undo that",
    "what key is it in?",
]


class StudioBackend:
    """What the page does, without the page: open songs, render, keep renders on disk.

    Every user-facing failure comes back as a message, never an exception, so the page can
    show it in plain words.
    """

    def __init__(self, settings):
        from tools.render import Renderer

        self.settings = settings
        self.renderer = Renderer(settings)
        self.renders = settings.data_dir / "renders"
        self.renders.mkdir(parents=True, exist_ok=True)

    def default_song(self) -> Path:
        from tools.demo import demo_song_path

        return demo_song_path(self.settings.data_dir)

    def open_song(self, path):
        """(source or None, a description in Markdown)."""
        from tools.analyze import analyze_cached
        from tools.errors import RemixError
        from tools.render import Source

        if not path:
            return None, "Drop a song (wav, flac, mp3, ogg, m4a) to start."
        try:
            source = Source.from_path(path, self.settings)
            analysis = analyze_cached(source.audio, source.key, self.settings)
        except RemixError as error:
            return None, f"Could not open that file: {_md(error)}"
        sections = ", ".join(f"{s.name} {s.start:.0f}-{s.end:.0f} s" for s in analysis.sections)
        loudness = "silent" if analysis.loudness_lufs is None else f"{analysis.loudness_lufs:.1f} LUFS"
        return source, (
            f"**{_md(Path(path).name)}**: {analysis.duration_s:.0f} s, {analysis.tempo:.1f} bpm, "
            f"{analysis.beats_per_bar} beats to the bar, {analysis.key} {analysis.mode}, {loudness}.\n\n"
            f"Sections: {sections}"
        )

    def render(
        self,
        source,
        tempo_pct: float = 0,
        semitones: float = 0,
        fade_in_s: float = 0,
        fade_out_s: float = 0,
        removed_stems: list[str] | None = None,
    ):
        """(path of the rendered wav or None, a summary in Markdown)."""
        from tools.audio import save
        from tools.calls import apply_calls
        from tools.errors import RemixError
        from tools.loudness import integrated_lufs

        if source is None:
            return None, "Open a song first."
        args = {"tempo_pct": tempo_pct or None, "semitones": semitones or None}
        args = {k: v for k, v in args.items() if v is not None}
        calls = [{"tool": "tempo_pitch", "args": args}] if args else []
        if removed_stems:
            calls.append({"tool": "separate", "args": {"action": "remove", "stems": list(removed_stems)}})
        try:
            spec = apply_calls(calls)
            fades = spec.arrangement.model_copy(update={"fade_in_s": fade_in_s, "fade_out_s": fade_out_s})
            spec = spec.update(arrangement=fades)
            result = self.renderer.render(source, spec)
            path = self.renders / f"{result.key}.wav"
            if not path.exists():
                save(result.audio, path)
        except RemixError as error:
            return None, f"That did not work: {error}"
        steps = ", ".join(f"{r.name} ({r.status}, {r.seconds:.2f} s)" for r in result.stages if r.status != "skipped")
        if result.notes:
            steps += ". " + "; ".join(result.notes)
        changes = json.dumps(spec.model_dump(mode="json", exclude_defaults=True))
        return str(path), (
            f"Rendered {result.audio.duration_s:.1f} s at {integrated_lufs(result.audio):.1f} LUFS. "
            f"Stages: {steps}.\n\nSpec: `{changes}`"
        )


class ChatBackend:
    """The conversation behind the chat page: one session per browser tab, kept server-side.

    Every handler returns the chat history in Gradio's messages format; a failure becomes a
    plain-words assistant message, never an exception, and never loses the session. The page
    holds only a session key (per browser tab), so two listeners never see each other's songs.
    """

    def __init__(self, settings, renderer=None, prepare_stems: bool = True):
        import threading

        from tools.render import Renderer

        from assistant.store import Store

        self.settings = settings
        self.renderer = renderer or Renderer(settings)
        self.store = Store(settings.data_dir)
        self.sessions: dict = {}
        self.prepare_stems = prepare_stems
        self.max_sessions = 64
        self._voice_lock = threading.Lock()

    def close(self, key: str | None) -> None:
        """Forget a session the page no longer shows (its tab closed, or it opened another song).

        Its versions stay on disk in its own folder."""
        if key:
            self.sessions.pop(key, None)

    def _session(self, key: str | None):
        """The session behind ``key``, marked as the most recently used."""
        session = self.sessions.pop(key, None) if key else None
        if session is not None:
            self.sessions[key] = session
        return session

    # ------------------------------------------------------------------ songs

    def start(self, path) -> tuple[str | None, list]:
        """Open ``path``: a new session, and a first message describing the song with its audio."""
        from assistant.session import Session
        from tools.describe import describe
        from tools.errors import RemixError
        from tools.render import Source

        name = _md(Path(str(path)).name) if path else "that file"
        try:
            source = Source.from_path(path, self.settings)
            session = Session(source, self.settings, renderer=self.renderer, store=self.store)
            description = describe(session.analysis)
            original = session.render_version(0)
        except RemixError as error:
            return None, [{"role": "assistant", "content": f"I could not open {name}: {_md(error)}"}]
        except Exception as error:  # noqa: BLE001 - the page must get words, not a traceback
            log.exception("opening %s failed", name)
            return None, [{"role": "assistant", "content": f"I could not open {name}: {_md(_plain(error))}"}]
        self.sessions[session.id] = session
        while len(self.sessions) > self.max_sessions:  # the longest-idle listener's session goes first
            self.sessions.pop(next(iter(self.sessions)))
        if self.prepare_stems:
            self._separate_in_background(session)
        intro = (
            f"**{name}** is ready. {description} Ask for the version you want to hear.\n\n"
            f"_Your session is kept: add `?session={session.id}` to this page's address to come back to it._"
        )
        return session.id, [{"role": "assistant", "content": intro}, _audio_message(original, "v0, the original")]

    def warm(self, path) -> None:
        """Analyse and render ``path`` (and separate it in the background) without keeping a session."""
        from assistant.session import Session
        from tools.render import Source

        session = Session(Source.from_path(path, self.settings), self.settings, renderer=self.renderer)
        session.out_dir = self.settings.data_dir / "sessions" / "warm"
        session.analysis  # the analysis first (the page describes the song), then the audio
        session.render_version(0)
        if self.prepare_stems:
            self._separate_in_background(session)

    def resume(self, session_id: str) -> tuple[str | None, list]:
        """Bring back a stored session (after a restart, or from its link): its conversation so far
        and the version it was on, rendered again if its audio was cleaned up."""
        from assistant.session import Session
        from tools.errors import RemixError

        session = self.sessions.get(session_id)
        try:
            if session is None:
                session = Session.resume(self.store, session_id, self.settings, renderer=self.renderer)
            audio = session.render_version(session.current)
        except RemixError as error:
            return None, [{"role": "assistant", "content": f"I could not bring back that session: {_md(error)}"}]
        except Exception as error:  # noqa: BLE001
            log.exception("resuming %s failed", session_id)
            return None, [{"role": "assistant", "content": f"I could not bring back that session: {_plain(error)}"}]
        self.sessions[session.id] = session
        history = [{"role": "assistant", "content": f"Welcome back to **{_md(session.source_name)}**: {len(session.versions)} versions, as you left them."}]
        for turn in session.turns[-10:]:
            history.append({"role": "user", "content": turn.request})
            if turn.reply:
                history.append({"role": "assistant", "content": turn.reply})
        version = session.versions[session.current]
        history.append(_audio_message(audio, f"v{version.number}: {version.request or version.summary}"))
        return session.id, history

    def open_page(self, first_song, query: dict | None = None) -> tuple[str | None, list]:
        """What a new page shows: the session its link names (``?session=ID``), else the first song."""
        wanted = (query or {}).get("session")
        if wanted:
            key, history = self.resume(str(wanted)[:64])
            if key is not None:
                return key, history
            key, fresh = self.start(str(first_song))
            return key, history + fresh
        return self.start(str(first_song))

    def _separate_in_background(self, session) -> None:
        """Separate the song's stems while the listener listens, so stem and genre requests are quick."""
        import threading

        def work():
            try:
                session.renderer.context(session.source).stems()
            except Exception:  # noqa: BLE001 - a request that needs stems will say what went wrong
                log.warning("background separation failed", exc_info=True)

        threading.Thread(target=work, name="separate-stems", daemon=True).start()

    # ------------------------------------------------------------------ a turn

    def send(self, key: str | None, message, history: list) -> tuple[str | None, list, dict | None]:
        """One turn, run to the end: (session key, the new history, the cleared input box)."""
        result = (key, list(history or []), None)
        for result in self.send_steps(key, message, history):
            pass
        return result

    def send_steps(self, key: str | None, message, history: list, progress=None):
        """One turn as it happens: yields (session key, history, cleared box) after each step.

        The listener's words (or a voice note's transcript) show at once, then the plan and
        reply, then a short preview of the new version where one can be quick, then the full
        render (with ``progress(fraction, desc)`` told each stage). Each history yielded is a
        snapshot of that moment.
        """
        for key, snapshot, box in self._steps(key, message, history, progress):
            yield key, list(snapshot), box

    def _steps(self, key: str | None, message, history: list, progress):
        text, files = _message_parts(message)
        history = list(history or [])
        try:
            notes = [f for f in files if _is_voice_note(f)]
            songs = [f for f in files if f not in notes]
            if songs:
                new_key, opened = self.start(songs[0])
                history += [{"role": "user", "content": f"📎 {_md(Path(songs[0]).name)}"}] + opened
                if new_key is not None and new_key != key:
                    self.close(key)
                key = new_key or key
                yield key, history, None
                if new_key is None:
                    return
            if notes and not text:
                history.append({"role": "user", "content": "🎤 (voice note)"})
                yield key, history, None
                heard = self._transcribe(notes[0])
                if isinstance(heard, str) and heard.startswith("!"):
                    history[-1] = {"role": "user", "content": "🎤 (voice note)"}
                    history.append({"role": "assistant", "content": heard[1:]})
                    yield key, history, None
                    return
                history[-1] = {"role": "user", "content": f"🎤 {heard}"}
                text = heard
            elif text:
                history.append({"role": "user", "content": text})
            if not text:
                yield key, history, None
                return
            session = self._session(key)
            if session is None:
                history.append({"role": "assistant", "content": "Open a song first (drop it in the box)."})
                yield key, history, None
                return
            yield key, history, None
            yield from self._turn(key, session, text, history, progress)
        except Exception as error:  # noqa: BLE001 - never a traceback in the chat
            log.exception("a turn failed")
            history.append({"role": "assistant", "content": f"Something went wrong on my side ({_plain(error)}). Your versions are safe; try again or ask for something else."})
            yield key, history, None

    def _turn(self, key, session, text: str, history: list, progress):
        from tools.errors import RemixError

        turn = session.turn(text, render=False)
        steps = "\n".join(f"{call['tool']} {json.dumps(call['args'])}" for call in turn.calls)
        if steps:
            history.append({"role": "assistant", "content": steps, "metadata": {"title": "tool steps", "status": "done"}})
        history.append({"role": "assistant", "content": turn.reply or "Done."})
        for note in turn.notes:
            history.append({"role": "assistant", "content": f"_{note}_"})
        if not any(call["tool"] != "describe" for call in turn.calls):
            yield key, history, None
            return
        number = session.current
        label = turn.reply.split(". ")[0].rstrip(".") if turn.reply else session.versions[number].summary
        preview_at = None
        if not session.is_rendered(number):
            if _sings_in_a_voice_model(turn.calls):
                history.append({"role": "assistant", "content": SLOW_COVER})
            yield key, history, None
            try:
                preview = session.preview(number)
            except RemixError:
                preview = None
            if preview is not None:
                _, start, seconds = preview
                window = f"preview {_clock(start)}-{_clock(start + seconds)} (the whole song is on its way)"
                history.append(_audio_message(preview[0], window))
                preview_at = len(history) - 1
                yield key, history, None
        reporter = None
        if progress is not None:
            def reporter(stage: str, index: int, count: int) -> None:
                progress(index / max(count, 1), desc=_stage_words(stage))
        try:
            path = session.render_version(number, progress=reporter)
        except RemixError as error:
            history.append({"role": "assistant", "content": f"The audio could not be rendered: {error}. Your versions are safe."})
            yield key, history, None
            return
        if preview_at is not None:
            del history[preview_at]  # the whole song takes the preview's place
        history.append(_audio_message(path, f"v{number}: {label}"))
        yield key, history, None

    def _transcribe(self, path) -> str:
        """The voice note's words, normalised for the planner; '!' and a message when none."""
        from assistant.voice import transcribe
        from tools.errors import RemixError

        try:
            with self._voice_lock:
                heard = transcribe(path, self.settings)
        except RemixError as error:
            return f"!I could not understand that voice note: {error}"
        words = (heard.normalised or heard.text).strip()
        return words if words else "!I could not hear a request in that voice note; try again closer to the microphone."

    # ------------------------------------------------------------------ buttons and panels

    def button(self, key: str | None, action: str, history: list) -> list:
        """Undo or redo from a button: the same history call a message would make."""
        session = self.sessions.get(key)
        history = list(history or [])
        if session is None:
            return history
        before = session.current
        turn = session.act([{"tool": "history", "args": {"action": action}}], label=action)
        if session.current == before:
            history.append({"role": "assistant", "content": f"Nothing to {action}."})
            return history
        version = session.versions[session.current]
        history.append({"role": "assistant", "content": f"{action.capitalize()}: back to v{version.number} ({version.summary})."})
        if turn.audio_path is not None:
            history.append(_audio_message(turn.audio_path, f"v{version.number}"))
        return history

    def versions_view(self, key: str | None):
        """(rows for the versions table, the version names to pick from) of the session."""
        import gradio as gr

        session = self.sessions.get(key)
        if session is None:
            return [], gr.update(choices=[]), gr.update(choices=[]), gr.update(choices=[])
        rows, names = [], []
        for version in session.versions:
            mark = "now" if version.number == session.current else ""
            parent = "" if version.parent is None else f"v{version.parent}"
            length = _clock(_duration(session, version.number)) if session.is_rendered(version.number) else ""
            rows.append([f"v{version.number}", parent, version.request or version.summary, length, mark])
            names.append(f"v{version.number}")
        current = f"v{session.current}"
        previous = f"v{session.versions[session.current].parent}" if session.versions[session.current].parent is not None else current
        return (
            rows,
            gr.update(choices=names, value=previous),
            gr.update(choices=names, value=current),
            gr.update(choices=names, value=current),
        )

    def picture_view(self, key: str | None):
        """(the current version's picture, its section chips) of the session."""
        import gradio as gr

        session = self.sessions.get(key)
        if session is None:
            return None, gr.update(choices=[], value=None)
        number = session.current
        try:
            sections, beats, downbeats, audio = _timeline(session, number)
            path = session.out_dir / f"v{number}.png"
            if not path.exists():
                from ui.picture import draw_song

                title = f"v{number}: {session.versions[number].request or 'the original song'}"
                draw_song(audio, path, sections=sections, beats=beats, downbeats=downbeats, title=title[:90])
        except Exception:  # noqa: BLE001 - a missing picture must not break the page
            log.warning("no picture for v%s", number, exc_info=True)
            return None, gr.update(choices=[], value=None)
        names = list(dict.fromkeys(name for name, _, _ in sections))
        return str(path), gr.update(choices=names, value=None)

    def compare(self, key: str | None, a: str | None, b: str | None):
        """The two picked versions' audio, for A/B listening: (path A, path B, the A/B player)."""
        session = self.sessions.get(key)
        if session is None or not a or not b:
            return None, None, _ab_html(None, None, "", "")
        try:
            number_a, number_b = _version(session, a), _version(session, b)
            if number_a is None or number_b is None:
                return None, None, _ab_html(None, None, a, b)
            path_a, path_b = session.render_version(number_a), session.render_version(number_b)
            for number in {number_a, number_b}:
                session.record_use(number, "play", "A/B")
        except Exception:  # noqa: BLE001
            log.warning("A/B of %s and %s failed", a, b, exc_info=True)
            return None, None, _ab_html(None, None, a, b)
        return str(path_a), str(path_b), _ab_html(path_a, path_b, a, b)

    def _picked(self, key: str | None, name: str | None):
        """(session, version number) for a version picked by name ("v2"), or None."""
        session = self.sessions.get(key)
        number = _version(session, name) if session is not None else None
        return None if number is None else (session, number)

    def download(self, key: str | None, name: str | None, fmt: str):
        """The picked version as a file in ``fmt`` carrying its credits (tags and, for wav, flac and
        mp3, a signed C2PA manifest), with the manifest as JSON beside it."""
        from tools.errors import RemixError

        picked = self._picked(key, name)
        if picked is None:
            return None
        session, number = picked
        try:
            path = session.export(number, fmt)
        except RemixError:
            return None
        from tools.provenance import sidecar_path

        return [str(path), str(sidecar_path(path))]

    def download_stems(self, key: str | None, name: str | None):
        """The song's four stems, cut as the picked version arranges the song (its vocal styles on the vocals), as wav files."""
        from tools.audio import save
        from tools.errors import RemixError

        picked = self._picked(key, name)
        if picked is None:
            return None
        session, number = picked
        spec = session.versions[number].spec
        folder = session.out_dir / f"v{number}-stems"
        song = Path(session.source.path).stem if session.source.path else "song"
        paths = [folder / f"{song}-v{number}-{stem}.wav" for stem in ("vocals", "drums", "bass", "other")]
        if all(p.exists() for p in paths):
            return [str(p) for p in paths]
        try:
            stems = session.renderer.context(session.source).stems_for(spec)
            folder.mkdir(parents=True, exist_ok=True)
            for path, stem in zip(paths, ("vocals", "drums", "bass", "other")):
                save(stems[stem], path)
        except RemixError:
            return None
        return [str(p) for p in paths]


log = logging.getLogger(__name__)


def _md(text) -> str:
    """``text`` (a file name, an error naming one) safe to put in the chat's Markdown: control and
    invisible characters as escapes, no HTML, no Markdown links or emphasis."""
    import unicodedata
    from html import escape

    text = "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char)[0] == "C" and char != "\n" else char
        for char in str(text)
    )
    text = escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]()!#|~])", r"\\\1", text)


def _version(session, name) -> int | None:
    """The number of a version named like "v2", when the session has it; else None."""
    text = str(name or "").strip().lower().removeprefix("v")
    if not text.isdigit() or int(text) >= len(session.versions):
        return None
    return int(text)


def _plain(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _duration(session, number: int) -> float:
    import soundfile

    try:
        return soundfile.info(str(session.out_dir / f"v{number}.wav")).duration
    except Exception:  # noqa: BLE001
        return 0.0


_STAGE_WORDS = {
    "arrangement": "rearranging the song",
    "stem_mix": "separating and mixing the stems",
    "genre": "generating the new groove",
    "tempo_pitch": "changing tempo and pitch",
    "styles": "adding the style",
    "fades": "fading",
    "master": "mastering",
    "done": "done",
}


SLOW_COVER = (
    "_Singing it in a voice model's timbre runs a neural network over the whole vocal: "
    "it takes minutes on this computer. The progress bar shows the time left._"
)


def _sings_in_a_voice_model(calls) -> bool:
    """Whether a turn asks for a voice model (not a DSP preset): the one render that takes minutes."""
    from tools.calls import ToolCall, validate_call
    from tools.errors import RemixError
    from tools.voices import MODEL_PREFIX

    for call in calls:
        if call["tool"] != "revoice":
            continue
        try:
            args = validate_call(ToolCall.model_validate(call))  # the voice as the tool reads it
        except RemixError:
            continue
        if args.change != "remove" and args.voice.startswith(MODEL_PREFIX):
            return True
    return False


def _stage_words(stage: str) -> str:
    name, _, detail = stage.partition(": ")
    words = _STAGE_WORDS.get(name, name.replace("_", " "))
    return f"{words}: {detail}" if detail else words


def _is_voice_note(path) -> bool:
    """A microphone recording from the box (the browser names it audio.wav), not a song."""
    return Path(str(path)).name.lower() in ("audio.wav", "audio.webm", "recording.wav")


def _timeline(session, number: int):
    """Sections, beats and downbeats where they play in version ``number``, and its audio."""
    from tools.audio import load

    audio = load(session.render_version(number))
    # Not behind the whole renders' lock: the page's follow-up steps (and so the next message,
    # which waits for them) must not queue behind other listeners' renders.
    analysis = session.renderer.context(session.source).analysis_for(session.versions[number].spec)
    scale = audio.duration_s / analysis.duration_s if analysis.duration_s > 0 else 1.0
    sections = [(s.name, s.start * scale, s.end * scale) for s in analysis.sections]
    return sections, [t * scale for t in analysis.beats], [t * scale for t in analysis.downbeats], audio


def _ab_html(path_a, path_b, name_a: str, name_b: str) -> str:
    """Two players and two buttons: switching plays the other version from the same position."""
    from html import escape

    if path_a is None or path_b is None:
        return "<p class='ab-empty'>Pick two versions to compare.</p>"

    def source(path) -> str:
        from urllib.parse import quote

        return escape(f"/gradio_api/file={quote(str(path))}")

    return (
        "<div class='ab'>"
        f"<button id='ab-listen-a' data-ab='a' type='button'>Listen to A ({escape(name_a)})</button>"
        f"<button id='ab-listen-b' data-ab='b' type='button'>Listen to B ({escape(name_b)})</button>"
        f"<audio id='ab-audio-a' controls preload='auto' src='{source(path_a)}'></audio>"
        f"<audio id='ab-audio-b' controls preload='auto' src='{source(path_b)}'></audio>"
        "</div>"
    )


# Switching between A and B keeps the position; playing one pauses the other.
_AB_JS = """
let position = 0;
const players = () => [element.querySelector('#ab-audio-a'), element.querySelector('#ab-audio-b')];
element.addEventListener('timeupdate', (event) => { if (!event.target.paused) position = event.target.currentTime; }, true);
element.addEventListener('seeked', (event) => { position = event.target.currentTime; }, true);
element.addEventListener('play', (event) => {
  for (const other of players()) if (other && other !== event.target) other.pause();
}, true);
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-ab]');
  if (!button) return;
  const [a, b] = players();
  if (!a || !b) return;
  const [play, stop] = button.dataset.ab === 'a' ? [a, b] : [b, a];
  if (!stop.paused) position = stop.currentTime;
  stop.pause();
  const start = () => { play.currentTime = Math.min(position, play.duration || position); play.play(); };
  if (play.readyState >= 1) start(); else play.addEventListener('loadedmetadata', start, { once: true });
  for (const other of element.querySelectorAll('button[data-ab]')) other.classList.toggle('ab-on', other === button);
});
"""


def _audio_message(path, label: str) -> dict:
    import gradio as gr

    return {"role": "assistant", "content": gr.Audio(value=str(path), label=label, type="filepath")}


def _message_parts(message) -> tuple[str, list[str]]:
    """The text and the file paths of a multimodal box's value (or of a plain string)."""
    if isinstance(message, dict):
        files = [f if isinstance(f, str) else f.get("path", "") for f in message.get("files") or []]
        return (message.get("text") or "").strip(), [f for f in files if f]
    return (message or "").strip(), []


def build_app(settings, song: Path | None = None):
    """The Blocks app; per-browser-session state holds the loaded source."""
    import os

    # Offline by design: no usage reporting to outside hosts.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Uploads land in the data folder (not the system's temporary folder), which the page
    # may serve from and nothing else; they are only ever decoded.
    uploads = settings.data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    import gradio as gr

    backend = StudioBackend(settings)
    first_song = Path(song) if song else backend.default_song()

    chat = ChatBackend(settings, backend.renderer)
    # Analyse and render the first song now (cached from then on), so the page opens with it ready.
    chat.warm(first_song)

    # The conversation shown is kept server-side (``shown``, per tab) and only sent to the page:
    # the page, or an API client, never has to send it back.
    def send(key, message, shown, progress=gr.Progress()):
        # The box is cleared with the first step only: a later step (or the turn's completion)
        # must not wipe what the listener has typed since.
        first = True
        for key, history, cleared in chat.send_steps(key, message, shown, progress):
            yield key, history, cleared if first else gr.skip(), history
            first = False

    def press(key, shown, action):
        history = chat.button(key, action, shown)
        return history, history

    def open_page(request: gr.Request):
        query = dict(request.query_params) if request is not None else {}
        key, history = chat.open_page(first_song, query)
        return key, history, history

    open_page.__annotations__["request"] = gr.Request  # resolved here: gradio reads it to pass the request

    def chip(name, message):
        text, files = _message_parts(message)
        return None, {"text": f"{text} {name}".strip() if name else text, "files": files}

    with gr.Blocks(title="Remix assistant", analytics_enabled=False) as app:
        gr.Markdown("# Remix assistant\nSay what you want to hear. The demo song is ready; drop your own to change it.")
        with gr.Tab("Chat"):
            session_key = gr.State(None, delete_callback=chat.close)
            shown = gr.State([])
            with gr.Row():
                with gr.Column(scale=3):
                    history = gr.Chatbot(
                        label="Conversation", height=560, group_consecutive_messages=False, elem_id="chat"
                    )
                    box = gr.MultimodalTextbox(
                        placeholder="e.g. take the vocals out, then make it lo-fi (or record a voice note)",
                        file_types=["audio"],
                        sources=["upload", "microphone"],
                        show_label=False,
                        elem_id="box",
                    )
                    with gr.Column(elem_id="examples"):
                        gr.Examples(EXAMPLES, inputs=box, label="Try")
                    gr.Markdown("**Now playing**: sections and beats of the current version")
                    picture = gr.Image(type="filepath", interactive=False, show_label=False, elem_id="picture")
                    sections = gr.Radio(choices=[], label="Sections (click to add to your request)", elem_id="sections")
                with gr.Column(scale=2):
                    table = gr.Dataframe(
                        headers=["version", "from", "what changed", "length", ""],
                        label="Versions",
                        interactive=False,
                        elem_id="versions",
                    )
                    with gr.Row():
                        undo = gr.Button("Undo", elem_id="undo")
                        redo = gr.Button("Redo", elem_id="redo")
                    with gr.Row():
                        pick_a = gr.Dropdown(label="A", choices=[], elem_id="pick-a", allow_custom_value=True)
                        pick_b = gr.Dropdown(label="B", choices=[], elem_id="pick-b", allow_custom_value=True)
                    ab = gr.HTML(_ab_html(None, None, "", ""), js_on_load=_AB_JS, elem_id="ab")
                    play_a = gr.Audio(label="A", type="filepath", interactive=False, visible=False)
                    play_b = gr.Audio(label="B", type="filepath", interactive=False, visible=False)
                    with gr.Row():
                        pick_dl = gr.Dropdown(label="Download version", choices=[], elem_id="pick-dl", allow_custom_value=True)
                        fmt = gr.Radio(["mp3", "wav", "flac"], value="mp3", label="Format", elem_id="fmt")
                    with gr.Row():
                        get = gr.Button("Download the mix", elem_id="download")
                        get_stems = gr.Button("Download the stems", elem_id="download-stems")
                    files = gr.File(label="Files", file_count="multiple", elem_id="files")
            view = dict(fn=chat.versions_view, inputs=session_key, outputs=[table, pick_a, pick_b, pick_dl], api_name=False)
            look = dict(fn=chat.picture_view, inputs=session_key, outputs=[picture, sections], api_name=False)
            opened = app.load(open_page, outputs=[session_key, history, shown], api_name=False)
            opened.then(**view).then(**look)
            sent = box.submit(
                send,
                inputs=[session_key, box, shown],
                outputs=[session_key, history, box, shown],
                api_name="send",
                show_progress_on=history,  # the stages show over the chat, not over the box
                # A message sent while the last one's follow-up steps (versions, picture) still
                # run is sent when they finish, never dropped (Gradio's default drops it).
                trigger_mode="always_last",
            )
            sent.then(**view).then(**look)
            for button, action in ((undo, "undo"), (redo, "redo")):
                pressed = button.click(
                    lambda k, h, action=action: press(k, h, action),
                    inputs=[session_key, shown],
                    outputs=[history, shown],
                    api_name=action,
                )
                pressed.then(**view).then(**look)
            for picker, api_name in ((pick_a, False), (pick_b, "compare")):
                picker.change(
                    chat.compare, inputs=[session_key, pick_a, pick_b], outputs=[play_a, play_b, ab], api_name=api_name
                )
            sections.select(chip, inputs=[sections, box], outputs=[sections, box], api_name=False)
            get.click(chat.download, inputs=[session_key, pick_dl, fmt], outputs=files, api_name="download")
            get_stems.click(chat.download_stems, inputs=[session_key, pick_dl], outputs=files, api_name="download_stems")
        with gr.Tab("Mixer"):
            _mixer(gr, backend, first_song, app)
    return app


def _mixer(gr, backend, first_song, app) -> None:
    """Direct controls over the engine: stems, tempo, pitch, fades."""
    source_state = gr.State(None)
    with gr.Row():
        song_in = gr.Audio(label="Song", type="filepath", value=str(first_song), sources=["upload"])
        info = gr.Markdown()
    with gr.Row():
        tempo = gr.Slider(-50, 100, value=0, step=1, label="Tempo change (%)")
        pitch = gr.Slider(-12, 12, value=0, step=1, label="Pitch (semitones)")
        fade_in = gr.Slider(0, 20, value=0, step=0.5, label="Fade in (s)")
        fade_out = gr.Slider(0, 20, value=0, step=0.5, label="Fade out (s)")
    removed = gr.CheckboxGroup(["vocals", "drums", "bass", "other"], label="Take out")
    go = gr.Button("Render", variant="primary")
    out = gr.Audio(label="Remix", type="filepath", interactive=False)
    status = gr.Markdown()
    # The page's own controls; not part of the API (the chat's endpoints are).
    app.load(backend.open_song, inputs=song_in, outputs=[source_state, info], api_name=False)
    song_in.change(backend.open_song, inputs=song_in, outputs=[source_state, info], api_name=False)
    go.click(
        backend.render, inputs=[source_state, tempo, pitch, fade_in, fade_out, removed], outputs=[out, status], api_name=False
    )


def _patient_url_ok(url: str, deadline_s: float = 90.0) -> bool:
    """Whether the page answers, allowing for a machine busy separating stems or serving others.

    Gradio checks its own address once it is up and gives up after a few seconds, which on a
    loaded 2-core machine stops a studio that was about to work."""
    import time

    import httpx

    ends = time.monotonic() + deadline_s
    while time.monotonic() < ends:
        try:
            if httpx.head(url, timeout=15).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def launch(settings, host: str = "127.0.0.1", port: int = 7860, song: Path | None = None) -> int:
    from gradio import networking

    networking.url_ok = _patient_url_ok
    from assistant.store import Store

    removed = Store(settings.data_dir).clean(settings.retention_days)  # old audio only; recipes stay
    if removed:
        log.info("removed %d rendered files unused for %s days", len(removed), settings.retention_days)
    app = build_app(settings, song)
    # Up to 8 listeners' events run at once (planning, undo, A/B and downloads stay responsive);
    # renders inside them take turns on the renderer's lock, as each already uses every core.
    app.queue(default_concurrency_limit=8).launch(
        server_name=host, server_port=port, allowed_paths=[str(settings.data_dir)], footer_links=[]
    )
    return 0
