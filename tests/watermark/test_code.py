"""The payload's code: bits round-trip, the CRC catches a wrong decode, Viterbi corrects errors."""

import numpy as np

from soundscape.watermark import ecc
from soundscape.watermark.payload import PAYLOAD_BITS, Payload, key_id_of


def test_payload_bits_round_trip_and_crc_catches_one_flipped_bit():
    p = Payload(0xBEEF, 0x12345678)
    bits = p.bits()
    assert bits.size == PAYLOAD_BITS
    assert Payload.from_bits(bits) == p
    for i in (0, 20, 47, 50):
        flipped = bits.copy()
        flipped[i] ^= 1
        assert Payload.from_bits(flipped) is None
    assert Payload.from_hex(p.hex) == p


def test_viterbi_corrects_scattered_errors_and_soft_noise(rng):
    p = Payload(0x0001, 0xFFFFFFFE)
    code = ecc.encode(p.bits())
    assert code.size == ecc.coded_length(PAYLOAD_BITS) == 124
    hard = 1.0 - 2.0 * code
    hard[[3, 30, 61, 90, 120]] *= -1  # five wrong code bits, far apart
    assert Payload.from_bits(ecc.decode(hard, PAYLOAD_BITS)) == p
    noisy = 1.0 - 2.0 * code + rng.normal(0, 0.8, code.size)
    assert ((noisy < 0) != code).sum() > 0  # the channel did flip bits
    assert Payload.from_bits(ecc.decode(noisy, PAYLOAD_BITS)) == p


def test_key_id_is_taken_from_the_public_key():
    a, b = key_id_of("-----BEGIN PUBLIC KEY-----\nAAAA\n"), key_id_of("-----BEGIN PUBLIC KEY-----\nAAAB\n")
    assert 0 <= a < 1 << 16 and a != b
    assert key_id_of(b"-----BEGIN PUBLIC KEY-----\nAAAA\n\n") == a
