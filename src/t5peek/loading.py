"""Resolve MODEL (bundled demo, local folder, Hub id) and load the least a command needs.

Levels, cheapest first:
  read_config      config.json as a dict (no torch, no transformers)
  read_checkpoint  safetensors headers: names, shapes, dtypes (no torch)
  build_meta_model the module tree on the meta device (torch + transformers, no weights)
  load_model       real weights and tokenizer
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from t5peek import anatomy, dtypes, families, hub, names, nan_weights, placement
from t5peek.checkpoint import CheckpointIndex, checkpoint_from_hub, read_local_checkpoint, weights_present
from t5peek.errors import BadCheckpoint, ModelNotFound, Refused, T5PeekError, UnsupportedModel, UsageError
from t5peek.checkpoint import same_stored_values

# transformers may otherwise open a background request offering to convert pickle weights.
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")

DEMO_NAME = "demo"
DEMO_FOLDER = Path(__file__).parent / "demo"
DEFAULT_MODEL = "google/flan-t5-base"

_SMALL_PATTERNS = ["*.json", "*.model", "*.txt", "tokenizer*", "spiece.model", "*.spm"]
_WEIGHT_PATTERNS = _SMALL_PATTERNS + ["*.safetensors"]
_PICKLE_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "source.spm",
                    "vocab.txt", "tokenizer_config.json")


@dataclass(frozen=True)
class ResolvedModel:
    """Where MODEL was found. `folder` holds config.json (a snapshot folder for Hub models)."""

    name: str
    source: str  # "bundled demo", "local folder", "Hub cache", "Hub"
    folder: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    offline: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The folder files may live under: the repo's cache folder for Hub snapshots (their files are links)."""
        if self.source in ("Hub", "Hub cache"):
            return self.folder.parent.parent
        return self.folder


def resolve_model(name: str, revision: str | None = None, offline: bool = False,
                  refresh: bool = False) -> ResolvedModel:
    """Find the folder that holds MODEL's config.json; for a Hub id, the cache first, else config.json only."""
    if not name or not name.strip():
        raise UsageError("The model name is empty.",
                         hint="Give a Hub id (org/name), a model folder, or 'demo' for the bundled model.")
    if name == DEMO_NAME:
        if not (DEMO_FOLDER / "config.json").is_file():
            raise ModelNotFound("The bundled demo model is missing from this installation.",
                                hint="Reinstall t5peek.")
        return ResolvedModel(name, "bundled demo", DEMO_FOLDER)
    path, kind = names.on_disk(name)
    if kind == names.FOLDER:
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"The folder '{names.shown(name)}' has no config.json: it is not a transformers "
                                "model.")
        return ResolvedModel(name, "local folder", path, warnings=names.shadowing(name, path))
    if kind == names.FILE:
        raise UsageError(f"'{names.shown(name)}' is a file; MODEL must be a model folder or a Hub id.")
    if names.looks_like_path(name):
        if kind == names.TOO_LONG:
            raise UsageError(f"'{names.shown(name)}' is too long for a path on this system.")
        raise ModelNotFound(f"The folder '{names.shown(name)}' does not exist.")
    offline = hub.offline_requested(offline)
    if offline:
        hub.go_offline()
    try:
        found = hub.fetch_config(name, revision, offline, refresh)
    except T5PeekError as exc:
        names.quote_short(exc, name)
        raise
    offline = offline or hub.offline_requested()
    return ResolvedModel(name, "Hub cache" if found.from_cache else "Hub", found.folder, name, revision,
                         found.commit, offline, (found.warning,) if found.warning else ())


def read_config(resolved: ResolvedModel) -> dict:
    """config.json as a dict, refusing remote code and models that are not encoder-decoders."""
    path = resolved.folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadCheckpoint(f"config.json of '{resolved.name}' is not valid JSON (line {exc.lineno}: "
                            f"{exc.msg}).") from None
    except UnicodeDecodeError:
        raise BadCheckpoint(f"config.json of '{resolved.name}' is not UTF-8 text.") from None
    if not isinstance(raw, dict):
        raise BadCheckpoint(f"config.json of '{resolved.name}' is not a JSON object.")
    if "auto_map" in raw:
        raise Refused(f"'{resolved.name}' asks to run its own Python code (auto_map in config.json); "
                      "t5peek never runs remote code.")
    check_encoder_decoder(raw, resolved.name)
    anatomy.check_sizes(raw, resolved.name)
    return raw


def check_encoder_decoder(raw: dict, name: str) -> None:
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise UnsupportedModel(f"config.json of '{name}' has no model_type.")
    if families.family(model_type) is not None:
        return
    # Unusual types need transformers' own registry: slower, but only on this path.
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise UnsupportedModel(f"Unknown model_type '{model_type}' in '{name}': this transformers version "
                               "does not know it.", hint="Upgrade transformers, or check config.json.")
    if model_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES or raw.get("is_encoder_decoder") is False:
        raise UnsupportedModel(f"'{name}' is a {model_type} model, which is decoder-only or has no text "
                               "encoder-decoder head; t5peek inspects encoder-decoder models (T5, BART, ...).")


def read_checkpoint(resolved: ResolvedModel) -> CheckpointIndex:
    """The stored tensors, from headers only. For Hub models not yet downloaded, asks the Hub for headers."""
    if resolved.repo_id is None or weights_present(resolved.folder):
        return read_local_checkpoint(resolved.folder, resolved.root)
    nothing = CheckpointIndex("none", (), {}, "local", resolved.folder)
    if resolved.offline:
        return nothing
    metadata = hub.fetch_headers(resolved.repo_id, resolved.commit, resolved.revision)
    return checkpoint_from_hub(metadata) if metadata is not None else nothing


def _has_tokenizer(folder: Path) -> bool:
    """Whether `folder` holds a file a tokenizer can be read from: enough offline, where nothing better can be
    had; online, hub.fetch_snapshot also wants every tokenizer file the repo lists."""
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def download_tokenizer(resolved: ResolvedModel) -> ResolvedModel:
    """Fetch the tokenizer and the small JSON files (no weights) of a Hub model: those of the repo's files that are
    not in the cache yet (none, once they all are)."""
    if resolved.repo_id is None:
        return resolved
    folder = hub.fetch_snapshot(resolved.repo_id, resolved.revision, resolved.folder, _SMALL_PATTERNS,
                                _has_tokenizer, "tokenizer files")
    return replace(resolved, folder=folder)


def download_weights(resolved: ResolvedModel, allow_pickle: bool) -> ResolvedModel:
    """Fetch what full loading needs (weights, tokenizer, generation config) for Hub models: those of the repo's
    files that are not in the cache yet."""
    if resolved.repo_id is None:
        return resolved

    def usable(folder: Path) -> bool:
        try:
            stored = read_local_checkpoint(folder, resolved.root)
        except T5PeekError:
            return False
        loadable = stored.format == "safetensors" or (allow_pickle and stored.format == "pickle")
        return loadable and _has_tokenizer(folder)

    patterns = _WEIGHT_PATTERNS + (_PICKLE_PATTERNS if allow_pickle else [])
    folder = hub.fetch_snapshot(resolved.repo_id, resolved.revision, resolved.folder, patterns, usable, "weights")
    return replace(resolved, folder=folder)


# ---------------------------------------------------------------- torch level


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but CUDA is not available on this machine.",
                         hint="Use --device cpu (or auto).")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps was asked for, but Apple's MPS is not available on this machine.")
    return device


def resolve_dtype(dtype: str, device: str, checkpoint: CheckpointIndex | None, warn) -> "object":
    """The torch dtype to load with. auto keeps the stored dtype, except half precision on the CPU."""
    if dtype == "float16" and device == "cpu":
        warn("float16 on the CPU is slow and T5 overflows in it; computing in float16 as asked.")
    return dtypes.torch_dtype(dtypes.compute_dtype(dtype, checkpoint.main_dtype if checkpoint else None, device))


def transformers_config(resolved: ResolvedModel):
    """transformers' config object for MODEL (never with remote code)."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(resolved.folder), trust_remote_code=False)
    except (ValueError, KeyError, TypeError, OSError, StrictDataclassError) as exc:
        raise BadCheckpoint(f"transformers cannot read the config of '{resolved.name}': {one_line(exc)}") from exc
    return config


def one_line(exc: BaseException, most: int = 200) -> str:
    """A library's message in one line: its first, and the next too where the first only announces it (as
    transformers' strict config checks do: "Validation error for field 'x':")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text if len(text) <= most else text[:most] + "…"


def untied_names(raw_config: dict, checkpoint: CheckpointIndex, tied: dict[str, str]) -> set[str]:
    """Tied targets that the checkpoint stores with their own values, which transformers keeps apart."""
    untied = set()
    for target, source in tied.items():
        if target in checkpoint.tensors and source in checkpoint.tensors:
            if target.endswith("lm_head.weight") and anatomy.head_declared_untied(raw_config):
                untied.add(target)
            elif same_stored_values(checkpoint, target, source) is False:
                untied.add(target)
    return untied


def build_meta_model(resolved: ResolvedModel, raw_config: dict, checkpoint: CheckpointIndex | None):
    """The full seq2seq LM on the meta device (no memory for weights), untied where the checkpoint is."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    quiet_libraries()
    config = transformers_config(resolved)
    try:
        with torch.device("meta"):
            model = AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=False)
    except ValueError as exc:
        raise UnsupportedModel(f"transformers has no sequence-to-sequence LM for '{resolved.name}': "
                               f"{str(exc).splitlines()[0]}") from exc
    tied = dict(getattr(model, "all_tied_weights_keys", {}) or {})
    if checkpoint is not None and checkpoint.tensors:
        untie = untied_names(raw_config, checkpoint, tied)
    else:
        # No header to look at: follow config.json itself (transformers 5 forces tying in T5Config).
        untie = {t for t in tied if t.endswith("lm_head.weight")} if anatomy.head_declared_untied(raw_config) else set()
    for target in untie:
        module_name, _, param_name = target.rpartition(".")
        module = model.get_submodule(module_name)
        old = getattr(module, param_name)
        setattr(module, param_name, torch.nn.Parameter(torch.empty_like(old, device="meta")))
    model.eval()
    return model


@dataclass
class LoadedModel:
    """A model with real weights, ready to run."""

    resolved: ResolvedModel
    raw_config: dict
    checkpoint: CheckpointIndex
    model: object
    tokenizer: object
    device: str
    dtype: object


def load_model(resolved: ResolvedModel, *, device: str = "cpu", dtype: str = "auto", allow_pickle: bool = False,
               eager_attention: bool = False, with_tokenizer: bool = True, force: bool = False,
               device_map: str | None = None, max_memory: dict | None = None,
               warn=lambda message: None, run_peak: int | None = None, run_what: str = "") -> LoadedModel:
    """Load weights (safetensors unless --allow-pickle) and the tokenizer, refusing partial checkpoints.

    With `device_map`/`max_memory`, accelerate's big-model loading splits the model over GPUs, the CPU and
    disk offload (in a temporary folder removed at exit). `run_peak` (bytes, weights included) is what the run
    about to start needs at its peak, described by `run_what`: the memory check counts it when it is larger.
    """
    quiet_libraries()
    raw_config = read_config(resolved)
    device = resolve_device(device)
    big_model = placement.device_map_kwargs(device_map, max_memory, _offload_folder)
    headers = read_checkpoint(resolved)  # before any download: enough to check memory
    if not force and headers.tensors and not big_model:
        torch_dtype = resolve_dtype(dtype, device, headers, lambda _message: None)
        placement.check_memory(resolved.name, headers, torch_dtype, device, run_peak, run_what)
    resolved = download_weights(resolved, allow_pickle)
    checkpoint = read_local_checkpoint(resolved.folder, resolved.root)
    pickles = list(checkpoint.files) if checkpoint.format == "pickle" else []
    if checkpoint.format == "none":
        pickles = _pickles_on_hub(resolved)  # listed on the Hub, left there without --allow-pickle
    if pickles and not allow_pickle:
        raise Refused(f"'{resolved.name}' has only pickle weights ({pickles[0]}), which can run code "
                      "when loaded; refusing.", hint="Pass --allow-pickle to read them with torch's "
                      "weights_only loader, which refuses code.")
    if checkpoint.format == "none":
        raise BadCheckpoint(f"'{resolved.name}' has no weights (no model.safetensors).")
    torch_dtype = resolve_dtype(dtype, device, checkpoint, warn)
    model = _from_pretrained(resolved, checkpoint, torch_dtype, eager_attention, big_model)
    if big_model:
        device = str(next(iter(model.get_encoder().parameters())).device)
        device = "cpu" if device == "meta" else device
        _warn_disk_offload(model, warn)
    elif device != "cpu":
        model.to(device)
    if checkpoint.format == "safetensors":
        nan_weights.check_stored(resolved.name, checkpoint)
    else:
        nan_weights.check_loaded(resolved.name, model)
    tokenizer = load_tokenizer(resolved) if with_tokenizer else None
    return LoadedModel(resolved, raw_config, checkpoint, model, tokenizer, device, torch_dtype)


def _pickles_on_hub(resolved: ResolvedModel) -> list[str]:
    """The pickle weights a Hub repo lists, which are not downloaded without --allow-pickle."""
    if resolved.repo_id is None:
        return []
    files = hub.listed_files(resolved.repo_id, resolved.commit or resolved.folder.name) or []
    return [name for name in files if any(fnmatch.fnmatch(name, pattern) for pattern in _PICKLE_PATTERNS)
            and name.endswith(".bin")]


def _warn_disk_offload(model, warn) -> None:
    """accelerate's log line about offloaded weights, in t5peek's words (and only for the disk, which is slow)."""
    on_disk = [module for module, device in (getattr(model, "hf_device_map", None) or {}).items()
               if str(device) == "disk"]
    if on_disk:
        shown = ", ".join(name or "the whole model" for name in on_disk[:3]) + (" ..." if len(on_disk) > 3 else "")
        warn(f"what does not fit in --max-memory is offloaded to disk ({shown}); every forward pass reads it back "
             "from a temporary folder, which is slow.")


def _offload_folder() -> str:
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="t5peek-offload-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _from_pretrained(resolved: ResolvedModel, checkpoint: CheckpointIndex, torch_dtype, eager_attention: bool,
                     big_model: dict | None = None):
    import pickle

    from transformers import AutoModelForSeq2SeqLM

    kwargs = dict(trust_remote_code=False, dtype=torch_dtype, use_safetensors=checkpoint.format == "safetensors",
                  weights_only=True, output_loading_info=True, **(big_model or {}))
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    try:
        model, info = AutoModelForSeq2SeqLM.from_pretrained(str(resolved.folder), **kwargs)
    except pickle.UnpicklingError as exc:
        raise Refused(f"The pickle weights of '{resolved.name}' hold more than tensors (code or objects); "
                      "refusing to load them.") from exc
    except T5PeekError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Weights only load failed" in str(exc) or "UnpicklingError" in str(exc):
            raise Refused(f"The pickle weights of '{resolved.name}' hold more than tensors (code or objects); "
                          "refusing to load them.") from exc
        raise BadCheckpoint(f"transformers could not load the weights of '{resolved.name}': {message}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BadCheckpoint(f"The checkpoint of '{resolved.name}' lacks {len(missing)} weights, which would stay "
                            f"random: {shown}.")
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise BadCheckpoint(f"The checkpoint of '{resolved.name}' has {len(mismatched)} weights whose shapes "
                            f"do not match its config, e.g. {list(mismatched)[0]}.")
    model.eval()
    return model


def load_tokenizer(resolved: ResolvedModel):
    from transformers import AutoTokenizer

    if not any((resolved.folder / name).is_file() for name in _TOKENIZER_FILES):
        raise BadCheckpoint(f"'{resolved.name}' has no tokenizer files ({', '.join(_TOKENIZER_FILES[:4])}, …): "
                            "without its own tokenizer, text cannot become the ids the model was trained on.")
    from huggingface_hub.errors import StrictDataclassError

    try:
        return AutoTokenizer.from_pretrained(str(resolved.folder), trust_remote_code=False)
    except StrictDataclassError as exc:  # the tokenizer reads config.json, and transformers refuses it
        raise BadCheckpoint(f"transformers cannot read the config of '{resolved.name}': {one_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - any tokenizer failure is one message
        raise BadCheckpoint(f"The tokenizer of '{resolved.name}' cannot be loaded: {one_line(exc)}") from exc


def quiet_libraries() -> None:
    """Silence transformers' and huggingface_hub's own progress bars and warnings; t5peek reports itself."""
    hub.quiet()
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
