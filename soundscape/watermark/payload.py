"""What the mark carries: the ledger's key id (16 bits) and the output's mark id (32 bits).

The mark id is made where the file is written (a batch worker has no ledger, and the ledger
gives a record its sequence number only after the file exists) and kept in the output's facts,
so the ledger finds the record by it (docs/watermark.md). It is derived from everything that
made the output (:func:`mark_id_for`), never drawn at random: the same inputs and seed must
still give bit-identical audio, marked the same way, while a different model (even one with the
same weights under another license), prompt, seed or ledger gives another mark.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import numpy as np

KEY_ID_BITS = 16
MARK_ID_BITS = 32
CRC_BITS = 8
PAYLOAD_BITS = KEY_ID_BITS + MARK_ID_BITS + CRC_BITS
# CRC-8 with the polynomial x^8 + x^2 + x + 1 (ITU-T I.432.1 HEC): a wrong decode that the
# convolutional code lets through is caught with probability 1 - 2^-8.
CRC_POLY = 0x07


@dataclass(frozen=True)
class Payload:
    """One output's mark: whose ledger (``key_id``) and which output in it (``mark_id``)."""

    key_id: int
    mark_id: int

    def __post_init__(self):
        if not (0 <= self.key_id < 1 << KEY_ID_BITS and 0 <= self.mark_id < 1 << MARK_ID_BITS):
            raise ValueError(f"payload out of range: {self.key_id}, {self.mark_id}")

    @property
    def hex(self) -> str:
        """``kkkk-mmmmmmmm``: how sidecars, records and reports spell the mark."""
        return f"{self.key_id:04x}-{self.mark_id:08x}"

    @classmethod
    def from_hex(cls, text: str) -> "Payload":
        key, mark = text.split("-")
        return cls(int(key, 16), int(mark, 16))

    def bits(self) -> np.ndarray:
        """The 56 payload bits, most significant first: key id, mark id, CRC-8 of both."""
        value = (self.key_id << MARK_ID_BITS) | self.mark_id
        data = [(value >> i) & 1 for i in range(KEY_ID_BITS + MARK_ID_BITS - 1, -1, -1)]
        return np.array(data + _crc8(data), dtype=np.uint8)

    @classmethod
    def from_bits(cls, bits) -> "Payload | None":
        """The payload the bits spell, or None when their CRC does not match."""
        bits = [int(b) for b in bits]
        data, crc = bits[:KEY_ID_BITS + MARK_ID_BITS], bits[KEY_ID_BITS + MARK_ID_BITS:]
        if len(crc) != CRC_BITS or _crc8(data) != crc:
            return None
        value = 0
        for b in data:
            value = (value << 1) | b
        return cls(value >> MARK_ID_BITS, value & ((1 << MARK_ID_BITS) - 1))


def _crc8(bits: list[int]) -> list[int]:
    reg = 0
    for b in bits:
        top = ((reg >> 7) & 1) ^ b
        reg = (reg << 1) & 0xFF
        if top:
            reg ^= CRC_POLY
    return [(reg >> i) & 1 for i in range(CRC_BITS - 1, -1, -1)]


def key_id_of(public_key_pem: str | bytes) -> int:
    """The ledger's key id: the first 16 bits of the SHA-256 of its public key (PEM text)."""
    data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    return int.from_bytes(hashlib.sha256(data.strip()).digest()[:2], "big")


def mark_id_for(key_id: int, made_from: dict) -> int:
    """The mark id of an output: 32 bits of SHA-256 over the ledger's key id and the canonical
    JSON of what made it (its parameters, engine, model and preset)."""
    import json

    text = json.dumps({"key_id": key_id, **made_from}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")


def new_mark_id() -> int:
    """A fresh random 32-bit mark id (from the OS's cryptographic source)."""
    return secrets.randbits(MARK_ID_BITS)
