"""What one delivered output is, declared once: the sidecar, the ledger's entry and its record.

:class:`OutputFacts` is the schema. The sidecar beside a delivered file is these facts plus an
envelope (its version, the engine's ``details`` and the ledger stamp); the ledger's output
record is these facts plus what the ledger adds (record id, position, links). A field added
here appears in all three under its own name. The few v1 spellings that differ (the sidecar's
nested ``engine``, its ``kind`` and its ``file``) are the only exceptions, spelt out below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from soundscape.errors import LedgerError

SIDECAR_VERSION = 1
# The lists of licensed things an output was made from, and the lineage role of each: the
# ledger links every entry to its registered asset, lineage and clearance judge each in its role.
USES = {"samples": "sample", "ingredients": "continuation-source", "presets": "sound-bank"}
# Fields the sidecar nests under "engine" (as {"name", "version", "model", "model_sha256"}).
_ENGINE_FIELDS = {"engine": "name", "engine_version": "version", "model": "model",
                  "model_sha256": "model_sha256"}


@dataclass(frozen=True, kw_only=True)
class OutputFacts:
    """The facts of one delivered output (docs/sidecar.md).

    ``path`` is the audio file's absolute path (the sidecar keeps its name only); ``samples``
    and ``ingredients`` are ``{"id", "sha256", "license", "path"}`` dicts, ``presets`` the
    sound-bank presets played (:class:`soundscape.render.PresetUse` as a dict, ``sha256`` the
    bank file's), to each of which the ledger adds ``asset``. ``cue_kind`` is bed, jingle or sting ("kind" names the record's own kind).
    """

    audio_sha256: str = ""
    file_sha256: str = ""
    path: str = ""
    engine: str = ""
    engine_version: str = ""
    model: str | None = None
    model_sha256: str | None = None
    prompt: str = ""
    cue_kind: str = ""
    parameters: dict = field(default_factory=dict)
    intent: dict = field(default_factory=dict)
    seed: int | None = None
    samples: list = field(default_factory=list)
    ingredients: list = field(default_factory=list)
    presets: list = field(default_factory=list)
    created: str = ""
    duration: float | None = None
    format: str | None = None
    sample_rate: int | None = None
    bit_depth: int | None = None
    channels: int | None = None
    mastering: dict = field(default_factory=dict)
    production: str | dict | None = None
    episode: str | None = None
    cue_id: str | None = None
    air_date: str | None = None
    territories: list = field(default_factory=list)
    content_key: str | None = None
    soundscape_version: str | None = None
    # The inaudible mark this output carries (soundscape.watermark.embed.Embedded.describe):
    # its payload names this ledger's key id and this output's mark id (docs/watermark.md).
    watermark: dict | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every fact's name, in declaration order."""
        return tuple(f.name for f in fields(OutputFacts))

    def entry(self) -> dict:
        """The facts as the ledger records them (one key per fact)."""
        return {name: getattr(self, name) for name in self.names()}

    def sidecar(self, *, details: dict | None = None, ledger: dict | None = None) -> dict:
        """The sidecar JSON: the facts in their v1 spelling, the engine's details, the stamp."""
        data: dict = {"soundscape_sidecar": SIDECAR_VERSION, "file": Path(self.path).name,
                      "engine": {}}
        for name in self.names():
            value = getattr(self, name)
            if name in _ENGINE_FIELDS:
                data["engine"][_ENGINE_FIELDS[name]] = value
            elif name == "cue_kind":
                data["kind"] = value
            elif name != "path":
                data[name] = value
        if self.ingredients:
            # The audio a cue continues from, under the name a clearance team uses for it (the
            # v1 key "ingredients" above still carries it, for readers of v1 sidecars).
            data["continuation_source"] = dict(self.ingredients[0])
        data["details"] = dict(details or {})
        data["ledger"] = ledger
        return data

    @classmethod
    def from_sidecar(cls, sidecar: dict, audio_path: str | Path) -> "OutputFacts":
        """The facts of a delivered file from its sidecar (any v1 sidecar, docs/sidecar.md).

        Raises:
            LedgerError: not a soundscape sidecar.
        """
        try:
            values = {}
            for f in fields(OutputFacts):
                default = f.default_factory() if callable(f.default_factory) else f.default
                value = sidecar.get(f.name)
                values[f.name] = value if default is None else (value or default)
            engine = sidecar.get("engine") or {}
            for name, key in _ENGINE_FIELDS.items():
                if isinstance(engine, dict):
                    values[name] = engine.get(key, "" if name in ("engine", "engine_version")
                                              else None)
                else:
                    values[name] = str(engine) if name == "engine" else (
                        "" if name == "engine_version" else None)
            values["audio_sha256"] = sidecar["audio_sha256"]
            values["file_sha256"] = sidecar.get("file_sha256", "")
            values["path"] = str(Path(audio_path).resolve())
            values["cue_kind"] = sidecar.get("kind") or ""
            values["samples"] = list(sidecar.get("samples") or ())
            values["ingredients"] = list(sidecar.get("ingredients") or ())
            values["presets"] = list(sidecar.get("presets") or ())
            # Early batches kept air date and territories inside a production mapping.
            production = sidecar.get("production")
            air_date = sidecar.get("air_date")
            territories = sidecar.get("territories") or ()
            if isinstance(production, dict):
                air_date = air_date or production.get("air_date")
                territories = territories or production.get("territory") or production.get(
                    "territories") or ()
            if isinstance(territories, str):
                territories = [territories]
            values["air_date"] = str(air_date) if air_date else None
            values["territories"] = [str(t) for t in territories]
            return cls(**values)
        except (KeyError, AttributeError, TypeError) as exc:
            raise LedgerError(f"the sidecar of {audio_path} is not a soundscape sidecar "
                              f"(missing {exc})") from None
