"""The studio (Gradio): the chat where a listener talks about a song and hears each version,
and a mixer page with direct controls. The demo song is loaded and ready on first open."""

from __future__ import annotations

import json
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
            return None, f"Could not open that file: {error}"
        sections = ", ".join(f"{s.name} {s.start:.0f}-{s.end:.0f} s" for s in analysis.sections)
        loudness = "silent" if analysis.loudness_lufs is None else f"{analysis.loudness_lufs:.1f} LUFS"
        return source, (
            f"**{Path(path).name}**: {analysis.duration_s:.0f} s, {analysis.tempo:.1f} bpm, "
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
    plain-words assistant message, never an exception, and never loses the session.
    """

    def __init__(self, settings, renderer=None):
        from tools.render import Renderer

        self.settings = settings
        self.renderer = renderer or Renderer(settings)
        self.sessions: dict = {}

    def start(self, path) -> tuple[str | None, list]:
        """Open ``path``: a new session, and a first message describing the song with its audio."""
        import uuid

        from assistant.session import Session
        from tools.describe import describe
        from tools.errors import RemixError
        from tools.render import Source

        try:
            source = Source.from_path(path, self.settings)
            session = Session(source, self.settings, renderer=self.renderer)
            description = describe(session.analysis)
            original = session.render_version(0)
        except RemixError as error:
            return None, [{"role": "assistant", "content": f"I could not open that file: {error}"}]
        key = uuid.uuid4().hex
        self.sessions[key] = session
        intro = f"**{Path(path).name}** is ready. {description} Ask for the version you want to hear."
        return key, [{"role": "assistant", "content": intro}, _audio_message(original, "v0, the original")]

    def send(self, key: str | None, message, history: list) -> tuple[str | None, list, dict | None]:
        """One turn: (session key, the new history, the cleared input box)."""
        text, files = _message_parts(message)
        history = list(history or [])
        if files and not text:
            new_key, opened = self.start(files[0])
            return (new_key or key), history + [{"role": "user", "content": f"(opened {Path(files[0]).name})"}] + opened, None
        session = self.sessions.get(key)
        if session is None:
            return key, history + [{"role": "assistant", "content": "Open a song first (drop it in the box)."}], None
        if not text:
            return key, history, None
        turn = session.turn(text)
        history.append({"role": "user", "content": text})
        steps = "\n".join(f"{call['tool']} {json.dumps(call['args'])}" for call in turn.calls)
        if steps:
            history.append({"role": "assistant", "content": steps, "metadata": {"title": "tool steps"}})
        history.append({"role": "assistant", "content": turn.reply or "Done."})
        for note in turn.notes:
            history.append({"role": "assistant", "content": f"_{note}_"})
        if turn.audio_path is not None and any(call["tool"] != "describe" for call in turn.calls):
            label = turn.reply.split(". ")[0].rstrip(".") if turn.reply else session.versions[turn.version].summary
            history.append(_audio_message(turn.audio_path, f"v{turn.version}: {label}"))
        return key, history, None


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
            rows.append([f"v{version.number}", parent, version.request or version.summary, mark])
            names.append(f"v{version.number}")
        current = f"v{session.current}"
        previous = f"v{session.versions[session.current].parent}" if session.versions[session.current].parent is not None else current
        return (
            rows,
            gr.update(choices=names, value=previous),
            gr.update(choices=names, value=current),
            gr.update(choices=names, value=current),
        )

    def compare(self, key: str | None, a: str | None, b: str | None):
        """The two picked versions' audio, for A/B listening."""
        session = self.sessions.get(key)
        if session is None or not a or not b:
            return None, None
        return str(session.render_version(int(a[1:]))), str(session.render_version(int(b[1:])))

    def download(self, key: str | None, name: str | None, fmt: str):
        """The picked version as a file in ``fmt``, with its recipe and provenance beside it."""
        from tools.errors import RemixError

        session = self.sessions.get(key)
        if session is None or not name:
            return None
        number = int(name[1:])
        try:
            path = session.export(number, fmt)
        except RemixError:
            return None
        session.render_version(number)  # writes v<n>.json: the spec and the provenance
        return [str(path), str(session.out_dir / f"v{number}.json")]


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
    import gradio as gr

    backend = StudioBackend(settings)
    first_song = Path(song) if song else backend.default_song()

    chat = ChatBackend(settings, backend.renderer)
    # Analyse and render the first song now (cached from then on), so the page opens with it ready.
    warm_key, _ = chat.start(str(first_song))
    chat.sessions.pop(warm_key, None)
    with gr.Blocks(title="Remix assistant", analytics_enabled=False) as app:
        gr.Markdown("# Remix assistant\nSay what you want to hear. The demo song is ready; drop your own to change it.")
        with gr.Tab("Chat"):
            session_key = gr.State(None)
            with gr.Row():
                with gr.Column(scale=3):
                    history = gr.Chatbot(label="Conversation", height=560, group_consecutive_messages=False)
                    box = gr.MultimodalTextbox(
                        placeholder="e.g. take the vocals out, then make it lo-fi",
                        file_types=["audio"],
                        sources=["upload"],
                        show_label=False,
                    )
                    gr.Examples(EXAMPLES, inputs=box, label="Try")
                with gr.Column(scale=2):
                    table = gr.Dataframe(headers=["version", "from", "what changed", ""], label="Versions", interactive=False)
                    with gr.Row():
                        undo = gr.Button("Undo")
                        redo = gr.Button("Redo")
                    with gr.Row():
                        pick_a = gr.Dropdown(label="A", choices=[])
                        pick_b = gr.Dropdown(label="B", choices=[])
                    play_a = gr.Audio(label="A", type="filepath", interactive=False)
                    play_b = gr.Audio(label="B", type="filepath", interactive=False)
                    with gr.Row():
                        pick_dl = gr.Dropdown(label="Download version", choices=[])
                        fmt = gr.Radio(["mp3", "wav", "flac"], value="mp3", label="Format")
                    get = gr.Button("Download")
                    files = gr.File(label="Files", file_count="multiple")
            view = dict(fn=chat.versions_view, inputs=session_key, outputs=[table, pick_a, pick_b, pick_dl])
            app.load(lambda: chat.start(str(first_song)), outputs=[session_key, history]).then(**view)
            box.submit(chat.send, inputs=[session_key, box, history], outputs=[session_key, history, box]).then(**view)
            undo.click(lambda k, h: chat.button(k, "undo", h), inputs=[session_key, history], outputs=history).then(**view)
            redo.click(lambda k, h: chat.button(k, "redo", h), inputs=[session_key, history], outputs=history).then(**view)
            for picker in (pick_a, pick_b):
                picker.change(chat.compare, inputs=[session_key, pick_a, pick_b], outputs=[play_a, play_b])
            get.click(chat.download, inputs=[session_key, pick_dl, fmt], outputs=files)
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
    app.load(backend.open_song, inputs=song_in, outputs=[source_state, info])
    song_in.change(backend.open_song, inputs=song_in, outputs=[source_state, info])
    go.click(backend.render, inputs=[source_state, tempo, pitch, fade_in, fade_out, removed], outputs=[out, status])


def launch(settings, host: str = "127.0.0.1", port: int = 7860, song: Path | None = None) -> int:
    app = build_app(settings, song)
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, allowed_paths=[str(settings.data_dir)], footer_links=[]
    )
    return 0
