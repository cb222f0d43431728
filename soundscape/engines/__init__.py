"""Generation engines. Each engine is a folder; :data:`ENGINES` maps a name to its loader.

Adding an engine is adding a folder and one line here: the pipeline asks :func:`get_engine`
and never imports an engine directly (musicgen pulls in torch, which the composer never pays for).
"""

from __future__ import annotations

from importlib import import_module

from soundscape.engines.base import Engine, Lineage, Render, SampleUse
from soundscape.errors import ParameterError

# name -> "module:factory"; the factory takes keyword settings and returns an Engine.
ENGINES: dict[str, str] = {
    "composer": "soundscape.engines.composer:ComposerEngine",
    "musicgen": "soundscape.engines.musicgen:MusicGenEngine",
}


def get_engine(name: str, **settings) -> Engine:
    """Build the engine called ``name`` (settings go to its constructor)."""
    if name not in ENGINES:
        raise ParameterError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    module_name, factory = ENGINES[name].split(":")
    return getattr(import_module(module_name), factory)(**settings)


__all__ = ["ENGINES", "Engine", "Lineage", "Render", "SampleUse", "get_engine"]
