"""Generation engines. Each engine is a folder; :data:`ENGINES` is the one switch between them.

Adding an engine is adding a folder and one line here: the pipeline, the batch runner and the
command line ask this registry and never name an engine. Engines are imported by name when
first used (musicgen pulls in torch, which the composer never pays for).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from soundscape.engines.base import Engine, EngineIdentity, ModelFiles
from soundscape.errors import ParameterError


@dataclass(frozen=True)
class EngineInfo:
    """What the pipeline needs to know of an engine before loading it.

    Args:
        factory: ``"module:Class"``; the class takes keyword settings.
        needs_model: renders with a registered model (``--model``), opened by ``Class.open``.
        batches: renders many cues of one model in one call faster than one by one, so a batch
            sends them to one worker together.
        wants_gpu: a worker for it asks for a GPU where the cluster has one.
    """

    factory: str
    needs_model: bool = False
    batches: bool = False
    wants_gpu: bool = False


ENGINES: dict[str, EngineInfo] = {
    "composer": EngineInfo("soundscape.engines.composer:ComposerEngine"),
    "musicgen": EngineInfo("soundscape.engines.musicgen:MusicGenEngine", needs_model=True,
                           batches=True, wants_gpu=True),
}


def engine_info(name: str) -> EngineInfo:
    """The registry entry of ``name``.

    Raises:
        ParameterError: no such engine.
    """
    if name not in ENGINES:
        raise ParameterError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    return ENGINES[name]


def engine_class(name: str) -> type:
    """The class of engine ``name`` (its module is imported now)."""
    module_name, factory = engine_info(name).factory.split(":")
    return getattr(import_module(module_name), factory)


def get_engine(name: str, **settings) -> Engine:
    """Build the engine called ``name`` that needs no model (settings go to its constructor)."""
    return engine_class(name)(**settings)


def open_engine(name: str, model: ModelFiles | None = None, **settings) -> Engine:
    """The engine ``name``, opened over ``model`` when it renders with one."""
    if engine_info(name).needs_model:
        return engine_class(name).open(model, **settings)
    return get_engine(name, **settings)


def identity(name: str, model: ModelFiles | None = None) -> EngineIdentity:
    """What engine ``name`` says it is, with ``model`` (None for engines without models)."""
    cls = engine_class(name)
    if hasattr(cls, "identity"):
        return cls.identity(model)
    return EngineIdentity(name=cls.name, version=cls.version)


__all__ = ["ENGINES", "Engine", "EngineIdentity", "EngineInfo", "ModelFiles", "engine_class",
           "engine_info", "get_engine", "identity", "open_engine"]
