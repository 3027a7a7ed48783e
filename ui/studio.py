"""The studio page (Gradio). For now a one-page mixer over the engine: open a song (the demo
is ready), see its analysis, set tempo, pitch and fades, render, listen and download. The
chat conversation builds on this page."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["build_app", "launch"]


def _render_to_file(renderer, source, spec, folder: Path) -> tuple[Path, str]:
    from tools.audio import save
    from tools.loudness import integrated_lufs

    result = renderer.render(source, spec)
    path = folder / f"{result.key}.wav"
    if not path.exists():
        save(result.audio, path)
    steps = ", ".join(f"{run.name} ({run.status}, {run.seconds:.2f} s)" for run in result.stages if run.status != "skipped")
    return path, f"Rendered {result.audio.duration_s:.1f} s at {integrated_lufs(result.audio):.1f} LUFS. Stages: {steps}."


def build_app(settings, song: Path | None = None):
    """The Blocks app; per-browser-session state holds the loaded source."""
    import gradio as gr

    from tools.analyze import analyze_cached
    from tools.calls import apply_calls
    from tools.demo import demo_song_path
    from tools.errors import RemixError
    from tools.render import Renderer, Source

    renderer = Renderer(settings)
    renders = settings.data_dir / "renders"
    renders.mkdir(parents=True, exist_ok=True)
    default_song = Path(song) if song else demo_song_path(settings.data_dir)

    def describe(source) -> str:
        analysis = analyze_cached(source.audio, source.key, settings)
        sections = ", ".join(f"{s.name} {s.start:.0f}-{s.end:.0f} s" for s in analysis.sections)
        return (
            f"**{source.path.name if source.path else 'song'}**: {analysis.duration_s:.0f} s, "
            f"{analysis.tempo:.1f} bpm in {analysis.beats_per_bar}, {analysis.key} {analysis.mode}, "
            f"{analysis.loudness_lufs if analysis.loudness_lufs is not None else '-inf'} LUFS.\n\nSections: {sections}"
        )

    def open_song(path):
        if not path:
            return None, "Drop a song (wav, flac, mp3, ogg, m4a) to start."
        try:
            source = Source.from_path(path, settings)
            return source, describe(source)
        except RemixError as error:
            return None, f"Could not open that file: {error}"

    def do_render(source, tempo_pct, semitones, fade_in_s, fade_out_s):
        if source is None:
            return None, "Open a song first."
        calls = []
        if tempo_pct or semitones:
            args = {"tempo_pct": tempo_pct or None, "semitones": semitones or None}
            calls.append({"tool": "tempo_pitch", "args": {k: v for k, v in args.items() if v is not None}})
        try:
            spec = apply_calls(calls)
            spec = spec.update(arrangement=spec.arrangement.model_copy(update={"fade_in_s": fade_in_s, "fade_out_s": fade_out_s}))
            path, summary = _render_to_file(renderer, source, spec, renders)
            return str(path), summary + "\n\nSpec: `" + json.dumps(spec.model_dump(mode="json", exclude_defaults=True)) + "`"
        except RemixError as error:
            return None, f"That did not work: {error}"

    with gr.Blocks(title="Remix assistant") as app:
        gr.Markdown("# Remix assistant\nOpen a song, change it, listen. The demo song is ready.")
        source_state = gr.State(None)
        with gr.Row():
            song_in = gr.Audio(label="Song", type="filepath", value=str(default_song), sources=["upload"])
            info = gr.Markdown()
        with gr.Row():
            tempo = gr.Slider(-50, 100, value=0, step=1, label="Tempo change (%)")
            pitch = gr.Slider(-12, 12, value=0, step=1, label="Pitch (semitones)")
            fade_in = gr.Slider(0, 20, value=0, step=0.5, label="Fade in (s)")
            fade_out = gr.Slider(0, 20, value=0, step=0.5, label="Fade out (s)")
        go = gr.Button("Render", variant="primary")
        out = gr.Audio(label="Remix", type="filepath", interactive=False)
        status = gr.Markdown()
        app.load(open_song, inputs=song_in, outputs=[source_state, info])
        song_in.change(open_song, inputs=song_in, outputs=[source_state, info])
        go.click(do_render, inputs=[source_state, tempo, pitch, fade_in, fade_out], outputs=[out, status])
    return app


def launch(settings, host: str = "127.0.0.1", port: int = 7860, song: Path | None = None) -> int:
    app = build_app(settings, song)
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, allowed_paths=[str(settings.data_dir)], footer_links=[]
    )
    return 0
