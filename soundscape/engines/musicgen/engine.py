"""MusicGenEngine: renders CueSpecs with a local audiocraft checkpoint, many cues per LM call.

Specs that share a duration and sampling parameters (and continuation source) go through the
model together, in chunks of ``max_batch``; each cue's seed drives its own random stream, so a cue
sounds the same alone or inside any batch (same machine and settings). A batch that runs out of
memory is split in halves and retried, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Sequence

from soundscape.engines.base import EngineIdentity, ModelFiles, ProgressFn
from soundscape.engines.musicgen import conditioning
from soundscape.errors import AudioError, ModelError, ParameterError
from soundscape.render import LOOP_OVERLAP_SECONDS, Lineage, Render, SampleUse
from soundscape.spec import CueSpec

ENGINE_VERSION = "1.0.0"
# Longest cue the engine accepts: beyond ten minutes the sliding window has long forgotten the
# start, and a broadcast bed that long is better assembled from several cues.
MAX_DURATION_SECONDS = 600.0
DEFAULT_MAX_BATCH = 16
# A continuation prompt is at most this long (and at most half the model's window), taken from
# the end of the asset: enough context, and room left in the window for new music.
MAX_PROMPT_SECONDS = 10.0

logger = logging.getLogger("soundscape.engines.musicgen")


def engine_version() -> str:
    """The engine's version with the audiocraft it runs on, e.g. ``1.0.0+audiocraft-1.3.0``."""
    try:
        audiocraft_version = _dist_version("audiocraft")
    except Exception:  # not installed: the engine cannot load a model anyway
        audiocraft_version = "unknown"
    return f"{ENGINE_VERSION}+audiocraft-{audiocraft_version}"


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class MusicGenEngine:
    """The ``musicgen`` engine over one registered model folder.

    Args:
        model_dir: an audiocraft checkpoint folder (state_dict.bin, compression_state_dict.bin).
        model_name: the model's registered name (goes to each render's lineage).
        model_sha256: the registered hash of state_dict.bin (the ledger's ``lm_sha256``; the
            combined :func:`checkpoint_hashes` ``["model"]`` is accepted too); when given, the
            folder must still match it, else ModelError. Renders carry the LM file's hash.
        device: "cuda", "cpu"...; None picks cuda when available.
        max_batch: most cues in one LM call.
        extend_stride: seconds the sliding window advances for cues longer than the model's
            window (default: the checkpoint's setting, else 60% of the window).
    """

    name = "musicgen"

    def __init__(self, model_dir: str | Path, model_name: str = "musicgen",
                 model_sha256: str | None = None, device: str | None = None, *,
                 max_batch: int = DEFAULT_MAX_BATCH, extend_stride: float | None = None):
        # torch and audiocraft load here, with a model: importing the engine stays cheap.
        import torch

        from soundscape.engines.musicgen.checkpoint import checkpoint_hashes, load_model

        if max_batch < 1:
            raise ParameterError(f"max_batch {max_batch} must be 1 or more")
        self.version = engine_version()
        self.model_dir = Path(model_dir)
        self.model_name = model_name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_batch = max_batch
        hashes = checkpoint_hashes(self.model_dir)
        if model_sha256 is not None and model_sha256 not in (hashes["model"], hashes["lm"]):
            raise ModelError(f"model {model_name!r}: the files in {self.model_dir} no longer match "
                             f"the registered hash {model_sha256[:12]}… (found "
                             f"{hashes['model'][:12]}…); register the changed folder as a new model")
        # The LM checkpoint's hash identifies the model in the ledger (ModelRecord.lm_sha256).
        self.model_sha256 = hashes["lm"]
        self.compression_sha256 = hashes["compression"]
        self.model = load_model(self.model_dir, device=self.device, name=model_name)
        self.extend_stride = extend_stride
        self.notes: list[str] = []
        self._warned: set[str] = set()

    @classmethod
    def from_modules(cls, compression_model, lm, *, model_name: str = "in-memory",
                     model_sha256: str | None = None, max_batch: int = DEFAULT_MAX_BATCH,
                     extend_stride: float | None = None) -> "MusicGenEngine":
        """An engine over modules already in memory (benchmarks, experiments); no files checked.

        ``lm.cfg`` must hold the config (as :func:`~soundscape.engines.musicgen.builders.build_model`
        leaves it). Renders carry ``model_sha256`` as given (default: a hash of the LM's weights).
        """
        # torch and audiocraft load here, with a model: importing the engine stays cheap.
        from soundscape.engines.musicgen.builders import to_musicgen
        from soundscape.engines.musicgen.checkpoint import state_sha256

        engine = cls.__new__(cls)
        engine.version = engine_version()
        engine.model_dir = None
        engine.model_name = model_name
        engine.model = to_musicgen(compression_model, lm, name=model_name)
        engine.device = str(engine.model.device)
        engine.max_batch = max_batch
        engine.model_sha256 = model_sha256 or state_sha256(lm)
        engine.compression_sha256 = state_sha256(compression_model)
        engine.extend_stride = extend_stride
        engine.notes = []
        engine._warned = set()
        return engine

    @classmethod
    def open(cls, model: ModelFiles | None, *, device: str | None = None,
             max_batch: int | None = None) -> "MusicGenEngine":
        """The engine over a registered model's folder, its files checked against the record.

        Raises:
            ModelError: no model given, or files that changed since registration.
        """
        # torch and audiocraft load here, with a model: importing the engine stays cheap.
        from soundscape.engines.musicgen.checkpoint import checkpoint_hashes

        if model is None:
            raise ModelError("the musicgen engine needs a model: pass --model NAME "
                             "(see `soundscape model list`)")
        hashes = checkpoint_hashes(model.path)
        if model.compression_sha256 and hashes["compression"] != model.compression_sha256:
            raise ModelError(f"model {model.name!r}: {model.path}/compression_state_dict.bin "
                             f"changed since it was registered; register the changed folder as "
                             f"a new model")
        return cls(model_dir=model.path, model_name=model.name, model_sha256=model.lm_sha256,
                   device=device, max_batch=max_batch or DEFAULT_MAX_BATCH)

    @classmethod
    def identity(cls, model: ModelFiles | None) -> EngineIdentity:
        """Name, version (with audiocraft's) and the model's checkpoint hash (both files)."""
        sha = None
        if model is not None and model.lm_sha256 and model.compression_sha256:
            # checkpoint imports torch: only a batch planning with this engine pays for it.
            from soundscape.engines.musicgen.checkpoint import combined_sha256

            sha = combined_sha256(model.lm_sha256, model.compression_sha256)
        elif model is not None:
            sha = model.lm_sha256
        return EngineIdentity(name=cls.name, version=engine_version(),
                              model=model.name if model is not None else None, model_sha256=sha)

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def window_seconds(self) -> float:
        return float(self.model.max_duration)

    # --- the Engine protocol ------------------------------------------------------------------

    def render(self, specs: Sequence[CueSpec], *, progress: ProgressFn | None = None) -> list[Render]:
        """Render each spec (same order); specs with equal duration and parameters share LM calls.

        Raises:
            ParameterError: a duration beyond :data:`MAX_DURATION_SECONDS` or a malformed parameter.
        """
        # torch and audiocraft load here, with a model: importing the engine stays cheap.
        from soundscape.engines.musicgen.generate import SamplingParams, frames_for, total_steps

        jobs = []
        for index, spec in enumerate(specs):
            seconds = spec.duration + (LOOP_OVERLAP_SECONDS if spec.loop else 0.0)
            if not 0 < seconds <= MAX_DURATION_SECONDS:
                raise ParameterError(f"duration {seconds:g} s is beyond what musicgen renders "
                                     f"sensibly (up to {MAX_DURATION_SECONDS:g} s)")
            params = SamplingParams.from_params(spec.params)
            source = _continuation_source(spec.params)
            jobs.append((index, spec, seconds, params, source))
        groups: dict[tuple, list] = {}
        for job in jobs:
            _, _, seconds, params, source = job
            key = (round(seconds, 6), params, source.id if source else None)
            groups.setdefault(key, []).append(job)

        prompts = {}
        work = 0
        for (seconds, params, source_id), members in groups.items():
            source = members[0][4]
            if source is not None and source.id not in prompts:
                prompts[source.id] = self._prompt_codes(source)
            prompt_len = prompts[source.id].shape[-1] if source is not None else 0
            frames = frames_for(seconds, self.model.frame_rate)
            work += total_steps(self.model, frames, prompt_len, self.extend_stride) * len(members)
        done = [0]

        def on_rows(rows: int) -> None:
            done[0] += rows
            if progress is not None and work:
                progress(min(1.0, done[0] / work))

        results: list[Render | None] = [None] * len(jobs)
        for (seconds, params, source_id), members in groups.items():
            prompt = prompts.get(source_id)
            for start in range(0, len(members), self.max_batch):
                chunk = members[start:start + self.max_batch]
                for job, render in zip(chunk, self._render_split(chunk, seconds, params, prompt,
                                                                 on_rows)):
                    results[job[0]] = render
        if progress is not None:
            progress(1.0)
        return [r for r in results if r is not None]

    # --- batches ------------------------------------------------------------------------------

    def _render_split(self, chunk, seconds, params, prompt, on_rows) -> list[Render]:
        """Render a chunk; on running out of memory, halve it and go on."""
        try:
            return self._render_batch(chunk, seconds, params, prompt, on_rows)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not _is_out_of_memory(exc):
                raise
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(chunk) == 1:
                raise ModelError(f"out of memory rendering one {seconds:g} s cue on "
                                 f"{self.device}; try a shorter duration or another device") from None
            half = len(chunk) // 2
            note = (f"musicgen: out of memory on a batch of {len(chunk)} cues on {self.device}; "
                    f"splitting into {half} + {len(chunk) - half} and going on")
            self.notes.append(note)
            logger.warning(note)
            return (self._render_split(chunk[:half], seconds, params, prompt, on_rows)
                    + self._render_split(chunk[half:], seconds, params, prompt, on_rows))

    def _render_batch(self, chunk, seconds, params, prompt, on_rows) -> list[Render]:
        import numpy as np

        # torch and audiocraft load here, with a model: importing the engine stays cheap.
        from soundscape.engines.musicgen.generate import decode_rows, frames_for, generate_codes

        batch = len(chunk)
        specs = [job[1] for job in chunk]
        frames = frames_for(seconds, self.model.frame_rate)
        prompt_rows = None if prompt is None else prompt.expand(batch, -1, -1).contiguous()
        conditions = [self._condition(s) for s in specs]
        codes = generate_codes(self.model, conditions, [s.seed for s in specs],
                               frames=frames, params=params, prompt=prompt_rows,
                               extend_stride=self.extend_stride,
                               on_step=lambda n: on_rows(n * batch))
        audio_rows = decode_rows(self.model, codes)
        n_samples = int(round(seconds * self.sample_rate))
        renders = []
        for job, audio, condition in zip(chunk, audio_rows, conditions):
            spec, source = job[1], job[4]
            audio = audio.numpy().astype(np.float32, copy=False)
            if audio.shape[-1] < n_samples:
                audio = np.pad(audio, ((0, 0), (0, n_samples - audio.shape[-1])))
            audio = np.ascontiguousarray(audio[:, :n_samples])
            ingredients = (source.as_sample_use(),) if source is not None else ()
            lineage = Lineage(engine=self.name, engine_version=self.version, model=self.model_name,
                              model_sha256=self.model_sha256, ingredients=ingredients)
            details = {
                "seed": spec.seed,
                "sampling": asdict(params),
                "frames": frames,
                "frame_rate": float(self.model.frame_rate),
                "window_seconds": self.window_seconds,
                "extended": seconds > self.window_seconds,
                "batch_size": batch,
                "device": str(self.device),
                "compression_sha256": self.compression_sha256,
            }
            details["conditioning"] = conditioning.received(self.model.lm, condition)
            details["intent"] = conditioning.received_intent(self.model.lm, condition, spec)
            if source is not None:
                details["continued_from"] = {"id": source.id, "prompt_seconds":
                                             prompt.shape[-1] / self.model.frame_rate}
            renders.append(Render(spec=spec, audio=audio, sample_rate=self.sample_rate,
                                  lineage=lineage, details=details))
        return renders

    def _condition(self, spec: CueSpec):
        """The condition the model gets for ``spec``, warning once per prompt it cannot hear."""
        lm = self.model.lm
        if conditioning.model_kind(lm) == conditioning.DESCRIPTION:
            return spec.prompt
        condition = conditioning.condition_for_spec(spec)
        if not conditioning.known_to_model(lm, condition) and spec.prompt not in self._warned:
            self._warned.add(spec.prompt)
            note = (f"musicgen: no word of the prompt {spec.prompt[:60]!r} names a mood, key, "
                    f"tempo, texture or instrument model {self.model_name} knows; it hears only "
                    f"the description (try words such as calm, rain, bells, or --key/--bpm/--mood)")
            self.notes.append(note)
            logger.warning(note)
        return condition

    # --- continuation -------------------------------------------------------------------------

    def _prompt_codes(self, source: "_Source"):
        """Codes [1, K, T] of the end of the continuation asset (its last few seconds)."""
        import soundfile as sf
        import torch
        from audiocraft.data.audio_utils import convert_audio

        try:
            data, rate = sf.read(source.path, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, sf.LibsndfileError) as exc:
            raise AudioError(f"cannot read continuation asset {source.id} at {source.path}: "
                             f"{exc}") from None
        if data.shape[0] == 0:
            raise AudioError(f"continuation asset {source.id} at {source.path} has no audio")
        wav = torch.from_numpy(data.T.copy())
        wav = convert_audio(wav, rate, self.sample_rate, self.model.audio_channels)
        keep = int(min(MAX_PROMPT_SECONDS, 0.5 * self.window_seconds) * self.sample_rate)
        wav = wav[..., -keep:]
        with torch.inference_mode():
            codes, scale = self.model.compression_model.encode(wav[None].to(self.device))
        if codes.shape[-1] == 0:
            raise AudioError(f"continuation asset {source.id} is too short to continue from")
        return codes


class _Source:
    """A registered asset a cue continues from (spec.params["continue_from"])."""

    def __init__(self, data: dict):
        self.id = str(data["id"])
        self.sha256 = str(data.get("sha256", ""))
        self.license = str(data.get("license", ""))
        self.path = str(data["path"])

    def as_sample_use(self) -> SampleUse:
        return SampleUse(id=self.id, sha256=self.sha256, license=self.license, path=self.path)


def _continuation_source(params: dict | None) -> _Source | None:
    value = (params or {}).get("continue_from")
    if value in (None, "", {}):
        return None
    if not isinstance(value, dict) or not value.get("path") or not value.get("id"):
        raise ParameterError("continue_from must name a registered asset with its id and path")
    if not value.get("license"):
        raise ParameterError(f"continue_from asset {value.get('id')} has no license on record")
    return _Source(value)
