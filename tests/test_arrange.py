"""Rearrange: every operation on the demo song's known form and on real songs, measured splices, stems."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import media_files
from tools.arrange import RearrangeArgs, apply, arranged_analysis, describe_order
from tools.audio import Audio
from tools.calls import apply_calls
from tools.errors import ParameterError
from tools.render import Renderer, Source
from tools.settings import Settings
from tools.spec import Arrangement, MasterSettings, RemixSpec, StemSettings

SR = 44100


@pytest.fixture(scope="module")
def demo():
    from tools.demo import make_demo

    return make_demo()


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return Renderer(Settings(data_dir=tmp_path_factory.mktemp("arrange-data"), separator="dsp"), disk=False)


@pytest.fixture(scope="module")
def source(demo):
    return Source.from_audio(demo.mix)


@pytest.fixture(scope="module")
def analysis(renderer, source):
    return renderer.context(source).analysis


def edit(analysis, *calls) -> RemixSpec:
    return apply_calls([{"tool": "rearrange", "args": args} for args in calls], analysis=analysis).update(
        master=MasterSettings(enabled=False)
    )


def render(renderer, source, spec):
    return renderer.render(source, spec)


def seconds(analysis, name: str) -> float:
    section = analysis.find_section(name)
    return section.end - section.start


def test_the_demo_form_is_found(analysis):
    assert analysis.section_names() == [
        "intro", "verse 1", "chorus 1", "verse 2", "chorus 2", "bridge", "chorus 3", "outro"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args, change",
    [
        ({"action": "remove", "section": "verse 2"}, lambda a: -seconds(a, "verse 2")),
        ({"action": "remove", "section": "intro"}, lambda a: -seconds(a, "intro")),
        ({"action": "repeat", "section": "chorus", "times": 3}, lambda a: 2 * seconds(a, "chorus 1")),
        ({"action": "repeat", "section": "the last chorus"}, lambda a: seconds(a, "chorus 3")),
        ({"action": "move", "section": "bridge", "position": "start"}, lambda a: 0.0),
        ({"action": "keep_only", "section": "chorus"}, lambda a: sum(seconds(a, f"chorus {i}") for i in (1, 2, 3)) - a.duration_s),
    ],
)
def test_section_edits_add_up_exactly(renderer, source, analysis, args, change):
    spec = edit(analysis, args)
    result = render(renderer, source, spec)
    plan = renderer.context(source).plan(spec)
    assert result.audio.frames == plan.frames == sum(b - a for a, b in plan.spans)
    assert result.audio.duration_s == pytest.approx(analysis.duration_s + change(analysis), abs=0.35)


def test_section_edits_change_the_form(renderer, source, analysis):
    spec = edit(analysis, {"action": "remove", "section": "verse 2"}, {"action": "move", "section": "bridge", "position": "after:intro"})
    form = arranged_analysis(analysis, renderer.context(source).plan(spec))
    assert [s.label for s in form.sections] == ["intro", "bridge", "verse", "chorus", "chorus", "chorus", "outro"]
    assert form.sections[-1].end == pytest.approx(render(renderer, source, spec).audio.duration_s)
    assert describe_order(spec, analysis).startswith("intro, bridge, verse 1, chorus 1, chorus 2, chorus 3, outro (")
    keep = edit(analysis, {"action": "keep_only", "section": "chorus 2"})
    assert describe_order(keep, analysis).startswith("chorus 2 (")


def test_shorten_keeps_the_chorus_and_lands_on_the_length(renderer, source, analysis):
    for target in (30.0, 45.0, 15.0):
        spec = edit(analysis, {"action": "shorten", "seconds": target})
        audio = render(renderer, source, spec).audio
        assert abs(audio.duration_s - target) <= 1.0
        assert spec.arrangement.items[0].start == pytest.approx(analysis.find_section("chorus 1").start, abs=0.01)
        assert spec.arrangement.fade_out_s > 0  # ends with a fade


def test_shorten_from_the_end_or_the_start(renderer, source, analysis):
    """ "Cut 10 seconds off the end" keeps the beginning; "... off the start" keeps the ending, from a bar."""
    target = analysis.duration_s - 10.0
    end = edit(analysis, {"action": "shorten", "seconds": target, "position": "end"})
    (kept,) = end.arrangement.items
    assert kept.start == 0.0 and abs(kept.end - target) <= 1.0 and end.arrangement.fade_out_s > 0
    start = edit(analysis, {"action": "shorten", "seconds": target, "position": "start"})
    (kept,) = start.arrangement.items
    assert kept.end == pytest.approx(analysis.duration_s, abs=0.01) and abs(kept.end - kept.start - target) <= 1.0
    assert min(abs(kept.start - d) for d in analysis.downbeats) < 0.01 and start.arrangement.fade_out_s == 0
    assert abs(render(renderer, source, start).audio.duration_s - target) <= 1.0
    with pytest.raises(ParameterError, match="start or the end"):
        edit(analysis, {"action": "shorten", "seconds": 30, "position": "after:chorus"})


def test_shortening_a_changed_form_cuts_from_that_form(renderer, source, analysis):
    """After "skip the intro", "make it 20 seconds shorter" or "... off the end" keeps the intro out."""
    intro = analysis.find_section("intro")
    skipped = edit(analysis, {"action": "remove", "section": "intro"})
    length = analysis.duration_s - (intro.end - intro.start)
    for position in (None, "end", "start"):
        args = {"action": "shorten", "seconds": length - 20.0, **({"position": position} if position else {})}
        spec = apply_calls([{"tool": "rearrange", "args": args}], skipped, analysis=analysis)
        assert all(item.start >= intro.end - 1.0 for item in spec.arrangement.items), (position, spec.arrangement.items)
        assert abs(render(renderer, source, spec).audio.duration_s - (length - 20.0)) <= 1.0
    end = apply_calls([{"tool": "rearrange", "args": {"action": "shorten", "seconds": 30, "position": "end"}}], skipped, analysis=analysis)
    assert end.arrangement.items[0].start == pytest.approx(intro.end, abs=0.01)  # the version's own beginning


def test_extend_grows_the_form_musically(renderer, source, analysis):
    for target in (150.0, 300.0):
        spec = edit(analysis, {"action": "extend", "seconds": target})
        result = render(renderer, source, spec)
        assert abs(result.audio.duration_s - target) <= 1.0
        form = arranged_analysis(analysis, renderer.context(source).plan(spec))
        labels = [s.label for s in form.sections]
        assert labels[0] == "intro" and labels[-1] == "outro"
        assert labels.count("chorus") > 3 and labels.count("intro") == 1 and labels.count("outro") == 1


def test_fades_and_restore(analysis):
    spec = edit(analysis, {"action": "fade_in", "seconds": 2}, {"action": "fade_out"})
    assert (spec.arrangement.fade_in_s, spec.arrangement.fade_out_s) == (2.0, 4.0)
    spec = apply(spec, RearrangeArgs(action="remove", section="bridge"), analysis)
    assert apply(spec, RearrangeArgs(action="restore"), analysis).arrangement == Arrangement()


def test_a_missing_section_lists_the_ones_there_are(analysis):
    with pytest.raises(ParameterError, match=r"no section 'verse 9' in this song; the sections are: intro \(s0\), verse 1"):
        edit(analysis, {"action": "remove", "section": "verse 9"})
    spec = edit(analysis, {"action": "remove", "section": "bridge"})
    with pytest.raises(ParameterError, match="bridge is not in the current arrangement; it plays: intro, verse 1"):
        apply(spec, RearrangeArgs(action="repeat", section="bridge"), analysis)
    with pytest.raises(ParameterError, match="would leave nothing"):
        apply(apply(RemixSpec(), RearrangeArgs(action="keep_only", section="chorus 1"), analysis), RearrangeArgs(action="remove", section="chorus 1"), analysis)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"action": "remove"}, "needs a section"),
        ({"action": "shorten"}, "needs the length"),
        ({"action": "move", "section": "chorus"}, "needs a position"),
        ({"action": "move", "section": "chorus", "position": "sideways"}, "position"),
        ({"action": "explode", "section": "chorus"}, "action"),
    ],
)
def test_arguments_are_checked(analysis, args, message):
    with pytest.raises(ParameterError, match=message):
        edit(analysis, args)


def test_rearranging_needs_the_song():
    with pytest.raises(ParameterError, match="needs the song's analysis"):
        apply_calls([{"tool": "rearrange", "args": {"action": "remove", "section": "intro"}}])


def _highpass(x: np.ndarray, hz: float = 2000.0) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(4, hz, "highpass", fs=SR, output="sos"), x)


def test_splices_add_no_click(renderer, source, analysis):
    """Around every join the high band is no louder than the original music there."""
    spec = edit(
        analysis,
        {"action": "remove", "section": "verse 2"},
        {"action": "repeat", "section": "chorus 1", "times": 2},
        {"action": "move", "section": "bridge", "position": "start"},
    )
    out = _highpass(render(renderer, source, spec).audio.to_mono())
    original = _highpass(source.audio.to_mono())
    plan = renderer.context(source).plan(spec)
    assert len(plan.splices) >= 4
    w = int(0.004 * SR)
    for splice in plan.splices:
        at = splice.at
        joined = np.max(np.abs(out[at - 3 * w : at + 2 * w]))
        # The same moments in the original: the end of the outgoing span, the start of the incoming one.
        before = np.max(np.abs(original[max(0, splice.source_end - 3 * w) : splice.source_end + 2 * w]))
        after = np.max(np.abs(original[max(0, splice.source_start - 3 * w) : splice.source_start + 2 * w]))
        assert joined <= 1.1 * max(before, after) + 1e-4, (at / SR, joined, before, after)


def test_the_beat_runs_steadily_through_every_join(renderer, source, analysis):
    import librosa

    spec = edit(analysis, {"action": "remove", "section": "verse 2"}, {"action": "repeat", "section": "chorus 1", "times": 2})
    audio = render(renderer, source, spec).audio
    _, beats = librosa.beat.beat_track(y=audio.to_mono(), sr=SR, units="time", start_bpm=128.0)
    plan = renderer.context(source).plan(spec)
    period = 60.0 / 128.0
    for splice in plan.splices:
        t = splice.at / SR
        around = beats[(beats > t - 4 * period) & (beats < t + 4 * period)]
        assert len(around) >= 6
        assert np.all(np.abs(np.diff(around) - period) < 0.04 * period), (t, np.diff(around))


def test_stems_follow_the_edit(renderer, source, analysis):
    spec = edit(analysis, {"action": "remove", "section": "verse 1"}, {"action": "repeat", "section": "bridge"})
    context = renderer.context(source)
    stems = context.stems_for(spec)
    mix = render(renderer, source, spec).audio
    total = sum(stem.samples for stem in stems.values())
    assert np.max(np.abs(total - mix.samples)) < 1e-4
    karaoke = render(renderer, source, spec.update(stems={"vocals": StemSettings(mute=True)})).audio
    assert np.max(np.abs(karaoke.samples - (mix.samples - stems["vocals"].samples))) < 1e-4


def test_genre_after_rearranging_follows_the_new_form(renderer, source, analysis):
    import librosa

    spec = edit(analysis, {"action": "keep_only", "section": "chorus"}).update(
        genre=RemixSpec().genre.model_copy(update={"name": "house", "bpm": 124.0})
    )
    audio = render(renderer, source, spec).audio
    _, beats = librosa.beat.beat_track(y=audio.to_mono(), sr=SR, units="time")
    bpm = 60.0 / np.polyfit(np.arange(len(beats) - 2), beats[1:-1], 1)[0]
    assert abs(bpm - 124.0) < 1.0


def test_the_original_order_is_the_untouched_song(renderer, source, analysis):
    """Every section in its own order is the untouched song, sample for sample."""
    spec = RemixSpec(
        arrangement=Arrangement(items=tuple({"section": s.id} for s in analysis.sections)),
        master=MasterSettings(enabled=False),
    )
    assert np.array_equal(render(renderer, source, spec).audio.samples, source.audio.samples)


@pytest.mark.slow
@pytest.mark.parametrize("path", media_files("songs/*.flac"), ids=lambda p: p.stem)
def test_real_songs(renderer, path):
    song = Source.from_path(path)
    analysis = renderer.context(song).analysis
    for target in (20.0, 75.0):
        spec = edit(analysis, {"action": "shorten" if target < analysis.duration_s else "extend", "seconds": target})
        assert abs(render(renderer, song, spec).audio.duration_s - target) <= 1.0
    assert len(analysis.sections) > 1
    first, second, last = analysis.sections[0], analysis.sections[1], analysis.sections[-1]
    length = song.audio.duration_s
    for args, want in (
        ({"action": "remove", "section": second.name}, length - (second.end - second.start)),
        ({"action": "repeat", "section": first.name}, length + (first.end - first.start)),
        ({"action": "move", "section": last.name, "position": "start"}, length),
        ({"action": "keep_only", "section": second.name}, second.end - second.start),
    ):
        assert render(renderer, song, edit(analysis, args)).audio.duration_s == pytest.approx(want, abs=0.3), args


def _tone_song():
    """Four 4-second sections of different sustained chords at 120 bpm, and its analysis."""
    from tools.analyze import Analysis, Section

    chords = ((220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (164.8, 207.7, 246.9))
    # Each voice glides to its next note with a continuous phase, as played music does: the
    # song itself has no discontinuity anywhere.
    mono = np.zeros(16 * SR)
    for voice in range(3):
        freq = np.repeat([chord[voice] for chord in chords], 4 * SR)
        mono += 0.15 * np.sin(np.cumsum(2 * np.pi * freq / SR) + voice)
    mono = mono.astype(np.float32)
    beats = [0.5 * i for i in range(32)]
    labels = ("intro", "verse", "chorus", "outro")
    sections = [
        Section(id=f"s{i}", name=label, label=label, ordinal=1, start=4.0 * i, end=4.0 * (i + 1), energy=1.0)
        for i, label in enumerate(labels)
    ]
    analysis = Analysis(
        duration_s=16.0, sample_rate=SR, tempo=120.0, beats=beats, downbeats=beats[::4], beats_per_bar=4,
        sections=sections, key="A", mode="minor", key_confidence=0.5, loudness_lufs=-20.0,
    )  # fmt: skip
    return Audio(np.stack([mono, mono]), SR), analysis


def test_splices_between_different_chords_do_not_click():
    """Sustained tones have no energy above 3 kHz; a hard cut puts a click there, a proper splice does not."""
    from tools.arrange import build_plan

    audio, analysis = _tone_song()
    spec = edit(analysis, {"action": "move", "section": "outro", "position": "start"}, {"action": "remove", "section": "verse"})
    plan = build_plan(spec.arrangement, analysis, audio.samples, SR)
    assert len(plan.splices) == 2
    joined = _highpass(plan.apply(audio.samples).mean(axis=0), 3000.0)
    hard = _highpass(np.concatenate([audio.samples[:, a:b] for a, b in plan.spans], axis=1).mean(axis=0), 3000.0)
    body = float(np.sqrt(np.mean(audio.to_mono() ** 2)))
    w = int(0.01 * SR)
    for splice in plan.splices:
        window = slice(splice.at - 4 * w, splice.at + w)
        assert np.max(np.abs(hard[window])) > 0.01 * body  # the detector hears a hard cut
        assert np.max(np.abs(joined[window])) < 0.005 * body  # and no click in ours (hard cuts: 0.3-0.8)


def test_describe_reports_the_new_form(analysis):
    from tools.describe import describe

    plain = describe(analysis)
    assert "1:38 long, 128 bpm, in A minor" in plain and "Its form: intro, verse 1, chorus 1" in plain
    assert "Nothing is changed yet" in plain
    spec = edit(analysis, {"action": "remove", "section": "verse 2"}, {"action": "fade_out", "seconds": 3})
    spec = apply_calls([{"tool": "restyle", "args": {"style": "lofi", "amount": 0.4}}], spec)
    text = describe(analysis, spec)
    assert "The remix plays: intro, verse 1, chorus 1, chorus 2, bridge, chorus 3, outro (1:20.6)." in text
    assert "a 3 s fade-out" in text and "lofi 0.4" in text
