"""Optional parts of soundscape and the pip extras that install them.

``pip install soundscape`` is the light set (composer, mastering, ledger, reports, C2PA);
MusicGen needs ``soundscape[musicgen]`` (torch, torchaudio, audiocraft), Ray batches
``soundscape[ray]`` and a PostgreSQL ledger ``soundscape[postgresql]``. A command that reaches for a missing one says which extra to install.
"""

from __future__ import annotations

from soundscape.errors import MissingExtraError

# Top-level module -> the extra that provides it (pyproject.toml, [project.optional-dependencies]).
EXTRA_OF_MODULE = {"torch": "musicgen", "torchaudio": "musicgen", "audiocraft": "musicgen",
                   # audiocraft's own dependencies, which soundscape's MusicGen code imports too
                   "omegaconf": "musicgen", "transformers": "musicgen", "flashy": "musicgen",
                   "einops": "musicgen", "xformers": "musicgen",
                   "ray": "ray", "psycopg": "postgresql"}
WHAT_NEEDS = {"musicgen": "the MusicGen engine, training and model commands",
              "ray": "Ray batches (--executor ray)",
              "postgresql": "a ledger on a PostgreSQL server (ledger_url)"}


def extra_for(exc: ImportError) -> str | None:
    """The extra whose module ``exc`` failed to import, or None when it is not one of ours."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    return EXTRA_OF_MODULE.get(name)


def missing_extra(extra: str) -> MissingExtraError:
    """The one-line error for a missing extra, saying what to install."""
    return MissingExtraError(f"{WHAT_NEEDS[extra]}: this needs the '{extra}' extra, which is not "
                             f"installed: pip install 'soundscape[{extra}]'")
