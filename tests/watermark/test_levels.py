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
    assert detect(store[:, :]).payload == payload
    store.close()
