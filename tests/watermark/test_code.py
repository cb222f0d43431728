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


def test_the_known_paths_codewords_from_the_generator_matrix_are_the_encoders(rng):
    # detect.codeword_signs codes every listed mark at once through the code's linearity
    # (CRC-8 and the convolutional code are both linear over GF(2)); it must agree bit for bit
    # with the encoder run payload by payload
    from soundscape.watermark.detect import IDENTITY_BITS, codeword_signs

    listed = [Payload(int(k), int(m)) for k, m in
              zip(rng.integers(0, 2 ** 16, 300), rng.integers(0, 2 ** 32, 300))]
    listed += [Payload(0, 0), Payload(2 ** 16 - 1, 2 ** 32 - 1)]
    one_by_one = np.array([1.0 - 2.0 * ecc.encode(p.bits())[IDENTITY_BITS] for p in listed])
    assert np.array_equal(codeword_signs(listed), one_by_one)
