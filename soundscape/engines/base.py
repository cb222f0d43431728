"""The engine protocol, and how an engine names itself and the model it renders with.

An engine turns :class:`~soundscape.spec.CueSpec` objects into
:class:`~soundscape.render.Render` objects. It never touches files or the ledger: a registered
model reaches it as plain :class:`ModelFiles` (the models service reads the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from soundscape.render import Render
from soundscape.spec import CueSpec

ProgressFn = Callable[[float], None]
"""Called with the fraction done (0..1) of the whole ``render`` call."""


@dataclass(frozen=True)
class ModelFiles:
    """A registered model as an engine opens it: its name, its folder and the recorded hashes."""

    name: str
    path: str
    lm_sha256: str | None = None
    compression_sha256: str | None = None


@dataclass(frozen=True)
class EngineIdentity:
    """Who renders a cue: the engine's name and version, the model and its checkpoint hash.

    Part of every output's content key, so a new engine version or another checkpoint renders
    the cue again.
    """

    name: str
    version: str
    model: str | None = None
    model_sha256: str | None = None

    def describe(self) -> dict:
        """As the content key and the batch plan carry it."""
        return {"name": self.name, "version": self.version, "model": self.model,
                "model_sha256": self.model_sha256}


class Engine(Protocol):
    """A generation engine: renders many specs in one call (musicgen batches them).

    An engine that renders with a registered model also has a classmethod
    ``open(model: ModelFiles, **settings)``; one whose identity is more than its class's
    ``name`` and ``version`` has a classmethod ``identity(model: ModelFiles | None)``.
    """

    name: str
    version: str

    def render(self, specs: Sequence[CueSpec], *, progress: ProgressFn | None = None) -> list[Render]:
        """Render each spec; the result is in the same order as ``specs``."""
        ...
