"""The MusicGen engine: audiocraft models from local checkpoints, batched with a seed per cue.

Importing this package is cheap; torch and audiocraft load when a model does. See
docs/musicgen.md for the model folders, training and the rights side.
"""

from soundscape.engines.musicgen.engine import MAX_DURATION_SECONDS, MusicGenEngine
from soundscape.engines.musicgen.registry import (STUDIO_LICENSE, check_model_usable,
                                                  engine_for_model)

__all__ = ["MAX_DURATION_SECONDS", "STUDIO_LICENSE", "MusicGenEngine", "check_model_usable",
           "engine_for_model"]
