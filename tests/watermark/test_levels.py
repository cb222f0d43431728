"""The mark stays under the music's masking threshold, and a bed held in a file is marked alike."""

import numpy as np

from soundscape.render import AudioStore
from soundscape.watermark.detect import detect
from soundscape.watermark.embed import embed
from soundscape.watermark.mask import margin_db
from soundscape.watermark.payload import Payload


def test_the_mark_stays_under_the_masking_threshold_in_every_frame_and_band(clips):
    for name in ("jingle", "bed"):
        unmarked, marked, _, _ = clips[name]
        largest, _ = margin_db(unmarked, marked)
        assert largest < 0.0, (name, largest)


def test_a_bed_in_an_audio_store_is_marked_as_an_array_is(clips):
    unmarked = clips["bed"][0]
    store = AudioStore(2, unmarked.shape[1])
    store[:, :] = unmarked
    array = unmarked.copy()
    payload = Payload(0x0102, 0x0A0B0C0D)
    a = embed(array, payload, ceiling=0.9)
    b = embed(store, payload, ceiling=0.9)
    assert np.array_equal(store[:, :], array) and not np.array_equal(array, unmarked)
    assert a.snr_db == b.snr_db and a.true_peak == b.true_peak
    # with the unmarked audio's per-chunk true-peak bounds (as mastering hands them over) the
    # marked file's true peak is re-measured only near the top, and comes out the same
    from soundscape.audio import loudness as meter

    host_peak, chunk_bounds = meter.chunk_true_peak_bounds(unmarked)
    again = unmarked.copy()
    c = embed(again, payload, ceiling=0.9, host_true_peak=host_peak, host_chunk_peaks=chunk_bounds)
    assert np.array_equal(again, array) and c.true_peak == a.true_peak == meter.true_peak(array)
    assert detect(store[:, :]).payload == payload
    store.close()


def test_the_loudness_marking_reports_is_what_a_second_pass_measures(clips):
    # mark_master adds the mark's energy, worked out from its spectra, to mastering's sub-block
    # energies instead of measuring the whole file again: it must agree with measuring.
    from soundscape.audio import loudness as meter

    for name in ("jingle", "bed"):
        unmarked, marked, _, mastered = clips[name]
        measured = meter.subblock_energies(marked, 48000)
        before = meter.subblock_energies(unmarked, 48000)
        added, estimated = measured - before, mastered.energies - before
        # per 100 ms sub-block, within 1 % of the music's energy there (0.04 dB)
        loud = before.sum(0) > 1e-6 * before.sum(0).max()
        error = np.abs(estimated.sum(0) - added.sum(0))[loud] / before.sum(0)[loud]
        assert error.max() < 0.01, (name, error.max())
        stats = meter.loudness_stats(measured)
        assert abs(mastered.loudness_lufs - stats.integrated) < 0.005, name
        assert abs(mastered.max_momentary_lufs - stats.max_momentary) < 0.01, name
        # equal to float32 rounding (1.4e-6 dB was seen with one mark id)
        assert abs(mastered.true_peak_dbtp - meter.true_peak_dbtp(marked, 48000)) < 1e-4, name
