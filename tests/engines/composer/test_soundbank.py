"""Sound banks: what they are, what playing them owes, and what happens without them."""

from __future__ import annotations

import io
import json
import logging
import struct

import numpy as np
import pytest
import soundfile as sf

from soundscape.engines.composer import soundbank, soundfont

from composer_cues import cue


# --- a SoundFont built here, with one preset, one instrument and one looped sample --------------

def _chunk(ident: bytes, payload: bytes) -> bytes:
    return ident + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def tiny_soundfont(pcm: np.ndarray, *, compressed: bool, loop: tuple[int, int]) -> bytes:
    """A valid SF2 (or SF3: the sample as Ogg Vorbis) of one looped sine sample at 44.1 kHz."""
    if compressed:
        buf = io.BytesIO()
        sf.write(buf, pcm, 44100, format="OGG", subtype="VORBIS")
        smpl = buf.getvalue()
        start, end = 0, len(smpl)          # SF3: byte offsets of the stream
        loop_start, loop_end = loop        # SF3: relative to the decoded sample
        kind = 1 | soundfont.SF3_COMPRESSED
    else:
        smpl = pcm.astype("<i2").tobytes() + b"\0" * (2 * soundfont.SAMPLE_PADDING)
        start, end = 0, pcm.size
        loop_start, loop_end = loop
        kind = 1
    info = _chunk(b"ifil", struct.pack("<HH", 3 if compressed else 2, 1)) + _chunk(b"INAM", b"tiny\0\0")
    phdr = struct.pack("<20sHHHIII", b"Sine", 0, 0, 0, 0, 0, 0) + struct.pack("<20sHHHIII", b"EOP", 0, 0, 1, 0, 0, 0)
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)
    pmod = b"\0" * 10
    pgen = struct.pack("<HH", 41, 0) + struct.pack("<HH", 0, 0)          # instrument 0
    inst = struct.pack("<20sH", b"Sine", 0) + struct.pack("<20sH", b"EOI", 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 2, 0)
    imod = b"\0" * 10
    igen = struct.pack("<HH", 54, 1) + struct.pack("<HH", 53, 0) + struct.pack("<HH", 0, 0)  # loop, sample 0
    shdr = struct.pack("<20sIIIIIBbHH", b"sine", start, end, loop_start, loop_end, 44100, 69, 0, 0, kind)
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = b"".join(_chunk(i, b) for i, b in ((b"phdr", phdr), (b"pbag", pbag), (b"pmod", pmod),
                                             (b"pgen", pgen), (b"inst", inst), (b"ibag", ibag),
                                             (b"imod", imod), (b"igen", igen), (b"shdr", shdr)))
    body = (b"sfbk" + _chunk(b"LIST", b"INFO" + info) + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", smpl))
            + _chunk(b"LIST", b"pdta" + pdta))
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def sine_pcm():
    t = np.arange(44100) / 44100
    return (0.5 * 32767 * np.sin(2 * np.pi * 441.0 * t)).astype(np.int16)


def test_sf3_decodes_into_an_equivalent_sf2(tmp_path, sine_pcm):
    sf3 = tmp_path / "tiny.sf3"
    sf3.write_bytes(tiny_soundfont(sine_pcm, compressed=True, loop=(1000, 41000)))
    assert soundfont.version(sf3) == (3, 1)
    assert soundfont.read_presets(sf3) == [soundfont.Preset(0, 0, "Sine")]
    out = tmp_path / "tiny.sf2"
    soundfont.decode_sf3(sf3, out)
    assert soundfont.version(out) == (2, 4)
    assert soundfont.read_presets(out) == soundfont.read_presets(sf3)
    # The sample is 16-bit PCM again, near the original (Vorbis is lossy), with absolute loop
    # points and the compression flag cleared.
    pdta = soundfont._read_list(out, b"pdta")
    shdr = next(pdta[o:o + s] for i, o, s in soundfont._chunks(pdta, 0, len(pdta)) if i == b"shdr")
    name, start, end, loop_start, loop_end, rate, *_rest, kind = struct.unpack("<20sIIIIIBbHH", shdr[:46])
    assert (start, loop_start - start, loop_end - start, rate, kind) == (0, 1000, 41000, 44100, 1)
    sdta = soundfont._read_list(out, b"sdta")
    pcm = np.frombuffer(sdta[8:8 + 2 * (end - start)], dtype="<i2").astype(np.float64)
    assert end - start == sine_pcm.size
    assert np.corrcoef(pcm[2000:40000], sine_pcm[2000:40000])[0, 1] > 0.999


def test_fluidsynth_plays_the_decoded_bank_like_the_compressed_one(tmp_path, sine_pcm):
    fluid = pytest.importorskip("soundscape.engines.composer.fluid")
    try:
        fluid.binding()
    except fluid.FluidUnavailable as exc:
        pytest.skip(f"FluidSynth is not installed ({exc})")
    sf3 = tmp_path / "tiny.sf3"
    sf3.write_bytes(tiny_soundfont(sine_pcm, compressed=True, loop=(1000, 41000)))
    sf2 = tmp_path / "tiny.sf2"
    soundfont.decode_sf3(sf3, sf2)
    info = soundbank.BankInfo(id="tiny", title="Tiny", files=(str(sf3),), package="-",
                              license="MIT", copyright="(c) test", credit="Tiny bank")
    played = []
    for path in (sf3, sf2):
        bank = soundbank.SoundBank(info=info, path=path, sha256="0" * 64, presets={(0, 0): "Sine"})
        synth = fluid.FluidSynthesizer([bank], sample_rate=24000)
        synth.sfont_ids = {"tiny": synth.fs.fluid_synth_sfload(synth.synth, str(path).encode(), 0)}
        synth.select(0, fluid.PresetChoice(bank, 0, 0, "Sine"))
        synth.fs.fluid_synth_noteon(synth.synth, 0, 69, 100)
        played.append(np.concatenate([synth.process(4000)[:2].copy() for _ in range(12)], axis=-1))
        synth.close()
    a, b = played
    assert np.sqrt(np.mean(a ** 2)) > 1e-3
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()


def test_preset_credits_follow_same_info_rows(tmp_path):
    table = tmp_path / "credits.csv"
    table.write_text("sep=,\nBank #,Expr. Bank #,Preset #,Preset Name,Details,Sample Credit\n"
                     '0,,48,Strings Fast,VSCO,"Samples: Sam Gossner\nOriginal License: CC0 1.0"\n'
                     "0,,49,Strings Slow,same info as 000:048 Strings Fast,\n"
                     "0,,0,Piano,,\n", encoding="utf-8")
    credits = soundbank._preset_credits(str(table))
    assert credits[(0, 48)] == "Samples: Sam Gossner Original License: CC0 1.0"
    assert credits[(0, 49)] == credits[(0, 48)]
    assert (0, 0) not in credits


# --- banks installed: what a render records -------------------------------------------------

def test_a_piano_prompt_plays_a_piano_preset_recorded_with_its_licence(composer):
    r = composer.render([cue("solo piano, calm and slow", duration=20.0, seed=2)])[0]
    pianos = [p for p in r.lineage.presets if p.instrument == "piano"]
    assert pianos, r.lineage.presets
    piano = pianos[0]
    assert piano.program == 0 and "Piano" in piano.preset
    assert piano.license == "MIT" and piano.credit and piano.copyright
    assert len(piano.sha256) == 64 and piano.id == f"soundbank:{piano.bank}:0:0"
    installed = {b.info.id: b for b in composer.banks}
    assert installed[piano.bank].sha256 == piano.sha256
    assert installed[piano.bank].preset_name(0, 0) == piano.preset


def test_musescore_presets_carry_their_sample_credit(composer):
    if not any(b.info.id == "musescore-general" for b in composer.banks):
        pytest.skip("MuseScore_General is not installed")
    r = composer.render([cue("warm strings, slow", duration=20.0, seed=3)])[0]
    strings = [p for p in r.lineage.presets if p.bank == "musescore-general" and p.program == 49]
    assert strings and "CC0" in (strings[0].sample_credit or "")


def test_presets_are_ingredients_the_ledger_clears(banks_installed, tmp_path):
    if not banks_installed:
        pytest.skip("no sound bank installed")
    from soundscape import pipeline
    from soundscape.config import open_workspace
    from soundscape.reports.cuesheet import build_cuesheet
    from soundscape.rights.clearance import clear
    from soundscape.rights.ledger import Ledger
    from soundscape.spec import make_spec

    workspace = open_workspace(tmp_path / "home")
    spec = make_spec("calm piano and strings", duration=20, seed=5, production="Test",
                     episode="E1", cue_id="1M1")
    [delivery] = pipeline.run([pipeline.Job(spec=spec, path=tmp_path / "cue.wav")],
                              workspace=workspace)
    sidecar = json.loads(delivery.sidecar_path.read_text())
    assert sidecar["presets"] and all(p["license"] == "MIT" for p in sidecar["presets"])
    with Ledger.open(workspace) as ledger:
        record = ledger.get_output(delivery.record_id)
        assert record.presets and all(p["asset"] for p in record.presets)
        bank_assets = ledger.assets([p["asset"] for p in record.presets])
        assert {a.audio_sha256 for a in bank_assets} == {p["sha256"] for p in sidecar["presets"]}
        assert all(a.license == "MIT" and a.attribution and a.author for a in bank_assets)
        ok = clear(ledger, delivery.record_id, "broadcast-commercial")
        assert ok.cleared
        credited = " ".join(ok.obligations)
        for asset in bank_assets:
            assert asset.attribution in credited
        strict = clear(ledger, delivery.record_id, "strict-cc0")
        assert not strict.cleared
        assert any("sound-bank" in reason and "MIT" in reason for reason in strict.reasons)
        sheet = build_cuesheet(ledger, "E1", workspace=workspace)
    cue_row = sheet.cues[0]
    assert cue_row.lineage.presets and "sound-bank presets" in cue_row.lineage.text
    assert "played on the sound-bank instruments" in cue_row.disclosure


# --- banks missing ----------------------------------------------------------------------------

def test_a_missing_bank_falls_back_to_synth_voices_with_one_line(tmp_path, monkeypatch, caplog):
    from soundscape.engines.composer import ComposerEngine, engine

    (tmp_path / soundbank.CATALOGUE_FILE).write_text(
        '[absent-bank]\ntitle = "Absent Bank"\nfiles = ["/nonexistent/Absent.sf2"]\n'
        'package = "absent-soundfont"\nlicense = "MIT"\ncopyright = "-"\ncredit = "-"\n')
    monkeypatch.setattr(soundbank, "LICENSES_DIR", tmp_path)
    soundbank.catalogue.cache_clear()
    monkeypatch.setattr(engine, "_NOTICED", set())
    try:
        with caplog.at_level(logging.WARNING):
            composer = ComposerEngine(samples_dir=tmp_path)
            renders = composer.render([cue("calm piano bed", duration=10.0, seed=1),
                                       cue("calm piano bed", duration=10.0, seed=2)])
    finally:
        soundbank.catalogue.cache_clear()
    notices = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(notices) == 1 and "\n" not in notices[0], notices
    assert "Absent Bank" in notices[0] and "absent-soundfont" in notices[0]
    assert "synth voices" in notices[0]
    for r in renders:
        assert r.details["voices"] == "synth" and r.lineage.presets == ()
        assert np.sqrt(np.mean(r.audio ** 2)) > 0.01


def test_soundbanks_none_turns_sampled_instruments_off(monkeypatch, tmp_path):
    from soundscape.engines.composer import ComposerEngine

    monkeypatch.setenv(soundbank.BANKS_ENV, "none")
    r = ComposerEngine(samples_dir=tmp_path).render([cue("calm pad", duration=10.0)])[0]
    assert r.details["voices"] == "synth" and r.lineage.presets == ()


def test_loading_fluidsynth_writes_nothing_to_stdout_even_under_ci():
    """pyfluidsynth prints where it found its library when CI is set; our stdout is JSON or audio."""
    import os
    import subprocess
    import sys

    code = ("from soundscape.engines.composer import fluid\n"
            "try:\n    fluid.binding()\nexcept fluid.FluidUnavailable:\n    raise SystemExit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "CI": "1"}, timeout=120)
    if done.returncode == 3:
        pytest.skip("FluidSynth is not installed")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
