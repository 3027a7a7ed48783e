"""Voice notes: the offline Whisper base model, its assembly, normalisation, the CLI, the OpenAI path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import MEDIA, local_server, media_files, sine

pytest.importorskip("faster_whisper")

from fastapi import Request  # noqa: E402  (module level: the route's annotation is resolved here)

from assistant import voice  # noqa: E402
from tools.files import sha256_file  # noqa: E402
from tools.errors import BackendUnavailable, ParameterError  # noqa: E402

SPEECH = MEDIA / "speech"
ROOT = Path(__file__).resolve().parents[1]
needs_speech = pytest.mark.skipif(not media_files("speech/req01_*.flac"), reason="shared speech media not present")


def _typed() -> dict[str, str]:
    lines = (SPEECH / "transcripts.tsv").read_text().splitlines()
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """One assembled model folder for the whole module (the data folder is per test)."""
    return tmp_path_factory.mktemp("voice-models")


@pytest.fixture(autouse=True)
def _models(models_dir, monkeypatch):
    monkeypatch.setenv("REMIX_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("REMIX_TRANSCRIBER", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("REMIX_LLM_MODEL", raising=False)


def _plan(text: str) -> list[dict]:
    from assistant.offline import OfflinePlanner
    from assistant.planner import PlanContext
    from tools.settings import get_settings

    return OfflinePlanner(get_settings()).plan(text, PlanContext()).to_json()["calls"]


# The model folder ---------------------------------------------------------------------------


def test_model_folder_is_assembled_and_verified(models_dir):
    folder = voice.assemble_model()
    assert folder == models_dir / "whisper-base"
    assert {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"} <= {p.name for p in folder.iterdir()}
    assert sha256_file(folder / "model.bin") == voice.MODEL_SHA256
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    assert voice.assemble_model() == folder  # the second call finds it


def test_corrupted_part_is_a_clear_error(tmp_path):
    sources = []
    for package in voice.PART_PACKAGES:
        copy = tmp_path / package
        shutil.copytree(voice._package_data(package), copy)
        sources.append(copy)
    with open(sources[1] / "model.bin.part2", "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "models" / "whisper-base"
    with pytest.raises(BackendUnavailable, match="corrupt.*sha256"):
        voice.assemble_model(target, sources=tuple(sources))
    assert not target.exists()
    assert not list((tmp_path / "models").iterdir())  # the temporary folder is gone too


def test_damaged_cache_is_joined_again(tmp_path):
    target = tmp_path / "whisper-base"
    target.mkdir()
    (target / "model.bin").write_bytes(b"not a model")
    voice.assemble_model(target)
    assert sha256_file(target / "model.bin") == voice.MODEL_SHA256


# Normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("Make it more low fi.", "make it more lo-fi"),
        ("make it low-fi", "make it lo-fi"),
        ("Make it Lo-Fi!", "make it lo-fi"),
        ("make it lofi", "make it lo-fi"),
        ("Speed it up to 124pm.", "speed it up to 124 bpm"),
        ("speed it up to 124 BPM", "speed it up to 124 bpm"),
        ("at 124BPM", "at 124 bpm"),
        ("at 90 B.P.M.", "at 90 bpm"),
        ("set the b p m to 90", "set the bpm to 90"),
        ("at ninety beats per minute", "at 90 bpm"),
        ("up two semi-tones", "up 2 semitones"),
        ("one semi tone higher", "one semitone higher"),
        ("  cut   the intro ,  and repeat the chorus...  ", "cut the intro and repeat the chorus"),
        ("Undo that.", "undo that"),
        # Commas are Whisper's pauses, not the listener's boundaries.
        ("Turn up the voice, six decibels.", "turn up the voice 6 decibels"),
        ("Shift, murky up, by 3.", "shift murky up by 3"),
        ("a tempo of 1,000", "a tempo of 1000"),
        # Style and genre names written apart.
        ("Make it night core.", "make it nightcore"),
        ("vapor wave please", "vaporwave please"),
        ("Chip tune it", "chiptune it"),
        ("make it dub step", "make it dubstep"),
        ("reggae ton", "reggaeton"),
        ("afro beats", "afrobeats"),
        ("Drum n bass", "drum and bass"),
        ("drum & bass", "drum and bass"),
        ("drum 'n' bass", "drum and bass"),
        ("make it eight D", "make it 8d"),
        ("make it 8-D", "make it 8d"),
        ("an acapella version", "an a cappella version"),
        ("a capella", "a cappella"),
        ("Re-mix it", "remix it"),
        # "base" for "bass", but not where it is a verb.
        ("Only the base.", "only the bass"),
        ("turn up the baseline", "turn up the bass line"),
        ("base it on the original", "base it on the original"),
        # Spoken numbers as digits.
        ("one hundred and twenty four bpm", "124 bpm"),
        ("twenty-four seconds", "24 seconds"),
        ("Fade in over five seconds.", "fade in over 5 seconds"),
        ("make it one point two five times faster", "make it 1.25x faster"),
        ("verses two and three", "verses 2 and 3"),
        ("minus three semitones", "minus 3 semitones"),
        ("-3 semitones", "-3 semitones"),
        ("five two three four", "five two three four"),  # several numbers: left as heard
        ("that one", "that one"),  # a lone "one" is a word
        ("one more time", "one more time"),
        ("the second verse", "the second verse"),  # ordinals stay words
        ("What key is it in?", "what key is it in"),
    ],
)
def test_normalise(heard, expected):
    assert voice.normalise(heard) == expected


def test_normalise_keeps_every_typed_plan():
    """Normalising a typed request never changes its plan (a transcript gets the same reading).

    The one difference allowed: the free text a question hands to ``describe`` loses its "?".
    """
    from assistant.offline import OfflinePlanner
    from assistant.planner import PlanContext
    from tools.settings import get_settings

    planner = OfflinePlanner(get_settings()).plan
    cases = [json.loads(line) for line in (ROOT / "tests" / "data" / "planner_cases.jsonl").read_text().splitlines() if line.strip()]
    changed = []
    for case in cases:
        if case.get("context"):
            continue
        typed, heard = case["request"], voice.normalise(case["request"])
        before = planner(typed, PlanContext()).to_json()["calls"]
        after = planner(heard, PlanContext()).to_json()["calls"]
        if before != after and not (
            len(before) == len(after) == 1
            and before[0]["tool"] == after[0]["tool"] == "describe"
            and before[0]["args"]["question"].rstrip("?") == after[0]["args"]["question"]
        ):
            changed.append((typed, heard, before, after))
    assert changed == []


def test_prompt_is_short_and_from_the_contract():
    prompt = voice.initial_prompt()
    assert len(prompt.split()) < 45
    for word in ("lo-fi", "reggae", "vocals", "drums", "chorus", "bpm", "semitones", "undo"):
        assert word in prompt


# Choosing among the beam's readings ----------------------------------------------------------


def test_choose_keeps_the_prompts_help_within_the_slack():
    """The prompt may settle a close call: a reading a little better with it wins."""
    heard = voice.Hypothesis("make it more no fight", prompted=-0.9, plain=-0.6)
    helped = voice.Hypothesis("make it more lo-fi", prompted=-0.3, plain=-0.7)  # prompt adds 0.4 <= slack
    assert voice.choose([heard, helped]) is helped


def test_choose_drops_a_prompt_word_the_audio_does_not_carry():
    """A reading that owes its score to words copied from the prompt scores by the audio alone."""
    copied = voice.Hypothesis("turn it into a reggae song autotune bpm", prompted=-0.2, plain=-3.0)
    heard = voice.Hypothesis("turn it into a reggae song at 90 bpm", prompted=-0.5, plain=-0.8)
    assert voice.choose([copied, heard]) is heard
    assert copied.score == pytest.approx(-3.0 + voice.PROMPT_SLACK)
    assert heard.score == pytest.approx(-0.5)


def test_choose_ties_keep_the_beams_order_and_slack_is_a_parameter():
    first = voice.Hypothesis("undo that", prompted=-0.5, plain=-0.5)
    second = voice.Hypothesis("undo it", prompted=-0.5, plain=-0.5)
    assert voice.choose([first, second]) is first
    copied = voice.Hypothesis("make it lo-fi", prompted=-0.1, plain=-1.2)
    heard = voice.Hypothesis("make it more lo-fi", prompted=-0.3, plain=-0.6)
    assert voice.choose([copied, heard], slack=2.0) is copied  # a generous slack trusts the prompt
    assert voice.choose([copied, heard], slack=0.5) is heard
    with pytest.raises(ValueError):
        voice.choose([])


def test_a_repetition_loop_falls_back_to_the_segment_loop(monkeypatch):
    """When every reading is a loop ("3, 2, 3, 2, ..."), faster-whisper's own decoding (with its
    temperature fallback) reads the note instead."""
    loop = voice.Hypothesis("3, 2, " * 11 + "3", prompted=-0.4, plain=-0.9)
    monkeypatch.setattr(voice, "hypotheses", lambda model, samples, prompt, **_: ([loop], 0.0))
    monkeypatch.setattr(voice, "_segment_loop", lambda model, samples, prompt: "Cut it down to 1:30.")
    monkeypatch.setattr(voice, "_model", lambda settings: object())
    monkeypatch.setattr(voice, "_encode", lambda model, samples: (None, 100))
    monkeypatch.setattr(voice, "rerank", lambda model, encoded, best, readings, prompt: best.text)
    result = voice.transcribe_offline(np.full(16000, 0.1, dtype=np.float32))
    assert result.normalised == "cut it down to 1:30"
    fine = voice.Hypothesis("cut it down to 130", prompted=-0.6, plain=-0.9)
    monkeypatch.setattr(voice, "hypotheses", lambda model, samples, prompt, **_: ([loop, fine], 0.0))
    assert voice.transcribe_offline(np.full(16000, 0.1, dtype=np.float32)).normalised == "cut it down to 130"


def test_no_foreign_script_tokens():
    """Non-Latin tokens are suppressed (a request is English); Latin words and digits are not."""
    from tools.settings import get_settings

    model = voice._model(get_settings())
    tokenizer, suppressed = voice._decoding(model)
    suppressed = set(suppressed)
    for text in ("二", "の", "д"):
        assert set(tokenizer.encode(text)) & suppressed
    for text in (" two", " 2", " semitones", " lo-fi", "."):
        assert not set(tokenizer.encode(text)) & suppressed


# Bad input ------------------------------------------------------------------------------------


def test_not_audio_is_a_parameter_error(tmp_path):
    note = tmp_path / "note.wav"
    note.write_text("this is not audio")
    with pytest.raises(ParameterError, match="note.wav"):
        voice.transcribe(note)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ParameterError):
        voice.transcribe(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ParameterError):
        voice.transcribe(tmp_path / "empty.wav")


def test_silence_is_a_parameter_error(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "quiet.wav", np.zeros(44100 * 2, dtype=np.float32), 44100)
    with pytest.raises(ParameterError, match="silent"):
        voice.transcribe(tmp_path / "quiet.wav")


def test_too_short_and_wrong_type():
    with pytest.raises(ParameterError, match="too short"):
        voice.transcribe(np.full(800, 0.1, dtype=np.float32))
    with pytest.raises(ParameterError):
        voice.transcribe(42)


def test_a_tone_has_no_words(tmp_path):
    """A steady tone is not a request: either no words (an error) or, at most, no plan worth the name."""
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", sine(440.0, 2.0, 16000, channels=1)[0], 16000)
    try:
        result = voice.transcribe(tmp_path / "tone.wav")
    except ParameterError as error:
        assert "no words" in str(error)
    else:
        assert isinstance(result.text, str)


# Transcription --------------------------------------------------------------------------------


@needs_speech
def test_spoken_request_gives_the_typed_plan():
    typed = _typed()["req01_remove_vocals.flac"]
    result = voice.transcribe(SPEECH / "req01_remove_vocals.flac")
    assert result.language == "en"
    assert 0.5 < result.seconds < 10
    assert "vocals" in result.normalised
    assert _plan(result.normalised) == _plan(typed)


@needs_speech
def test_any_rate_and_format(tmp_path):
    """The same note as a 44.1 kHz stereo wav reads the same (load resamples to 16 kHz mono)."""
    from tools.audio import load, save

    audio = load(SPEECH / "req04_drums_louder.flac").resample(44100).to_channels(2)
    path = save(audio, tmp_path / "note.wav")
    result = voice.transcribe(path)
    assert _plan(result.normalised) == _plan(_typed()["req04_drums_louder.flac"])


@needs_speech
def test_every_shared_request_gives_the_typed_plan():
    for name, typed in _typed().items():
        if name.startswith("req"):
            assert _plan(voice.transcribe(SPEECH / name).normalised) == _plan(typed), name


@needs_speech
def test_a_long_note_goes_through_the_segment_loop(tmp_path):
    """Past 30 s Whisper's window is full: the note is read segment by segment, with the prompt."""
    import soundfile as sf

    from tools.audio import load

    audio = load(SPEECH / "req04_drums_louder.flac").to_channels(1).resample(16000)
    note = np.concatenate([audio.samples[0], np.zeros(16000 * 31, dtype=np.float32)])
    sf.write(tmp_path / "long.wav", note, 16000)
    result = voice.transcribe(tmp_path / "long.wav")
    assert result.seconds > voice.WINDOW_S
    assert _plan(result.normalised) == _plan(_typed()["req04_drums_louder.flac"])


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _speak(tmp_path, text: str, voice_name: str, speed: int) -> Path:
    path = tmp_path / "note.wav"
    subprocess.run(["espeak-ng", "-v", voice_name, "-s", str(speed), "-w", str(path), "--stdin"],
                   input=text.encode(), check=True, capture_output=True)  # fmt: skip
    return path


@needs_espeak
@pytest.mark.parametrize(
    ("typed", "voice_name", "speed"),
    [
        ("double the chorus", "en-us", 150),
        ("pitch it down two semitones", "en-us", 150),
        ("make it more lo-fi", "en-gb", 150),
    ],
)
def test_espeak_request_gives_the_typed_plan(tmp_path, typed, voice_name, speed):
    result = voice.transcribe(_speak(tmp_path, typed, voice_name, speed))
    assert _plan(result.normalised) == _plan(typed), result.text


@needs_espeak
def test_a_prompt_copy_is_not_kept(tmp_path):
    """Spoken "make it more lo-fi" under a prompt that opens with "Make it lo-fi.": with the
    prompt, Whisper finds its own first sentence about as likely as what was said; without it,
    that copy is far less likely, so the reading with "more" is kept."""
    from tools.settings import get_settings

    settings = get_settings()
    prompt = "Make it lo-fi. Remove the vocals. Undo that."
    samples, _ = voice._samples(_speak(tmp_path, "make it more lo-fi", "en-us", 150), settings)
    found, _ = voice.hypotheses(voice._model(settings), samples, prompt)
    best = voice.choose(found)
    assert voice.normalise(best.text) == "make it more lo-fi"
    copies = [h for h in found if voice.normalise(h.text) == "make it lo-fi"]
    assert copies  # the prompt's sentence is in the beam ...
    for copy in copies:  # ... and the audio alone does not carry it
        assert copy.plain + voice.PROMPT_SLACK < best.score
    assert voice.transcribe_offline(samples, settings, prompt=prompt).normalised == "make it more lo-fi"


@needs_speech
def test_cli_plan_voice_prints_calls_and_transcript(capsys):
    from ui.cli import main

    assert main(["plan", "--voice", str(SPEECH / "req03_reggae_90bpm.flac")]) == 0
    voiced = json.loads(capsys.readouterr().out)
    assert main(["plan", _typed()["req03_reggae_90bpm.flac"]]) == 0
    typed = json.loads(capsys.readouterr().out)
    assert voiced["calls"] == typed["calls"]
    assert voiced["calls"][0]["args"]["genre"] == "reggae"
    assert "reggae" in voiced["transcript"].lower()


def test_cli_plan_voice_errors(tmp_path, capsys):
    from ui.cli import main

    note = tmp_path / "note.wav"
    note.write_text("not audio")
    assert main(["plan", "--voice", str(note)]) == 2
    assert "note.wav" in capsys.readouterr().err
    assert main(["plan", "--voice", str(note), "make it lo-fi"]) == 2
    assert "not several" in capsys.readouterr().err


# The OpenAI path ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_openai():
    """A local stand-in for the transcription endpoint: yields (base_url, recorded requests)."""
    from fastapi import FastAPI

    seen: list[dict] = []
    app = FastAPI()

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        form = await request.form()
        upload = form["file"]
        data = await upload.read()
        seen.append({"model": form.get("model"), "bytes": len(data), "auth": request.headers.get("authorization")})
        return {"text": "Make it more low fi."}

    with local_server(app, "fake transcription server") as base_url:
        yield base_url, seen


@needs_speech
def test_openai_path_only_when_asked(fake_openai, monkeypatch):
    from tools.settings import get_settings

    base_url, seen = fake_openai
    seen.clear()
    note = SPEECH / "req02_more_lofi.flac"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    result = voice.transcribe_openai(note, get_settings())
    assert result.text == "Make it more low fi." and result.normalised == "make it more lo-fi"
    assert seen == [{"model": "whisper-1", "bytes": note.stat().st_size, "auth": "Bearer test-key"}]

    # A key alone does not send voice notes away: the offline model stays the default.
    seen.clear()
    offline = voice.transcribe(note)
    assert seen == [] and "lo-fi" in offline.normalised
    monkeypatch.setenv("REMIX_TRANSCRIBER", "openai")
    assert voice.transcribe(note).text == "Make it more low fi."
    assert len(seen) == 1
    # Without a key, REMIX_TRANSCRIBER=openai still stays offline.
    monkeypatch.delenv("OPENAI_API_KEY")
    seen.clear()
    voice.transcribe(note)
    assert seen == []


def test_openai_unreachable_is_a_clear_error(monkeypatch, tmp_path):
    import socket

    from tools.settings import get_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    note = tmp_path / "note.wav"
    import soundfile as sf

    sf.write(note, sine(300.0, 1.0, 16000, channels=1)[0], 16000)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    settings = get_settings().with_(llm_timeout_s=2.0)
    with pytest.raises(BackendUnavailable, match="OpenAI"):
        voice.transcribe_openai(note, settings)


# Re-ranking with the remix vocabulary --------------------------------------------------------

NOTE = ROOT / "tests" / "data" / "voice_note_slower.wav"  # "make it 10% slower", spoken


def test_the_packaged_tokenizer_gets_its_missing_merge():
    """The packaged tokenizer.json lacks GPT-2's first merge ("Ġ t"): " the" comes out as " ",
    "the". The fixed one writes it as Whisper does, one token; other words are unchanged."""
    from tools.settings import get_settings

    model = voice._model(get_settings())
    fixed = voice.fixed_tokenizer(model.hf_tokenizer)
    assert fixed.encode(" the", add_special_tokens=False).ids == [264]
    assert fixed.encode(" Remove the vocals.", add_special_tokens=False).ids[0] == model.hf_tokenizer.encode(
        " Remove", add_special_tokens=False
    ).ids[0]
    assert voice.fixed_tokenizer(fixed) is fixed  # nothing to fix twice


def test_sound_key_merges_what_a_listener_would_mishear():
    assert voice.sound_key("Blop") == voice.sound_key("plop")
    assert voice.sound_key("bass") == voice.sound_key("pass")
    assert voice.sound_key("10%") == voice.sound_key("one zero percent")  # digits are said one by one
    assert voice.sound_key("") == ""


def test_snap_variants_reach_the_vocabulary_and_keep_the_rest():
    variants = voice.snap_variants("bass most.")
    assert "bass boost." in variants[:3]
    assert all(v.endswith(".") for v in variants)  # the punctuation around a span stays
    assert len(voice.snap_variants("Numble the chorus.", limit=4)) <= 4
    assert voice.snap_variants("") == []


def test_lexicon_words_count_what_the_planner_reads():
    assert voice.lexicon_words("Bass boost.") > voice.lexicon_words("Bass most.")
    assert voice.lexicon_words("Make it 10% slower.") == voice.lexicon_words("Make it ten percent slower.")
    assert voice.lexicon_words("The weather is nice today.") == 0


def _note(settings):
    model = voice._model(settings)
    samples, _ = voice._samples(NOTE, settings)
    return model, samples, voice._encode(model, samples)


def test_committed_note_still_reads_as_its_request():
    from tools.settings import get_settings

    result = voice.transcribe_offline(NOTE, get_settings())
    assert result.normalised in ("make it 10% slower", "make it 10 percent slower")
    assert _plan(result.normalised) == _plan("make it 10% slower")


def test_score_texts_ranks_the_spoken_text_first():
    """Forced scoring of a committed note: what was said is far more likely than near misses,
    with or without the prompt; a dropped word costs too."""
    from tools.settings import get_settings

    model, _, (encoded, frames) = _note(get_settings())
    texts = ["Make it 10% slower.", "Make it 10% lower.", "Bake it 10% slower.", "Make it slower."]
    plain = voice.score_texts(model, encoded, frames, texts)
    prompted = voice.score_texts(model, encoded, frames, texts, voice.initial_prompt())
    for scores in (plain, prompted):
        assert scores[0] == max(scores)
        assert all(scores[0] > other + 2.0 for other in scores[1:])
    assert voice.score_texts(model, encoded, frames, []) == []


@needs_espeak
def test_rerank_does_not_force_an_off_vocabulary_sentence_into_the_vocabulary(tmp_path):
    """A note that says something the lexicon does not know is not turned into a request: espeak's
    "the weather is nice today" is misheard by Whisper base ("But wherever is ice today?"), and
    the re-ranked reading may move a space ("to day": "to" is a lexicon word), but it gains no
    remix words and plans to nothing, like the chosen reading."""
    from tools.settings import get_settings

    settings = get_settings()
    model = voice._model(settings)
    samples, _ = voice._samples(_speak(tmp_path, "the weather is nice today", "en-us", 150), settings)
    encoded = voice._encode(model, samples)
    found, _ = voice.hypotheses(model, samples, voice.initial_prompt(), encoded=encoded)
    best = voice.choose(found)
    kept = voice.rerank(model, encoded, best, found, voice.initial_prompt())
    assert _plan(voice.normalise(kept)) == _plan(voice.normalise(best.text)) == []
    assert voice.lexicon_words(kept) <= voice.lexicon_words(best.text) + 1


def test_rerank_keeps_the_committed_note_and_can_only_replace_with_a_margin(monkeypatch):
    from tools.settings import get_settings

    settings = get_settings()
    model, samples, encoded = _note(settings)
    found, _ = voice.hypotheses(model, samples, voice.initial_prompt(), encoded=encoded)
    best = voice.choose(found)
    assert voice.normalise(voice.rerank(model, encoded, best, found, voice.initial_prompt())) in (
        "make it 10% slower", "make it 10 percent slower",
    )  # fmt: skip
    # With an impossible margin, nothing replaces the chosen reading.
    monkeypatch.setattr(voice, "RERANK_MARGIN", 1e9)
    assert voice.rerank(model, encoded, best, found, voice.initial_prompt()) == best.text



def test_normalise_keeps_names_capitalised_for_the_planner():
    assert voice.normalise("Sing it in Freya's voice.") == "sing it in Freya's voice"
    assert voice.normalise("Load the Freddie Mercury voice model") == "load the Freddie Mercury voice model"
    assert voice.normalise("Make it Lo-Fi, OK?") == "make it lo-fi ok"
