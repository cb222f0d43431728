"""The MusicGen engine: audiocraft models from local checkpoints, batched with a seed per cue.

Importing this package is cheap; torch and audiocraft load when a model does. See
docs/musicgen.md for the model folders, training and the rights side.
"""

from soundscape.engines.musicgen.engine import MAX_DURATION_SECONDS, MusicGenEngine

__all__ = ["MAX_DURATION_SECONDS", "MusicGenEngine"]
