"""The studio's picture of a version: size, section bands and labels, beat grid, edge cases,
atomic writing and drawing from several threads at once."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import sine
from tools.audio import Audio
from tools.errors import ParameterError
from ui import picture
from ui.picture import (
    HEIGHT_PX,
    PANELS,
    PLOT_LEFT_PX,
    PLOT_WIDTH_PX,
    WIDTH_PX,
    draw_song,
    format_time,
    layout_sections,
    spectrogram,
    thin_beats,
)

SR = 44100


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int32)


def _x(t: float, duration: float) -> int:
    return int(round(PLOT_LEFT_PX + t / duration * PLOT_WIDTH_PX))


def _middle_row(panel: str) -> int:
    top, bottom = PANELS[panel]
    return (top + bottom) // 2


def _noise(seconds: float, channels: int = 2, sample_rate: int = SR, level: float = 0.1) -> Audio:
    rng = np.random.default_rng(7)
    return Audio((rng.standard_normal((channels, int(seconds * sample_rate))) * level).astype(np.float32), sample_rate)


# --------------------------------------------------------------------------- the file


def test_png_has_the_expected_size_and_is_returned(tmp_path):
    target = tmp_path / "pictures" / "version.png"  # the folder does not exist yet
    out = draw_song(_noise(12.0), str(target), [("intro", 0, 4), ("verse 1", 4, 12)], title="A song")
    assert out == target and isinstance(out, Path)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH_PX, HEIGHT_PX)
    assert [p.name for p in target.parent.iterdir()] == ["version.png"]  # no temporary left behind


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n half a picture")
        raise OSError("disk full")

    target = tmp_path / "version.png"
    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        draw_song(_noise(2.0), target)
    assert list(tmp_path.iterdir()) == []

    target.write_bytes(b"the previous picture")
    with pytest.raises(OSError, match="disk full"):
        draw_song(_noise(2.0), target)
    assert target.read_bytes() == b"the previous picture"
    assert list(tmp_path.iterdir()) == [target]


def test_not_audio_is_refused(tmp_path):
    with pytest.raises(ParameterError):
        draw_song(np.zeros((2, 1000), np.float32), tmp_path / "x.png")
    with pytest.raises(ParameterError):
        draw_song(_noise(1.0), tmp_path / "x.png", sections=[("chorus", "soon")])
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- sections


def test_section_bands_are_drawn_where_the_layout_says_with_distinct_neighbours(tmp_path):
    duration = 30.0
    sections = [("verse 1", 0.0, 10.0), ("chorus 1", 10.0, 20.0), ("chorus 2", 20.0, 30.0)]
    pixels = _pixels(draw_song(_noise(duration), tmp_path / "p.png", sections))
    bands = layout_sections(sections, duration)
    row = PANELS["sections"][1] - 3  # below the label text
    seen = []
    for band in bands:
        x = int((band.x0_px + band.x1_px) / 2)
        colour = pixels[row, x]
        assert np.abs(colour - np.array(band.colour) * 255).max() <= 3, band.name
        seen.append(colour)
    for left, right in zip(seen, seen[1:]):
        assert np.abs(left - right).sum() > 30  # neighbours, even two choruses, differ in shade
    # Both choruses share a hue (the same kind) but not a tint.
    assert bands[1].colour != bands[2].colour
    hue = lambda c: np.argsort(c)[::-1].tolist()  # noqa: E731 - channel order, brightest first
    assert hue(np.array(bands[1].colour)) == hue(np.array(bands[2].colour))

    # The name is written at the start of its band: dark text pixels there, none at the end.
    text_row = slice(PANELS["sections"][0] + 3, PANELS["sections"][1] - 3)
    for band in bands:
        assert band.label == band.name
        start = pixels[text_row, int(band.label_x_px) : int(band.label_x_px + band.label_width_px)]
        end = pixels[text_row, int(band.x1_px - band.label_width_px - 4) : int(band.x1_px - 4)]
        assert (start.sum(axis=2) < 200).sum() > 20, band.name
        assert (end.sum(axis=2) < 200).sum() == 0, band.name


def test_section_boundaries_cross_the_spectrogram(tmp_path):
    duration = 20.0
    pixels = _pixels(draw_song(Audio(np.zeros((1, int(duration * SR)), np.float32), SR), tmp_path / "p.png",
                               [("intro", 0, 8), ("verse", 8, 20)]))
    rows = slice(PANELS["spectrogram"][0] + 5, PANELS["spectrogram"][0] + 40)
    boundary = pixels[rows, _x(8.0, duration) - 1 : _x(8.0, duration) + 2].max(axis=1).min(axis=1)
    assert boundary.min() > 200  # a white line over the (black, silent) spectrogram
    assert pixels[rows, _x(4.0, duration)].max() < 40


def test_layout_positions_are_linear_in_time_and_sorted_and_clipped():
    bands = layout_sections(
        [("outro", 50, 80), ("intro", -5, 10), ("gone", 70, 70), ("nan", float("nan"), 3), ("verse 1", 10, 50)],
        60.0,
        left_px=100,
        width_px=600,
        measure=lambda text: 6.0 * len(text),
    )
    assert [b.name for b in bands] == ["intro", "verse 1", "outro"]
    assert [(b.start_s, b.end_s) for b in bands] == [(0.0, 10.0), (10.0, 50.0), (50.0, 60.0)]
    assert [(b.x0_px, b.x1_px) for b in bands] == [(100.0, 200.0), (200.0, 600.0), (600.0, 700.0)]
    assert [b.shade for b in bands] == [0, 1, 0]
    assert all(b.label_x_px == b.x0_px + picture.LABEL_PAD_PX for b in bands)


def test_accepts_analysis_style_sections():
    section = SimpleNamespace(name="chorus 2", start=64.0, end=96.0, label="chorus")
    (band,) = layout_sections([section], 120.0)
    assert (band.name, band.start_s, band.end_s, band.label) == ("chorus 2", 64.0, 96.0, "chorus 2")


def test_labels_shorten_then_skip_and_never_overlap():
    per_char = 6.0
    pad = picture.LABEL_PAD_PX

    def room(chars: int) -> float:  # band width that fits exactly ``chars`` characters
        return chars * per_char + 2 * pad

    widths = [room(8), room(7), room(4), room(2), room(1), 200.0]
    names = ["chorus 1", "chorus 2", "chorus 3", "chorus 4", "chorus 5", "outro"]
    starts = np.concatenate([[0.0], np.cumsum(widths)])
    total = float(starts[-1])
    sections = [(name, float(a), float(b)) for name, a, b in zip(names, starts[:-1], starts[1:])]
    bands = layout_sections(sections, total, left_px=0, width_px=total, measure=lambda t: per_char * len(t))
    assert [b.label for b in bands] == ["chorus 1", "chor\u2026 2", "C3", "C4", "", "outro"]
    drawn = [b for b in bands if b.label]
    for band, following in zip(bands, bands[1:]):
        if band.label:
            assert band.label_x_px + band.label_width_px <= following.x0_px - pad + 1e-9
    assert all(b.label_width_px == per_char * len(b.label) for b in drawn)


def test_labels_on_a_real_three_minute_song_fit_their_bands():
    names = ["intro", "verse 1", "pre-chorus 1", "chorus 1", "break", "chorus 2", "bridge", "chorus 3", "outro"]
    bounds = [0, 8, 38, 42, 72, 73.5, 76, 110, 170, 180]
    bands = layout_sections(list(zip(names, bounds[:-1], bounds[1:])), 180.0)
    assert [b.label == b.name for b in bands] == [True, True, False, True, False, False, True, True, True]
    assert bands[2].label in ("", "PC1") or bands[2].label.endswith("\u2026 1")
    for band, following in zip(bands, bands[1:]):
        assert band.label_x_px + band.label_width_px <= following.x0_px


def test_labels_in_the_picture_do_not_overlap(tmp_path):
    # Many short sections: every drawn label ends before the next band starts, in pixels too.
    duration = 60.0
    sections = [(f"chorus {i + 1}", i * 2.0, i * 2.0 + 2.0) for i in range(30)]
    pixels = _pixels(draw_song(_noise(duration), tmp_path / "p.png", sections))
    text_rows = slice(PANELS["sections"][0] + 3, PANELS["sections"][1] - 3)
    for band in layout_sections(sections, duration):
        gap = pixels[text_rows, int(band.x1_px) - 2 : int(band.x1_px)]
        assert (gap.sum(axis=2) < 200).sum() == 0  # no text runs into the next band


# --------------------------------------------------------------------------- beat grid


def test_beats_thin_out_to_downbeats_when_dense():
    beats = np.arange(0.0, 180.0, 60.0 / 128)  # 2.97 px apart over 3 minutes
    downbeats = beats[::4]
    kept_beats, kept_downbeats = thin_beats(beats, downbeats, 180.0)
    assert kept_beats.size == 0
    np.testing.assert_allclose(kept_downbeats, downbeats)

    # Ten seconds of the same: beats 53 px apart stay, the ones on a downbeat drawn once.
    short_beats, short_down = beats[beats < 10.0], downbeats[downbeats < 10.0]
    kept_beats, kept_downbeats = thin_beats(short_beats, short_down, 10.0)
    np.testing.assert_allclose(kept_downbeats, short_down)
    np.testing.assert_allclose(kept_beats, np.setdiff1d(short_beats, short_down))


def test_dense_downbeats_and_beats_without_bars_are_thinned_to_readable_spacing():
    beats = np.arange(0.0, 3600.0, 0.5)  # an hour: bars 2 s apart are 0.6 px apart
    _, downbeats = thin_beats(beats, beats[::4], 3600.0)
    gaps_px = np.diff(downbeats) * PLOT_WIDTH_PX / 3600.0
    assert gaps_px.min() >= picture.MIN_BEAT_GAP_PX and gaps_px.min() < 2 * picture.MIN_BEAT_GAP_PX + 1e-9
    assert downbeats[0] == 0.0

    kept, none = thin_beats(beats[beats < 300], [], 300.0)
    assert none.size == 0
    gaps_px = np.diff(kept) * PLOT_WIDTH_PX / 300.0
    assert gaps_px.min() >= picture.MIN_BEAT_GAP_PX

    beats, downbeats = thin_beats([float("nan"), -1.0, 2.0, 99.0], [float("inf")], 10.0)
    assert beats.tolist() == [2.0] and downbeats.size == 0
    beats, downbeats = thin_beats(None, None, 10.0)
    assert beats.size == 0 and downbeats.size == 0


def _lit_line_columns(pixels: np.ndarray, row: int) -> int:
    """Runs of bright columns along one row of the (black) spectrogram of silence."""
    lit = pixels[row, PLOT_LEFT_PX : PLOT_LEFT_PX + PLOT_WIDTH_PX].max(axis=1) > 25
    return int(np.count_nonzero(lit[1:] & ~lit[:-1]) + lit[0])


def test_the_picture_shows_only_downbeats_when_beats_are_dense(tmp_path):
    duration = 60.0
    silence = Audio(np.zeros((2, int(duration * SR)), np.float32), SR)
    row = PANELS["spectrogram"][0] + 20  # clear of the "silence" note in the middle
    sparse = _pixels(draw_song(silence, tmp_path / "sparse.png", beats=np.arange(1.0, 60.0, 1.0),
                               downbeats=np.arange(1.0, 60.0, 4.0)))
    assert _lit_line_columns(sparse, row) == 59  # every beat, 19 px apart
    dense = _pixels(draw_song(silence, tmp_path / "dense.png", beats=np.arange(1.0, 60.0, 0.25),
                              downbeats=np.arange(1.0, 60.0, 1.0)))
    assert _lit_line_columns(dense, row) == 59  # 236 beats 4.75 px apart: only the 59 downbeats
    none = _pixels(draw_song(silence, tmp_path / "none.png"))
    assert _lit_line_columns(none, row) == 0


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(Audio(np.zeros((2, SR * 5), np.float32), SR), id="silence"),
        pytest.param(_noise(0.3), id="0.3 s"),
        pytest.param(Audio(np.full((1, 1), 0.5, np.float32), SR), id="one frame"),
        pytest.param(Audio(sine(440.0, 3.0, channels=1), SR), id="mono"),
        pytest.param(_noise(3.0, channels=6, sample_rate=48000), id="6 channels"),
        pytest.param(_noise(3.0, sample_rate=8000), id="8 kHz"),
        pytest.param(_noise(3.0, sample_rate=11025), id="11.025 kHz"),
        pytest.param(_noise(3.0, sample_rate=96000), id="96 kHz"),
        pytest.param(_noise(3.0, sample_rate=37_800), id="37.8 kHz"),
    ],
)
def test_awkward_audio_draws_a_full_size_picture(tmp_path, audio):
    out = draw_song(audio, tmp_path / "p.png", [("all of it", 0.0, audio.duration_s)], [0.0], [0.0], "edge")
    pixels = _pixels(out)
    assert pixels.shape == (HEIGHT_PX, WIDTH_PX, 3)
    spectrogram_panel = pixels[PANELS["spectrogram"][0] + 2 : PANELS["spectrogram"][1] - 2, PLOT_LEFT_PX + 3 : -20]
    if audio.samples.any():
        assert spectrogram_panel.max() > 150  # something bright: the sound is visible
    else:
        assert np.median(spectrogram_panel) < 20  # silence is dark, not noise scaled up


def test_spectrogram_of_silence_is_finite_and_at_the_floor():
    spec = spectrogram(Audio(np.zeros((2, SR * 2), np.float32), SR))
    assert np.isfinite(spec.db).all()
    assert spec.db.max() == pytest.approx(10 * np.log10(picture.POWER_FLOOR))


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 96000, 192000])
def test_a_sine_lights_its_own_band(sample_rate):
    audio = Audio(sine(1000.0, 2.0, sample_rate=sample_rate, amplitude=1.0), sample_rate)
    spec = spectrogram(audio)
    profile = spec.db.mean(axis=1)
    assert abs(int(np.argmax(profile)) + 0.5 - spec.band_position(1000.0)) <= 1.5
    assert -10.0 < profile.max() <= 1.0  # about 0 dB for a full-scale sine
    assert profile.max() - np.median(profile) > 40.0
    assert spec.fmax_hz == min(picture.FMAX_HZ, 0.475 * sample_rate)


def test_spectrogram_columns_stay_bounded():
    long = spectrogram(_noise(200.0, channels=1))
    assert 1000 <= long.db.shape[1] <= picture.MAX_COLUMNS
    assert long.db.shape[0] == picture.N_BANDS
    assert spectrogram(_noise(0.3)).db.shape[1] >= picture.MIN_COLUMNS


def test_long_titles_are_shortened_to_fit():
    title = "A very long title " * 12
    fitted = picture._fit_text(title, 500.0, picture.TITLE_PT, bold=True)
    assert fitted.endswith("\u2026") and title.startswith(fitted[:-1])
    assert picture._text_width_px(fitted, picture.TITLE_PT, True) <= 500.0
    assert picture._fit_text("short", 500.0, picture.TITLE_PT) == "short"


def test_time_labels_read_minutes_and_seconds():
    assert format_time(0) == "0:00"
    assert format_time(64.2) == "1:04"
    assert format_time(3725) == "1:02:05"
    assert format_time(0.3, step_s=0.1) == "0:00.3"
    assert picture._time_step(180.0) == 15.0
    assert picture._time_step(5.0) == 1.0
    assert picture._time_step(0.3) == 0.1


# --------------------------------------------------------------------------- threads


def test_sessions_can_draw_at_once_from_threads(tmp_path):
    songs = [_noise(4.0 + i, channels=1 + i % 2) for i in range(4)]
    args = [([(f"verse {i}", 0.0, 2.0), ("chorus", 2.0, 4.0 + i)], np.arange(0, 4, 0.5)) for i in range(4)]
    alone = [_pixels(draw_song(song, tmp_path / f"alone{i}.png", s, b, b[::4], f"song {i}"))
             for i, (song, (s, b)) in enumerate(zip(songs, args))]
    errors: list[BaseException] = []

    def draw(i: int) -> None:
        try:
            for _ in range(2):
                s, b = args[i]
                draw_song(songs[i], tmp_path / f"together{i}.png", s, b, b[::4], f"song {i}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i in range(4):
        np.testing.assert_array_equal(_pixels(tmp_path / f"together{i}.png"), alone[i])
