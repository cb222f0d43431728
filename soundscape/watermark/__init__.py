"""The inaudible mark every output carries: its ledger's key id and its own mark id.

A spread-spectrum mark in the STFT log-magnitude domain (500 Hz - 4 kHz), shaped under a
psychoacoustic mask, repeated every 2.7 s with a sync pattern and a convolutional code so that
a few seconds of audio decode (docs/watermark.md). :mod:`payload` says what is carried,
:mod:`ecc` protects it, :mod:`layout` places it, :mod:`mask` bounds it, :mod:`embed` writes
it and :mod:`detect` finds it.
"""
