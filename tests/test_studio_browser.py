"""The studio in a real browser: every point of the chat page, as a listener uses it.

One studio (``remix studio``, its own data folder, offline planner, signal-processing
separator) serves the whole file; each test is a new listener (a fresh browser context) on
it, so the tests do not depend on each other. Chromium gets a fake microphone that speaks
``tests/data/voice_note_slower.wav`` ("make it ten percent slower") once.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.register_assert_rewrite("browser_support")

from browser_support import (  # noqa: E402
    RENDER_TIMEOUT_MS,
    VOICE_NOTE_TEXT,
    audio_players,
    bot_messages,
    browser_missing,
    chat_text,
    choose,
    drop,
    current_version,
    played_media,
    snapshot,
    table_rows,
    textarea,
    tool_steps,
    upload,
    user_messages,
    wait_for,
    write_song,
)

pytest_plugins = ["browser_support"]

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=f"browser tests: {browser_missing()}")

try:
    from playwright.sync_api import expect
except ImportError:  # the module is skipped then
    expect = None


def no_traceback(page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and 'File "' not in body, body[-2000:]
    assert page.locator(".toast-body.error").count() == 0, page.locator(".toast-body").all_inner_texts()


def version_rows(page, count: int | None = None) -> list[list[str]]:
    """The versions table; with ``count``, once it has that many rows (it follows each answer)."""
    if count is None:
        return table_rows(page, "#versions")
    return wait_for(lambda: rows if len(rows := table_rows(page, "#versions")) == count else None, message=f"{count} versions")


def ask(page, text: str, version: str) -> None:
    """Send ``text`` and wait for the new version's player (``v1: ...``) in the chat."""
    before = audio_players(page, f"{version}:").count()
    textarea(page).fill(text)
    textarea(page).press("Enter")
    expect(audio_players(page, f"{version}:")).to_have_count(before + 1, timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#versions")).to_contain_text(version, timeout=RENDER_TIMEOUT_MS)
    wait_for(lambda: current_version(page) == version, message=f"the versions table to mark {version} now")


def fetch(page, href: str) -> bytes:
    answer = page.request.get(href)
    assert answer.ok, f"{href}: {answer.status}"
    return answer.body()


def listed_files(page) -> dict[str, str]:
    """The files shown in #files: name -> download address."""
    links = page.locator("#files a[href]")
    found = {}
    for i in range(links.count()):
        link = links.nth(i)
        href = link.get_attribute("href")
        name = link.get_attribute("download") or href.rsplit("/", 1)[-1]
        found[name.rsplit("/", 1)[-1]] = href
    return found


@pytest.fixture(scope="module")
def small_song(tmp_path_factory):
    """An 8 s song (clicks at 120 bpm over changing chords) to drop into the box."""
    return write_song(tmp_path_factory.mktemp("songs") / "song.wav", seconds=8.0)


# 1 -----------------------------------------------------------------------------------------


def test_the_demo_song_is_ready_on_first_open(open_studio, tmp_path):
    from ui.studio import EXAMPLES

    page = open_studio()
    first = bot_messages(page).first
    expect(first).to_contain_text("mix.wav")
    expect(first).to_contain_text("is ready")
    expect(first).to_contain_text("bpm")
    expect(first).to_contain_text("chorus")
    player = audio_players(page, "v0")
    expect(player).to_have_attribute("aria-label", "v0, the original")
    expect(player.get_by_role("button", name="Play")).to_be_visible()
    examples = page.locator("#examples")
    expect(examples).to_be_visible()
    for example in EXAMPLES:
        expect(examples.get_by_text(example, exact=True)).to_be_visible()
    rows = version_rows(page, 1)
    assert rows[0][0] == "v0" and rows[0][-1] == "now", rows
    # An example fills the box (it does not send).
    examples.get_by_text("make it more lo-fi", exact=True).click()
    expect(textarea(page)).to_have_value("make it more lo-fi")
    assert user_messages(page).count() == 0
    no_traceback(page)
    snapshot(page, tmp_path / "first-open.png", page.locator("#chat"), page.locator("#examples"), page.locator("#versions"))


# 2 -----------------------------------------------------------------------------------------


def test_a_song_dropped_into_the_box_opens_with_its_description(open_studio, small_song, tmp_path):
    page = open_studio()
    upload(page, small_song)
    expect(user_messages(page).last).to_contain_text("song.wav")
    described = bot_messages(page).filter(has_text="song.wav")
    expect(described).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(described).to_contain_text("is ready")
    expect(described).to_contain_text("bpm")
    expect(audio_players(page, "v0")).to_have_count(2)  # the demo's, then the new song's
    # The versions table is the new song's: one original, marked now.
    wait_for(lambda: len(version_rows(page)) == 1 and current_version(page) == "v0", message="a fresh versions table")
    no_traceback(page)
    snapshot(page, tmp_path / "uploaded.png", described)


# 3 -----------------------------------------------------------------------------------------


def test_a_request_comes_back_with_tool_steps_a_reply_and_audio_that_plays(open_studio, tmp_path):
    page = open_studio()
    ask(page, "make it more lo-fi", "v1")
    expect(user_messages(page).last).to_have_text("make it more lo-fi")
    expect(bot_messages(page).filter(has_text=re.compile("lo-fi", re.I)).last).to_be_visible()
    # The versions table gains the new version, made from v0, and plays it now.
    rows = version_rows(page, 2)
    assert [row[0] for row in rows] == ["v0", "v1"], rows
    assert rows[1][1] == "v0" and "lo-fi" in rows[1][2] and rows[1][-1] == "now", rows
    # The reply's player plays.
    player = audio_players(page, "v1:")
    player.get_by_role("button", name="Play").click()
    expect(player.get_by_role("button", name="Pause")).to_be_visible()
    media = wait_for(
        lambda: [m for m in played_media(page) if not m["paused"] and m["time"] > 0.5],
        message="the reply's audio to play",
    )
    assert media
    snapshot(page, tmp_path / "reply.png", player, page.locator("#versions"))
    player.get_by_role("button", name="Pause").click()
    no_traceback(page)
    # The tool steps: one collapsed block titled "tool steps" that opens on the tool and its arguments.
    steps = tool_steps(page)
    expect(steps).to_have_count(1)
    title = steps.locator(".title")
    expect(title).to_contain_text("tool steps")
    expect(title).not_to_have_class(re.compile(r"\bexpanded\b"))
    expect(steps.get_by_text("restyle")).to_have_count(0)  # collapsed: the steps are not shown
    title.click()
    expect(steps).to_contain_text("restyle")
    expect(steps).to_contain_text("lofi")


# 4 -----------------------------------------------------------------------------------------


def test_a_voice_note_from_the_microphone_is_heard_and_answered(open_studio, small_song, tmp_path):
    from rapidfuzz import fuzz

    page = open_studio()
    upload(page, small_song)  # a short song: the reply renders quickly
    expect(bot_messages(page).filter(has_text="song.wav")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    box = page.locator("#box")
    box.locator('[data-testid="microphone-button"]').click()
    box.get_by_role("button", name="Start recording").click()
    stop = box.get_by_role("button", name="Stop recording")
    expect(stop).to_be_visible()
    page.wait_for_timeout(3500)  # the note is 3 s long
    stop.click()
    box.get_by_role("button", name="Attach audio").click()
    box.locator('[data-testid="submit-button"]').click()
    heard = user_messages(page).filter(has_text="🎤")
    expect(heard).to_have_count(1)
    expect(heard).not_to_contain_text("(voice note)", timeout=RENDER_TIMEOUT_MS)  # the transcript replaces it
    text = heard.inner_text().strip()
    assert text.startswith("🎤 "), text
    transcript = text[2:].strip().lower()
    assert fuzz.ratio(transcript, VOICE_NOTE_TEXT) >= 80, transcript
    expect(audio_players(page, "v1:")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(tool_steps(page)).to_contain_text("tool steps")
    expect(bot_messages(page).filter(has_text=re.compile("slower", re.I)).first).to_be_visible()
    no_traceback(page)
    snapshot(page, tmp_path / "voice-note.png", heard)


# 5 -----------------------------------------------------------------------------------------


def test_undo_and_redo_buttons_move_the_version_marked_now(open_studio, tmp_path):
    page = open_studio()
    ask(page, "make it more lo-fi", "v1")
    page.locator("#undo").click()
    wait_for(lambda: current_version(page) == "v0", message="undo to mark v0 now")
    expect(bot_messages(page).filter(has_text="back to v0")).to_have_count(1)
    assert [row[0] for row in version_rows(page)] == ["v0", "v1"]  # nothing lost
    snapshot(page, tmp_path / "undone.png", page.locator("#versions"))
    page.locator("#redo").click()
    wait_for(lambda: current_version(page) == "v1", message="redo to mark v1 now")
    expect(bot_messages(page).filter(has_text="back to v1")).to_have_count(1)
    page.locator("#redo").click()
    expect(bot_messages(page).filter(has_text="Nothing to redo")).to_have_count(1)
    assert current_version(page) == "v1"
    no_traceback(page)


# 6 -----------------------------------------------------------------------------------------


def test_a_b_listening_switches_versions_at_the_same_position(open_studio, tmp_path):
    page = open_studio()
    ask(page, "make it more lo-fi", "v1")
    choose(page, "#pick-a", "v0")
    choose(page, "#pick-b", "v1")
    audio_a, audio_b = page.locator("#ab-audio-a"), page.locator("#ab-audio-b")
    expect(audio_a).to_have_attribute("src", re.compile(r"v0\.wav$"))
    expect(audio_b).to_have_attribute("src", re.compile(r"v1\.wav$"))
    expect(page.locator("#ab-listen-a")).to_contain_text("v0")
    expect(page.locator("#ab-listen-b")).to_contain_text("v1")
    state = """() => { const a = document.querySelector('#ab-audio-a'), b = document.querySelector('#ab-audio-b');
                      return {a: a.currentTime, b: b.currentTime, aPaused: a.paused, bPaused: b.paused}; }"""
    page.locator("#ab-listen-a").click()
    wait_for(lambda: (s := page.evaluate(state))["a"] > 1.5 and not s["aPaused"], message="A to play past 1.5 s")
    # Where B starts, against where A stopped.
    page.evaluate(
        """() => { const a = document.querySelector('#ab-audio-a'), b = document.querySelector('#ab-audio-b');
                   window.__switch = null;
                   b.addEventListener('playing', () => { window.__switch = {a: a.currentTime, b: b.currentTime, aPaused: a.paused}; }, {once: true}); }"""
    )
    page.locator("#ab-listen-b").click()
    switch = wait_for(lambda: page.evaluate("() => window.__switch"), message="B to start playing")
    assert switch["aPaused"], switch
    assert switch["a"] > 1.5 and abs(switch["b"] - switch["a"]) < 0.5, switch
    wait_for(lambda: (s := page.evaluate(state))["b"] > switch["b"] + 0.5 and not s["bPaused"] and s["aPaused"], message="B to go on playing")
    # And back to A, from where B was.
    page.locator("#ab-listen-a").click()
    back = wait_for(lambda: (s := page.evaluate(state))["bPaused"] and not s["aPaused"] and s, message="A to play again")
    assert abs(back["a"] - back["b"]) < 0.5, back
    snapshot(page, tmp_path / "ab.png", page.locator("#ab"))
    page.evaluate("() => document.querySelectorAll('#ab audio').forEach(a => a.pause())")
    no_traceback(page)


# 7 -----------------------------------------------------------------------------------------


def test_downloads_the_mix_with_its_manifest_and_the_stems(open_studio, small_song, tmp_path):
    import soundfile as sf

    from tools.audio import load

    page = open_studio()
    upload(page, small_song)  # short: the stems are quick to separate
    expect(bot_messages(page).filter(has_text="song.wav")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    ask(page, "make it more lo-fi", "v1")
    choose(page, "#pick-dl", "v1")
    page.locator("#fmt").get_by_text("mp3", exact=True).click()
    page.locator("#download").click()
    wait_for(lambda: len(listed_files(page)) == 2, timeout_s=60, message="two files in #files")
    files = listed_files(page)
    mp3 = next(name for name in files if name.endswith(".mp3"))
    manifest = next(name for name in files if name.endswith(".json"))
    (tmp_path / mp3).write_bytes(fetch(page, files[mp3]))
    decoded = load(tmp_path / mp3)
    assert decoded.duration_s == pytest.approx(8.0, abs=0.2), decoded.duration_s
    assert np.abs(decoded.samples).max() > 0.05
    recipe = json.loads(fetch(page, files[manifest]))
    assert "spec" in recipe and "provenance" in recipe, sorted(recipe)
    assert "lofi" in json.dumps(recipe["spec"])
    snapshot(page, tmp_path / "download.png", page.locator("#files"))
    # The stems: four wav files.
    page.locator("#download-stems").click()
    wait_for(lambda: len(listed_files(page)) == 4 and all(n.endswith(".wav") for n in listed_files(page)), timeout_s=120, message="four stems in #files")
    stems = listed_files(page)
    for stem in ("vocals", "drums", "bass", "other"):
        name = next((n for n in stems if stem in n), None)
        assert name is not None, sorted(stems)
        (tmp_path / name).write_bytes(fetch(page, stems[name]))
        info = sf.info(str(tmp_path / name))
        assert info.duration == pytest.approx(8.0, abs=0.2) and info.channels == 2, info
    no_traceback(page)


# 8 -----------------------------------------------------------------------------------------


def test_the_picture_and_the_section_chips(open_studio, tmp_path):
    page = open_studio()
    image = page.locator("#picture img")
    expect(image).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    wait_for(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), message="the picture to load")
    size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 300 and size[1] > 100, size
    chips = page.locator("#sections")
    for name in ("intro", "verse 1", "chorus 1", "bridge", "outro"):
        expect(chips.get_by_text(name, exact=True)).to_be_visible()
    snapshot(page, tmp_path / "picture.png", page.locator("#picture"), chips)
    textarea(page).fill("loop the")
    chips.get_by_text("chorus 1", exact=True).click()
    expect(textarea(page)).to_have_value("loop the chorus 1")
    chips.get_by_text("bridge", exact=True).click()
    expect(textarea(page)).to_have_value("loop the chorus 1 bridge")
    # A new version gets its own picture.
    first = image.get_attribute("src")
    textarea(page).fill("")
    ask(page, "make it more lo-fi", "v1")
    expect(image).not_to_have_attribute("src", first or "", timeout=RENDER_TIMEOUT_MS)
    wait_for(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), message="the new picture to load")
    no_traceback(page)


# 9 -----------------------------------------------------------------------------------------


def test_a_corrupt_file_and_a_nonsense_request_get_plain_words(open_studio, tmp_path):
    page = open_studio()
    corrupt = tmp_path / "song.mp3"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    upload(page, corrupt)
    complaint = bot_messages(page).filter(has_text="song.mp3")
    expect(complaint).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(complaint).to_contain_text(re.compile("could not open", re.I))
    no_traceback(page)
    # The demo's session is still there and answers.
    textarea(page).fill("blorp the snazzle quantum")
    textarea(page).press("Enter")
    expect(user_messages(page).last).to_have_text("blorp the snazzle quantum")
    reply = bot_messages(page).last
    expect(reply).to_contain_text(re.compile("not sure|try", re.I), timeout=RENDER_TIMEOUT_MS)
    expect(audio_players(page, "v1")).to_have_count(0)
    assert len(version_rows(page)) == 1
    no_traceback(page)
    snapshot(page, tmp_path / "errors.png", complaint, reply)


# 10 ----------------------------------------------------------------------------------------


def test_two_listeners_each_keep_their_own_song_and_versions(open_studio, small_song, tmp_path):
    one, two = open_studio(), open_studio()
    drop(one, small_song)  # dragged onto the box this time
    expect(bot_messages(one).filter(has_text="song.wav")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    ask(one, "make it more lo-fi", "v1")
    ask(two, "add vinyl crackle", "v1")
    assert "song.wav" in chat_text(one) and "song.wav" not in chat_text(two)
    assert "vinyl" not in chat_text(one) and "lo-fi" not in chat_text(two)
    rows_one, rows_two = version_rows(one, 2), version_rows(two, 2)
    assert [r[0] for r in rows_one] == ["v0", "v1"] and "lo-fi" in rows_one[1][2], rows_one
    assert [r[0] for r in rows_two] == ["v0", "v1"] and "vinyl" in rows_two[1][2], rows_two
    snapshot(one, tmp_path / "listener-one.png", one.locator("#chat"))
    snapshot(two, tmp_path / "listener-two.png", two.locator("#chat"))
    no_traceback(one)
    no_traceback(two)


# 11 ----------------------------------------------------------------------------------------


def test_a_long_render_shows_a_preview_and_its_stages(open_studio, tmp_path):
    page = open_studio()
    textarea(page).fill("make it 10% slower")
    textarea(page).press("Enter")
    # A preview of the change first, while the whole song renders with its stages named;
    # then the whole song takes the preview's place.
    preview = audio_players(page, "preview")
    expect(preview).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    assert audio_players(page, "v1").count() == 0  # the preview comes before the full version
    snapshot(page, tmp_path / "preview.png", preview)
    # The listener starts typing the next request while the whole song renders: kept.
    textarea(page).fill("now add some vinyl")
    progress = page.locator('#chat [data-testid="status-tracker"]')
    expect(progress).to_contain_text(re.compile(r"(tempo|mastering|stems|style|done)\D*\d+(\.\d)?%", re.I), timeout=RENDER_TIMEOUT_MS)
    expect(audio_players(page, "v1:")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    page.wait_for_timeout(500)  # the turn's completion has arrived
    expect(textarea(page)).to_have_value("now add some vinyl")
    expect(audio_players(page, "v1:")).to_have_attribute("aria-label", re.compile("slower", re.I))
    no_traceback(page)
