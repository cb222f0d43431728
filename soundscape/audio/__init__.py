"""Audio stages: loudness and true-peak meters, mastering, and file delivery (WAV/FLAC)."""
