"""The MusicGen engine: audiocraft models from local checkpoints, batched with a seed per cue.

Importing this package is cheap; torch and audiocraft load when a model does. Registering,
training and clearing models is the models service's (:mod:`soundscape.models`); see
docs/musicgen.md for the model folders, training and the rights side.
"""

import logging
import warnings

# xformers ships no C++ extensions for this torch; audiocraft then uses torch's own attention,
# and the warnings xformers logs (and torch's weight_norm deprecation inside audiocraft's
# EnCodec) tell a user nothing they can act on. Set here, before anything imports audiocraft.
logging.getLogger("xformers").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=r".*torch\.nn\.utils\.weight_norm.*", category=FutureWarning)

from soundscape.engines.musicgen.engine import MAX_DURATION_SECONDS, MusicGenEngine  # noqa: E402

__all__ = ["MAX_DURATION_SECONDS", "MusicGenEngine"]
