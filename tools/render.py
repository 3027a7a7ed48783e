"""``render(source, spec) -> audio``: a pure function of the source and the spec, in stages.

Stages run in a fixed order: arrangement, stem mix, genre, tempo/pitch, styles, fades, master.
Each stage reads only its own section of the spec. Its output is memoised on (its input's
key, its name and version, its section), so a change to one section re-runs only the stages
from that one on; a stage whose section is at its default passes its input (and its key)
straight through, costing nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .audio import Audio, load
from .cache import StageCache
from .master import master
from .settings import Settings, get_settings
from .analyze import ANALYSIS_VERSION
from .arrange import ARRANGE_VERSION
from .genre import GENRE_VERSION
from .spec import RemixSpec, section_key
from .styles import STYLES_VERSION
from .tempo_pitch import resolve_ratio, stretch

__all__ = [
    "Source", "Stage", "STAGES", "StageRun", "RenderResult", "Renderer", "render", "apply_fades",
    "PreviewUnavailable", "window_analysis",
]  # fmt: skip

ProgressFn = Callable[[str, int, int], None]


class PreviewUnavailable(Exception):
    """A preview window cannot be rendered quickly (it needs stems that are not separated yet)."""


@dataclass(frozen=True)
class Source:
    """A loaded song and its identity: ``key`` is a hash of the decoded samples and rate."""

    audio: Audio
    key: str
    path: Path | None = None

    @classmethod
    def from_audio(cls, audio: Audio, path: Path | None = None) -> "Source":
        digest = hashlib.sha256()
        digest.update(str(audio.sample_rate).encode())
        digest.update(str(audio.samples.shape).encode())
        digest.update(np.ascontiguousarray(audio.samples).data)
        return cls(audio=audio, key=digest.hexdigest()[:32], path=path)

    @classmethod
    def from_path(cls, path: str | Path, settings: Settings | None = None) -> "Source":
        return cls.from_audio(load(path, settings=settings), Path(path))


@dataclass
class RenderContext:
    """What a stage may read besides its input: the source, settings, analysis and stems (lazy)."""

    source: Source
    settings: Settings
    _analysis: Any = None
    _separator: Any = None
    _stems: Any = None
    _beats: Any = None
    _plans: dict = field(default_factory=dict)
    _arranged_stems: dict = field(default_factory=dict)
    _voiced: dict = field(default_factory=dict)
    _genre_backend: Any = None
    progress: Callable[[float, str], None] | None = None
    notes: list[str] = field(default_factory=list)
    separate_on_demand: bool = True  # False for previews: missing stems raise PreviewUnavailable
    _stems_lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def separator(self):
        if self._separator is None:
            from .separate import get_separator

            self._separator = get_separator(self.settings)
            if self._separator.note:
                self.notes.append(f"separator fell back to {self._separator.name}: {self._separator.note}")
        return self._separator

    def stems(self):
        """The source's four stems (a StemSet), separated once and cached on disk."""
        if self._stems is None:
            if not self.separate_on_demand:
                raise PreviewUnavailable("the stems are not separated yet")
            with self._stems_lock:  # one separation per source, also when asked from another thread
                if self._stems is None:
                    from .separate import separate_cached

                    self._stems = separate_cached(
                        self.source.audio, self.source.key, self.settings, self.separator, self.progress
                    )
            self.notes.append(f"stems by {self._stems.backend} ({self._stems.model_id}), {self._stems.source}")
        return self._stems

    def genre_backend(self):
        """``(backend, weights folder)`` for genre shifts, looked up once per render (see genre.genre_backend)."""
        if self._genre_backend is None:
            from .genre import genre_backend

            self._genre_backend = genre_backend(self.settings)
        return self._genre_backend

    @property
    def beats(self):
        """The analysis's beats moved onto the song's own attacks (what cuts and grooves lock to)."""
        if self._beats is None:
            import numpy as np

            from .genre import align_beats

            beats = np.asarray(self.analysis.beats, dtype=np.float64)
            self._beats = align_beats(self.source.audio.to_mono(), self.source.audio.sample_rate, beats)
        return self._beats

    def plan(self, spec: RemixSpec):
        """The edit plan of the spec's arrangement, or None for the original order."""
        if spec.arrangement.items is None:
            return None
        key = section_key(spec.arrangement.order_part())
        if key not in self._plans:
            from .arrange import build_plan

            audio = self.source.audio
            self._plans = {key: build_plan(spec.arrangement, self.analysis, audio.samples, audio.sample_rate, self.beats)}
        return self._plans[key]

    def analysis_for(self, spec: RemixSpec):
        """The analysis of the song as the spec arranges it (beats and sections where they now play)."""
        plan = self.plan(spec)
        if plan is None:
            return self.analysis
        from .arrange import arranged_analysis

        return arranged_analysis(self.analysis, plan)

    def voiced_stems(self, spec: RemixSpec) -> dict[str, Audio]:
        """The source's stems with the spec's vocal styles on the vocals (before any rearranging).

        Vocal styles work on the song as it was written, so "harmonies in the chorus" follows
        every chorus wherever the arrangement moves it; the result is kept for the last recipe.
        """
        stems = self.stems().stems
        voices = spec.effective_voices()
        if not voices:
            return stems
        from .voices import VOICES_VERSION, revoice

        key = section_key(VOICES_VERSION, {k: v.model_dump() for k, v in voices.items()})
        if key not in self._voiced:
            context = self.voice_context()
            vocals = revoice(stems["vocals"], voices, context)
            self._voiced = {key: ({**stems, "vocals": vocals}, tuple(context.notes))}
        voiced, notes = self._voiced[key]
        self.notes.extend(n for n in notes if n not in self.notes)
        return voiced

    def voice_context(self):
        """Key, scale, sections, tempo, seed and the pitch cache for the vocal styles."""
        from .voices import PITCH_CLASSES, VoiceContext

        analysis = self.analysis
        persistent = self.separate_on_demand  # previews (windows) keep nothing on disk
        return VoiceContext(
            key_pitch_class=PITCH_CLASSES.index(analysis.key),
            mode=analysis.mode,
            analysis=analysis,
            bpm=float(analysis.tempo) or None,
            seed=int(self.source.key[:8], 16),
            cache_key=f"{self.source.key}:{self.separator.model_id}" if persistent else None,
            cache_folder=self.settings.cache_dir / "pitch" if persistent else None,
            settings=self.settings,
            progress=self.progress,
        )

    def stems_for(self, spec: RemixSpec) -> dict[str, Audio]:
        """The source's stems (vocal styles applied), cut by the spec's arrangement when it has one."""
        stems = self.voiced_stems(spec)
        plan = self.plan(spec)
        if plan is None:
            return stems
        key = section_key(spec.arrangement.order_part(), {k: v.model_dump() for k, v in spec.effective_voices().items()})
        if key not in self._arranged_stems:
            self._arranged_stems = {
                key: {name: Audio.trusted(plan.apply(stem.samples), stem.sample_rate) for name, stem in stems.items()}
            }
        return self._arranged_stems[key]

    def style_context(self, spec: RemixSpec, after_tempo: bool):
        """Tempo, key and seed for the style presets, as the song stands at the styles stage."""
        from .styles import StyleContext

        analysis = self.analysis
        bpm = float(analysis.tempo) or None
        if after_tempo:
            if spec.genre.name and spec.genre.amount > 0:
                from .grooves import genre_style

                bpm = float(spec.genre.bpm or genre_style(spec.genre.name).bpm)
            bpm = bpm * resolve_ratio(spec.tempo, bpm) if bpm else None
        pitch_classes = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
        key = pitch_classes.index(analysis.key)
        if after_tempo:
            key = (key + int(round(spec.pitch.semitones))) % 12
        return StyleContext(bpm=bpm, key_pitch_class=key, seed=int(self.source.key[:8], 16))

    def section_finder(self, spec: RemixSpec, duration_s: float) -> Callable[[str], list[tuple[float, float]]]:
        """Where a named section plays in ``spec``'s version, timed for audio ``duration_s`` long.

        The sections are the arranged ones (a moved chorus is found where it now plays), scaled
        to the audio's length, which tempo changes and genre shifts stretch evenly. A section
        the version no longer has (cut since, or outside a preview's window) plays nowhere,
        with a note.
        """
        from .errors import ParameterError
        from .sections import section_spans

        def find(section: str) -> list[tuple[float, float]]:
            # Looked up only when a style is kept to a section: most renders never ask.
            analysis = self.analysis_for(spec)
            scale = duration_s / analysis.duration_s if analysis.duration_s > 0 else 1.0
            try:
                return [(start * scale, end * scale) for start, end in section_spans(section, analysis)]
            except ParameterError:
                if self.separate_on_demand:  # a whole render, not a preview window
                    self.notes.append(f"this version has no {section}, so the style kept to it is not heard")
                return []

        return find

    @property
    def analysis(self):
        if self._analysis is None:
            from .analyze import analyze_cached

            self._analysis = analyze_cached(self.source.audio, self.source.key, self.settings)
        return self._analysis


@dataclass(frozen=True)
class Stage:
    """One render stage.

    Attributes:
        name: stable id, part of every cache key.
        version: bump when the stage's output changes for the same input and section.
        section: the part of the spec the stage reads, as JSON-able data.
        is_identity: true when that section asks for nothing (the stage is skipped).
        run: ``(audio, spec, context) -> audio``.
        persist: keep outputs on disk as well as in memory (worth it for slow stages).
        context_key: what else the output depends on (e.g. the separator's model id).
        credits: the models and licences the stage's output carries, for the render's
            provenance (listed whether the output was computed or came from the cache).
    """

    name: str
    version: int
    section: Callable[[RemixSpec], Any]
    is_identity: Callable[[RemixSpec], bool]
    run: Callable[[Audio, RemixSpec, RenderContext], Audio]
    persist: bool = True
    context_key: Callable[[RenderContext], Any] | None = None
    credits: Callable[[RemixSpec, RenderContext], list[str]] | None = None


def _run_stem_mix(audio: Audio, spec: RemixSpec, context: RenderContext) -> Audio:
    """Stem levels, and the styles aimed at single stems, applied before the stems are summed."""
    from .separate import mix_stems
    from .styles import apply_styles, stem_styles

    stems = dict(context.stems_for(spec))
    targeted = stem_styles(spec)
    if targeted:
        duration_s = max(stem.duration_s for stem in stems.values())
        style_context = replace(
            context.style_context(spec, after_tempo=False),
            keep_length=True,
            sections=context.section_finder(spec, duration_s),
        )
        for name in sorted({s.target for s in targeted.values()}):
            chosen = {k: v for k, v in targeted.items() if v.target == name}
            stems[name] = apply_styles(stems[name], chosen, style_context)
        channels = max(stem.channels for stem in stems.values())
        stems = {k: v.to_channels(channels) if v.channels != channels else v for k, v in stems.items()}
    return mix_stems(stems, spec.stems)


def _run_arrangement(audio: Audio, spec: RemixSpec, context: RenderContext) -> Audio:
    plan = context.plan(spec)
    return Audio.trusted(plan.apply(audio.samples), audio.sample_rate)


def _run_genre(audio: Audio, spec: RemixSpec, context: RenderContext) -> Audio:
    from .genre import run_genre

    return run_genre(audio, spec, context)


def _genre_context(context: RenderContext):
    backend, folder = context.genre_backend()
    return [context.separator.model_id, backend if folder is None else f"{backend}:{folder.name}"]


def _stem_credits(spec: RemixSpec, context: RenderContext) -> list[str]:
    credits = [f"stems separated by {context.separator.name} ({context.separator.model_id})"]
    voices = spec.effective_voices()
    if voices:
        from .voices import MODEL_PREFIX

        if any(not k.startswith(MODEL_PREFIX) for k in voices):
            credits.append("vocal styles by the remix engine: Praat pitch tracking and PSOLA resynthesis (parselmouth)")
        for key in voices:
            if key.startswith(MODEL_PREFIX):
                credits.append(_voice_model_credit(key[len(MODEL_PREFIX) :], context))
    return credits


def _voice_model_credit(name: str, context: RenderContext) -> str:
    from .voice_models import voice_model_info

    try:
        info = voice_model_info(name, context.settings)
    except Exception as error:  # noqa: BLE001 - the render itself says what is wrong
        return f"voice model {name} (not available: {error})"
    return f"voice model {info.name} ({info.version}, sha256 {info.sha256[:12]}); licence: {info.licence}"


def _genre_credits(spec: RemixSpec, context: RenderContext) -> list[str]:
    backend, folder = context.genre_backend()
    if backend == "musicgen":
        from .generators.musicgen import MUSICGEN_LICENCE

        return _stem_credits(spec, context) + [
            f"accompaniment regenerated by MusicGen melody ({folder.name}); {MUSICGEN_LICENCE}"
        ]
    return _stem_credits(spec, context) + [f"{spec.genre.name} groove synthesised by the remix engine (no samples)"]


def _run_tempo_pitch(audio: Audio, spec: RemixSpec, context: RenderContext) -> Audio:
    source_bpm = None
    if spec.tempo.bpm is not None:
        source_bpm = context.analysis.tempo
        if spec.genre.name and spec.genre.amount > 0:
            from .grooves import genre_style

            source_bpm = float(spec.genre.bpm or genre_style(spec.genre.name).bpm)
    return stretch(audio, resolve_ratio(spec.tempo, source_bpm), spec.pitch.semitones)


def _run_styles(audio: Audio, spec: RemixSpec, context: RenderContext) -> Audio:
    from .styles import apply_styles, mix_styles

    style_context = replace(context.style_context(spec, after_tempo=True), sections=context.section_finder(spec, audio.duration_s))
    return apply_styles(audio, mix_styles(spec), style_context)


def apply_fades(audio: Audio, fade_in_s: float, fade_out_s: float) -> Audio:
    """Equal-power (quarter-sine) fade in and fade out; fades longer than the audio are clamped."""
    samples = np.array(audio.samples)
    frames = audio.frames
    for seconds, at_start in ((fade_in_s, True), (fade_out_s, False)):
        length = min(frames, int(round(seconds * audio.sample_rate)))
        if length <= 0:
            continue
        ramp = np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length).astype(np.float32)
        if at_start:
            samples[:, :length] *= ramp
        else:
            samples[:, frames - length :] *= ramp[::-1]
    return audio.replace(samples)


def _is_default(getter: Callable[[RemixSpec], Any]) -> Callable[[RemixSpec], bool]:
    default = getter(RemixSpec())
    return lambda spec: getter(spec) == default


_ORDER = lambda spec: spec.arrangement.order_part()  # noqa: E731
def _STEMS(spec: RemixSpec) -> dict:
    section = {
        "stems": {k: v.model_dump() for k, v in sorted(spec.effective_stems().items())},
        "styles": {k: v.model_dump(exclude_none=True) for k, v in spec.effective_styles().items() if v.target != "mix"},
    }
    voices = spec.effective_voices()
    if voices:
        from .voices import VOICES_VERSION

        section["voices"] = {"version": VOICES_VERSION, **{k: v.model_dump() for k, v in voices.items()}}
    return section


_GENRE = lambda spec: spec.genre.model_dump() if spec.genre.name and spec.genre.amount > 0 else None  # noqa: E731
_TEMPO = lambda spec: {"tempo": spec.tempo.model_dump(), "pitch": spec.pitch.model_dump()}  # noqa: E731
# exclude_none: a style on the whole song keeps the key it had before styles could take a section
_STYLES = lambda spec: {k: v.model_dump(exclude_none=True) for k, v in spec.effective_styles().items() if v.target == "mix"}  # noqa: E731
_FADES = lambda spec: spec.arrangement.fades_part()  # noqa: E731
_MASTER = lambda spec: spec.master.model_dump()  # noqa: E731

STAGES: tuple[Stage, ...] = (
    Stage(
        "arrangement",
        ARRANGE_VERSION,
        _ORDER,
        _is_default(_ORDER),
        _run_arrangement,
        persist=False,
        context_key=lambda ctx: ANALYSIS_VERSION,
    ),
    Stage(
        "stem_mix",
        2,
        _STEMS,
        _is_default(_STEMS),
        _run_stem_mix,
        context_key=lambda ctx: ctx.separator.model_id,
        credits=_stem_credits,
    ),
    Stage(
        "genre",
        GENRE_VERSION,
        _GENRE,
        _is_default(_GENRE),
        _run_genre,
        context_key=_genre_context,
        credits=_genre_credits,
    ),
    Stage("tempo_pitch", 1, _TEMPO, _is_default(_TEMPO), _run_tempo_pitch),
    Stage("styles", STYLES_VERSION, _STYLES, _is_default(_STYLES), _run_styles),
    Stage(
        "fades",
        1,
        _FADES,
        _is_default(_FADES),
        lambda audio, spec, ctx: apply_fades(audio, spec.arrangement.fade_in_s, spec.arrangement.fade_out_s),
        persist=False,
    ),
    Stage("master", 1, _MASTER, lambda spec: not spec.master.enabled, lambda a, spec, ctx: master(a, spec.master)),
)


@dataclass(frozen=True)
class StageRun:
    """How one stage went: ``status`` is skipped, memory, disk or computed."""

    name: str
    key: str
    status: str
    seconds: float


@dataclass(frozen=True)
class RenderResult:
    audio: Audio
    key: str
    stages: tuple[StageRun, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()  # models and licences the audio carries (see Stage.credits)

    @property
    def seconds(self) -> float:
        return sum(run.seconds for run in self.stages)


class Renderer:
    """Renders specs against sources, memoising every stage.

    One renderer per process (or per studio) keeps hot stage outputs in memory; outputs of
    slow stages also go to ``settings.cache_dir/"stages"`` so that a later process finds them.
    """

    def __init__(self, settings: Settings | None = None, memory_mb: float = 384.0, disk: bool = True):
        self.settings = settings or get_settings()
        folder = self.settings.cache_dir / "stages" if disk else None
        self.cache = StageCache(folder, memory_mb=memory_mb, disk_mb=self.settings.stage_cache_mb)
        self._preview_cache = StageCache(None, memory_mb=64.0, disk_mb=0.0)
        self._contexts: dict[str, RenderContext] = {}
        self._lock = threading.RLock()  # whole renders, one at a time
        self._contexts_lock = threading.RLock()
        self._preview_lock = threading.Lock()  # previews, one at a time, beside a whole render

    def context(self, source: Source) -> RenderContext:
        """The source's context (analysis, stems, plans); the last few sources' are kept."""
        with self._contexts_lock:
            context = self._contexts.pop(source.key, None)
            if context is None:
                context = RenderContext(source=source, settings=self.settings)
            self._contexts[source.key] = context  # most recent last
            while len(self._contexts) > 3:
                self._contexts.pop(next(iter(self._contexts)))
            return context

    def render(self, source: Source, spec: RemixSpec, progress: ProgressFn | None = None) -> RenderResult:
        """Run every stage of ``spec`` over ``source`` and return the final audio and a trace.

        Renders run one at a time (they share the contexts and caches, and each already uses
        the machine's cores); ``progress(stage name, index, count)`` reports each stage.
        """
        with self._lock:
            context = self.context(source)
            context.notes.clear()
            context._genre_backend = None  # weights may have been added since the last render
            context.progress = None
            if progress is not None:
                context.progress = lambda fraction, message: progress(f"stem_mix: {message} {fraction:.0%}", 1, len(STAGES))
            return self._run(context, spec, self.cache, progress)

    def preview(self, source: Source, spec: RemixSpec, start_s: float, seconds: float) -> RenderResult | None:
        """``spec`` over a window of ``seconds`` from ``start_s`` of the song, for a first listen.

        The window is rendered like the whole song (same stages, same analysis, the cached
        stems cut to the window) but kept only in a small memory cache. Returns None when a
        window cannot stand for the result or cannot be quick: a rearranged song (the window
        would be in another place), a genre shift through a learned generator or a cover
        through a learned voice model. Stems not
        separated yet are separated for the window alone. Fades are left out (they belong to
        the song's ends).
        """
        if spec.arrangement.items is not None:
            return None
        # Not behind the whole renders' lock: a listener hears a change while others' songs render.
        with self._preview_lock:
            context = self.context(source)
            audio = source.audio
            rate = audio.sample_rate
            first = max(0, min(int(round(start_s * rate)), audio.frames - 1))
            last = min(audio.frames, first + max(1, int(round(seconds * rate))))
            if spec.genre.name and spec.genre.amount > 0 and context.genre_backend()[0] != "dsp":
                return None
            if any(name.startswith("model:") for name in spec.effective_voices()):
                return None  # a learned voice model is not quick on a CPU: the whole song comes at once
            window = Source(Audio.trusted(audio.samples[:, first:last], rate), key=f"{source.key}-w{first}-{last}")
            start, end = first / rate, last / rate
            window_context = RenderContext(
                source=window,
                settings=self.settings,
                _analysis=window_analysis(context.analysis, start, end),
                _separator=context._separator,
                _genre_backend=context.genre_backend(),
                separate_on_demand=False,
            )
            stems = context._stems
            if stems is None:
                from .separate import cached_stems

                stems = cached_stems(audio, source.key, self.settings, context.separator)
            if stems is not None:
                from .separate import StemSet

                cut = {name: Audio.trusted(stem.samples[:, first:last], stem.sample_rate) for name, stem in stems.stems.items()}
                window_context._stems = StemSet(cut, stems.backend, stems.model_id, stems.source)
            unfaded = spec.update(arrangement=spec.arrangement.model_copy(update={"fade_in_s": 0.0, "fade_out_s": 0.0}))
            try:
                result = self._run(window_context, unfaded, self._preview_cache, None)
            except PreviewUnavailable:
                # The song is not separated yet: separate just the window (seconds, not minutes).
                from .separate import separate_in_memory

                window_context._stems = separate_in_memory(window.audio, context.separator)
                result = self._run(window_context, unfaded, self._preview_cache, None)
        edges = apply_fades(result.audio, min(0.02, result.audio.duration_s / 4), min(0.25, result.audio.duration_s / 4))
        return replace(result, audio=edges)

    def _run(self, context: RenderContext, spec: RemixSpec, cache: StageCache, progress: ProgressFn | None) -> RenderResult:
        source = context.source
        audio, key = source.audio, source.key
        runs: list[StageRun] = []
        credits: list[str] = []
        for index, stage in enumerate(STAGES):
            if progress is not None:
                progress(stage.name, index, len(STAGES))
            started = time.perf_counter()
            if stage.is_identity(spec):
                runs.append(StageRun(stage.name, key, "skipped", 0.0))
                continue
            extra = stage.context_key(context) if stage.context_key is not None else None
            key = section_key(key, stage.name, stage.version, stage.section(spec), extra)
            if stage.credits is not None:
                credits.extend(c for c in stage.credits(spec, context) if c not in credits)
            cached, where = cache.get(key)
            if cached is not None:
                audio = cached
            else:
                audio = stage.run(audio, spec, context)
                cache.put(key, audio, persist=stage.persist)
                where = "computed"
            runs.append(StageRun(stage.name, key, where, time.perf_counter() - started))
        if progress is not None:
            progress("done", len(STAGES), len(STAGES))
        return RenderResult(
            audio=audio, key=key, stages=tuple(runs), notes=tuple(context.notes), provenance=tuple(credits)
        )


def window_analysis(analysis, start_s: float, end_s: float):
    """``analysis`` as seen from a window ``start_s..end_s`` of the song (times from the window's start)."""

    def inside(times):
        return [t - start_s for t in times if start_s <= t < end_s]

    sections = [
        section.model_copy(update={"start": max(section.start, start_s) - start_s, "end": min(section.end, end_s) - start_s})
        for section in analysis.sections
        if section.end > start_s and section.start < end_s
    ]
    return analysis.model_copy(
        update={
            "duration_s": end_s - start_s,
            "beats": inside(analysis.beats),
            "downbeats": inside(analysis.downbeats),
            "sections": sections,
        }
    )


def render(source: Source | Audio, spec: RemixSpec | None = None, settings: Settings | None = None) -> Audio:
    """Render ``spec`` (default: the untouched song, mastered) over ``source``, without a disk cache."""
    if isinstance(source, Audio):
        source = Source.from_audio(source)
    return Renderer(settings, disk=False).render(source, spec or RemixSpec()).audio
