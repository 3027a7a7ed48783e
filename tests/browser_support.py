"""The studio served as a real process, and a real Chromium driven by Playwright.

Test modules load this as a plugin (``pytest_plugins = ["browser_support"]``), so the one
studio server below is shared by every module that uses it, and a failing test that used it
gets the server's log in its report.

The server is ``remix studio`` on a free port of 127.0.0.1 with its own data folder, the
offline planner (no LLM settings in its environment) and the signal-processing separator
(fast), exactly as a listener would run it. The browser is the system's Chromium (Playwright's
own browser download is not needed), with a fake microphone that plays a voice note.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
# The fake microphone's voice note ("make it ten percent slower", espeak-ng, 16 kHz mono).
VOICE_NOTE = DATA / "voice_note_slower.wav"
VOICE_NOTE_TEXT = "make it 10% slower"
# A second note, sent through the API as a recording would be ("take the vocals out").
VOICE_NOTE_VOCALS = DATA / "voice_note_vocals.wav"

STARTUP_S = 150  # the studio analyses and renders the demo song before it serves
VIEWPORT = {"width": 1400, "height": 1000}
UI_TIMEOUT_MS = 30_000  # a page reaction
RENDER_TIMEOUT_MS = 120_000  # a request that renders (the demo song is 97.5 s long)

# Records every media element that starts playing (Gradio's players keep theirs out of sight).
MEDIA_HOOK = """
window.__media = [];
const __play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  if (!window.__media.includes(this)) window.__media.push(this);
  return __play.apply(this, arguments);
};
"""

_ACTIVE: list["Studio"] = []


# Availability ------------------------------------------------------------------------------


def chromium_path() -> str | None:
    """The system's Chromium (``REMIX_CHROMIUM`` overrides), or None."""
    wanted = os.environ.get("REMIX_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else shutil.which(wanted)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "Chromium is not installed (make test installs it with apt: apt-get install chromium)"
    return None


# The server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def studio_env(data_dir: Path, models_dir: Path | None = None) -> dict[str, str]:
    """The studio's environment: its own folders, offline planner, fast separator, no reporting."""
    env = dict(os.environ)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL", "REMIX_TRANSCRIBER", "REMIX_MODELS_DIR"):
        env.pop(name, None)
    env.update(
        REMIX_DATA_DIR=str(data_dir),
        GRADIO_TEMP_DIR=str(data_dir / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        REMIX_SEPARATOR="dsp",
        PYTHONUNBUFFERED="1",
    )
    if models_dir is not None:
        env["REMIX_MODELS_DIR"] = str(models_dir)
    return env


@dataclass
class Studio:
    url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path

    def log(self, last: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-last:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None


def _remix_command() -> list[str]:
    script = Path(sys.executable).parent / "remix"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]


@contextmanager
def studio_server(folder: Path, models_dir: Path | None = None, song: Path | None = None, timeout_s: float = STARTUP_S):
    """``remix studio`` on a free port; yields a :class:`Studio` once its page answers."""
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / "data"
    port = free_port()
    command = [*_remix_command(), "studio", "--host", "127.0.0.1", "--port", str(port)]
    if song is not None:
        command += ["--song", str(song)]
    log_path = folder / "studio.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=studio_env(data_dir, models_dir), stdout=log, stderr=subprocess.STDOUT
        )
    studio = Studio(f"http://127.0.0.1:{port}/", process, log_path, data_dir)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if not studio.alive():
                pytest.fail(f"the studio exited with {process.returncode} before serving:\n{studio.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(studio.url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the studio did not answer within {timeout_s:.0f} s:\n{studio.log()}", pytrace=False)
            time.sleep(0.5)
        _ACTIVE.append(studio)
        yield studio
    finally:
        if studio in _ACTIVE:
            _ACTIVE.remove(studio)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def studio_models(tmp_path_factory) -> Path:
    """One models folder for every studio of the run (the voice and sentence models are assembled once)."""
    return tmp_path_factory.mktemp("studio-models")


@pytest.fixture(scope="session")
def studio(tmp_path_factory, studio_models):
    """The studio, served once for the test run."""
    with studio_server(tmp_path_factory.mktemp("studio"), studio_models) as served:
        yield served


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that used the studio gets the end of the server's log in its report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _ACTIVE and "studio" in getattr(item, "fixturenames", ()):
        for served in _ACTIVE:
            state = "running" if served.alive() else f"exited with {served.process.returncode}"
            report.sections.append((f"studio server log ({state})", served.log()))


# Songs -------------------------------------------------------------------------------------


def write_song(path: Path, seconds: float = 8.0, bpm: float = 120.0, root_hz: float = 220.0, sample_rate: int = 44100) -> Path:
    """A small song: clicks on the beat over a chord of sines that changes every bar (stereo wav)."""
    import soundfile as sf

    frames = int(seconds * sample_rate)
    t = np.arange(frames) / sample_rate
    beat = 60.0 / bpm
    bar = np.floor(t / (4 * beat)).astype(int)
    roots = root_hz * np.array([1.0, 4 / 3, 3 / 2, 9 / 8])[bar % 4]
    chord = sum(np.sin(2 * np.pi * roots * ratio * t) for ratio in (1.0, 1.25, 1.5)) * 0.12
    clicks = np.zeros(frames)
    length = int(0.03 * sample_rate)
    shape = np.sin(2 * np.pi * 1800 * np.arange(length) / sample_rate) * np.exp(-np.arange(length) / (0.005 * sample_rate))
    for start in np.arange(0.0, seconds - 0.05, beat):
        i = int(start * sample_rate)
        clicks[i : i + length] += shape[: frames - i] * 0.6
    mono = (chord + clicks).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([mono, mono * 0.9], axis=1), sample_rate, subtype="PCM_16")
    return path


# The browser -------------------------------------------------------------------------------


def chromium_args(voice_note: Path = VOICE_NOTE) -> list[str]:
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        # %noloop: the note is heard once, then silence (Chromium would loop it otherwise).
        f"--use-file-for-fake-audio-capture={voice_note}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    return args


@pytest.fixture(scope="session")
def browser():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=chromium_args())
        yield launched
        launched.close()


@pytest.fixture
def open_studio(browser, studio):
    """open_studio() -> a new listener (own browser context) on the studio, its demo song ready."""
    from playwright.sync_api import expect

    contexts = []

    def opener():
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.grant_permissions(["microphone"], origin=studio.url.rstrip("/"))
        context.add_init_script(MEDIA_HOOK)
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(studio.url, wait_until="load")  # not networkidle: Gradio keeps a connection open
        expect(audio_players(page, "v0")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
        return page

    yield opener
    for context in contexts:
        context.close()


# Reading and driving the page --------------------------------------------------------------


def bot_messages(page):
    return page.locator('#chat [data-testid="bot"]')


def user_messages(page):
    return page.locator('#chat [data-testid="user"]')


def audio_players(page, label_start: str = ""):
    """The audio players inside the chat whose label starts with ``label_start``."""
    return page.locator(f'#chat [data-testid^="waveform-{label_start}"]')


def tool_steps(page):
    return page.locator("#chat .thought-group").filter(has_text="tool steps")


def chat_text(page) -> str:
    return page.locator("#chat").inner_text()


def textarea(page):
    return page.locator("#box textarea")


def send(page, text: str) -> None:
    """Type a request into the box and press Enter."""
    box = textarea(page)
    box.fill(text)
    box.press("Enter")


def upload(page, path: Path) -> None:
    """Attach a file through the box's file input (as its upload button does) and send it."""
    from playwright.sync_api import expect

    page.locator('#box input[type="file"]').set_input_files(str(path))
    expect(page.locator('#box [aria-label="File thumbnail"]')).to_have_count(1)
    page.locator('#box [data-testid="submit-button"]').click()


def drop(page, path: Path, mime: str = "audio/wav") -> None:
    """Drag ``path`` onto the box and drop it there, then send it."""
    import base64

    from playwright.sync_api import expect

    transfer = page.evaluate_handle(
        """([name, mime, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [path.name, mime, base64.b64encode(path.read_bytes()).decode()],
    )
    target = page.locator("#box .full-container")
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": transfer})
    expect(page.locator('#box [aria-label="File thumbnail"]')).to_have_count(1)
    page.locator('#box [data-testid="submit-button"]').click()


def table_rows(page, selector: str = "#versions") -> list[list[str]]:
    """The rows of a Dataframe as lists of cell texts."""
    return page.locator(selector).evaluate(
        """root => {
            const rows = {};
            for (const cell of root.querySelectorAll('[role="gridcell"][data-row]')) {
                const r = Number(cell.dataset.row), c = Number(cell.dataset.col);
                (rows[r] ||= [])[c] = cell.innerText.trim();
            }
            return Object.keys(rows).sort((a, b) => a - b).map(r => Array.from(rows[r], v => v ?? ''));
        }"""
    )


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (for state the page does not show as text)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {message} (last: {last!r})")


def current_version(page) -> str | None:
    """The version the table marks "now"."""
    for row in table_rows(page):
        if len(row) >= 4 and row[-1].strip() == "now":
            return row[0]
    return None


def choose(page, selector: str, option: str) -> None:
    """Pick ``option`` in the Dropdown ``selector``."""
    from playwright.sync_api import expect

    field = page.locator(f"{selector} input[role=combobox]")
    field.click()
    options = page.locator(f"#{field.get_attribute('aria-controls')}")
    options.get_by_role("option", name=option, exact=True).click()
    expect(field).to_have_value(option)
    field.blur()


def played_media(page) -> list[dict]:
    """The media elements that were asked to play: their time, state and source."""
    return page.evaluate(
        "() => (window.__media || []).map(m => ({time: m.currentTime, paused: m.paused, src: m.currentSrc || m.src}))"
    )


# Screenshots -------------------------------------------------------------------------------


def snapshot(page, path: Path, *elements) -> Path:
    """Screenshot the page and check it: the page's size, not blank, and each element drawn in its box."""
    from PIL import Image

    page.screenshot(path=str(path))
    image = np.asarray(Image.open(path).convert("RGB")).astype(float)
    assert image.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"]), f"{path.name}: {image.shape}"
    assert image.std() > 5, f"{path.name} is blank"
    for element in elements:
        element.scroll_into_view_if_needed()
        page.screenshot(path=str(path))
        image = np.asarray(Image.open(path).convert("RGB")).astype(float)
        box = element.bounding_box()
        assert box is not None and box["width"] > 4 and box["height"] > 4, f"{element} is not drawn"
        x0, y0 = max(int(box["x"]), 0), max(int(box["y"]), 0)
        x1 = min(int(box["x"] + box["width"]), image.shape[1])
        y1 = min(int(box["y"] + box["height"]), image.shape[0])
        assert x1 - x0 > 4 and y1 - y0 > 4, f"{element} lies outside the screenshot"
        crop = image[y0:y1, x0:x1]
        assert crop.std() > 3, f"{element} looks empty in {path.name}"
    return path
