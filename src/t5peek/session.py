"""One MODEL, read once, in the one safe order.

    resolve → config.json → safetensors headers → tokenizer → generation settings → (memory check) → weights

Each step runs the first time something asks for it and is kept: a command that needs only the headers
never touches torch, and a command that loads weights checks that they fit before any weight is downloaded.
The CLI commands and the Python API (`t5peek.Model`) both go through a Session.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, ContextManager

from t5peek import anatomy, generation_file, loading, seq2seq
from t5peek.budget.run import estimate_generate_peak
from t5peek.checkpoint import CheckpointIndex
from t5peek.dtypes import compute_dtype, torch_dtype
from t5peek.loading import ResolvedModel
from t5peek import placement


def _no_progress(_message: str) -> ContextManager:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class SourceOptions:
    """Where MODEL comes from."""

    model: str = loading.DEFAULT_MODEL
    revision: str | None = None
    offline: bool = False
    refresh: bool = False


@dataclass(frozen=True)
class RunOptions:
    """How weights are loaded and run."""

    device: str = "cpu"
    dtype: str = "auto"
    allow_pickle: bool = False
    force: bool = False
    device_map: str | None = None
    max_memory: dict | None = None


@dataclass(frozen=True)
class RunShape:
    """The size of the run about to start, for the memory check before loading."""

    source_tokens: int
    new_tokens: int
    beams: int = 1
    occlusion: bool = False  # the output is re-scored once per source token (--occlusion)

    def describe(self) -> str:
        beams = f", {self.beams} beams" if self.beams > 1 else ""
        occlusion = ", re-scored once per source token for --occlusion" if self.occlusion else ""
        return f"this run ({self.source_tokens} source tokens, {self.new_tokens} new tokens{beams}{occlusion})"


@dataclass
class Session:
    source: SourceOptions = field(default_factory=SourceOptions)
    run: RunOptions = field(default_factory=RunOptions)
    warn: Callable[[str], None] = lambda message: None
    progress: Callable[[str], ContextManager] = _no_progress
    _loaded: dict = field(default_factory=dict, init=False, repr=False)  # eager_attention → LoadedModel
    _generation_checked: bool = field(default=False, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.source.model

    @cached_property
    def resolved(self) -> ResolvedModel:
        resolved = loading.resolve_model(self.source.model, self.source.revision, self.source.offline,
                                         self.source.refresh)
        for warning in resolved.warnings:
            self.warn(warning)
        return resolved

    @cached_property
    def config(self) -> dict:
        """config.json as a dict, refused when it asks for remote code or is not an encoder-decoder."""
        return loading.read_config(self.resolved)

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @cached_property
    def checkpoint(self) -> CheckpointIndex:
        """The stored tensors, from safetensors headers (local files, or a few KB from the Hub)."""
        return loading.read_checkpoint(self.resolved)

    def require(self, command: str) -> None:
        """Refuse the families a command cannot run (ProphetNet for trace and generate)."""
        anatomy.check_supported(self.model_type, command, self.name)

    @cached_property
    def meta_model(self):
        """The module tree on the meta device: no memory for weights, untied where the checkpoint is."""
        with self.progress("Building the model on the meta device…"):
            return loading.build_meta_model(self.resolved, self.config, self.checkpoint)

    @cached_property
    def small_files(self) -> ResolvedModel:
        """MODEL with its small files at hand (tokenizer, generation_config.json; no weights): a Hub model's are
        downloaded."""
        return loading.download_tokenizer(self.resolved)

    @cached_property
    def tokenizer(self):
        """The tokenizer; for a Hub model only its small files are downloaded, never the weights."""
        with self.progress("Loading the tokenizer…"):
            loading.quiet_libraries()
            return loading.load_tokenizer(self.small_files)

    def check_generation_files(self) -> None:
        """generation_config.json (config.json's settings without it) checked against what generate() accepts and
        the model's vocabulary, once, before any weight loads (t5peek.generation_file)."""
        if self._generation_checked:
            return
        with self.progress("Reading the generation settings…"):
            folder = self.small_files.folder
            vocabulary = seq2seq.vocabulary_size(self.meta_model)
        generation_file.check_files(folder, self.config, self.name, vocabulary)
        self._generation_checked = True

    def weights(self, eager_attention: bool = True, run: RunShape | None = None):
        """The model with real weights (loaded once): the memory check comes before any weight download, and
        counts the caches and activations of `run` when given."""
        if eager_attention in self._loaded:
            return self._loaded[eager_attention]
        self.check_generation_files()
        run_peak = self._run_peak(run) if run is not None and not self.run.force else None
        with self.progress(f"Loading the weights of {self.name}…"):
            loaded = loading.load_model(self.small_files, device=self.run.device, dtype=self.run.dtype,
                                        allow_pickle=self.run.allow_pickle, eager_attention=eager_attention,
                                        with_tokenizer=False, force=self.run.force,
                                        device_map=self.run.device_map, max_memory=self.run.max_memory,
                                        warn=self.warn, run_peak=run_peak, run_what=run.describe() if run else "")
        self._loaded[eager_attention] = loaded
        return loaded

    def _run_peak(self, run: RunShape) -> int | None:
        if not self.checkpoint.tensors:
            return None
        return estimate_generate_peak(self.config, self.checkpoint, run.source_tokens, run.new_tokens, run.beams,
                                      dtype=self.run.dtype, device=loading.resolve_device(self.run.device),
                                      occlusion=run.occlusion)

    def plan_split(self, max_memory: dict):
        """How accelerate would place the model over `max_memory`, planned on the meta model."""
        with self.progress("Planning the split over --max-memory…"):
            return placement.plan(self.meta_model, max_memory, self._planning_dtype())

    def _planning_dtype(self):
        """The dtype the weights will load in (the same rule as loading)."""
        device = loading.resolve_device(self.run.device)
        return torch_dtype(compute_dtype(self.run.dtype, self.checkpoint.main_dtype, device))
