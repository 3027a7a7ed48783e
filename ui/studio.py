"""The studio page (Gradio). For now a one-page mixer over the engine: open a song (the demo
is ready), see its analysis, take stems out, set tempo, pitch and fades, render, listen and
download. The chat conversation builds on this page."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["StudioBackend", "build_app", "launch"]


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


def build_app(settings, song: Path | None = None):
    """The Blocks app; per-browser-session state holds the loaded source."""
    import os

    # Offline by design: no usage reporting to outside hosts.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    backend = StudioBackend(settings)
    first_song = Path(song) if song else backend.default_song()

    with gr.Blocks(title="Remix assistant", analytics_enabled=False) as app:
        gr.Markdown("# Remix assistant\nOpen a song, change it, listen. The demo song is ready.")
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
    return app


def launch(settings, host: str = "127.0.0.1", port: int = 7860, song: Path | None = None) -> int:
    app = build_app(settings, song)
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, allowed_paths=[str(settings.data_dir)], footer_links=[]
    )
    return 0
