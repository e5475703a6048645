"""The Python API: `t5peek.Model` returns the same records the CLI renders.

    >>> import t5peek
    >>> demo = t5peek.Model("demo")
    >>> demo.params().total
    1470976
    >>> run = demo.generate("translate English to Spanish: the red house is small", max_new_tokens=8)
    >>> run.output_text

In Jupyter each record displays itself as the CLI would draw it. Errors are `t5peek.T5PeekError`
subclasses with a one-line `.message` and an `.exit_code`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from t5peek import arch, info, params, seq2seq
from t5peek.errors import UsageError
from t5peek.loading import DEFAULT_MODEL
from t5peek.placement import normalize_max_memory
from t5peek.session import RunOptions, Session, SourceOptions
from t5peek.render.notebook import register_if_in_ipython
from t5peek.trace.run import TraceRequest, run_trace
from t5peek.generate.run import GenerateRequest, parse_force, run_generate
from t5peek.budget.report import request_from
from t5peek.budget.run import run_budget
from t5peek.attend.run import AttendRequest, run_attend
from t5peek.lens.run import LensRequest, run_lens
from t5peek.interventions.knockout import KnockoutRequest, parse_head, run_knockout
from t5peek.interventions.patch import PatchRequest, run_patch
from t5peek.attribution.run import DEFAULT_STEPS, AttributeRequest, run_attribute

VIEWS = ("component", "layer", "type")  # the breakdowns params() offers


class Model:
    """One encoder-decoder model: a Hub id, a local folder, or "demo" (bundled, offline).

    Options are those of the CLI: `revision`, `offline`, `refresh` say where the model comes from;
    `device`, `dtype`, `allow_pickle`, `force`, `device_map`, `max_memory` (e.g. {"cpu": "30GB", 0: "10GiB"})
    say how weights are loaded. Each file is read once, the first time a method needs it.
    """

    def __init__(self, name: str = DEFAULT_MODEL, *, revision: str | None = None, offline: bool = False,
                 refresh: bool = False, device: str = "cpu", dtype: str = "auto", allow_pickle: bool = False,
                 force: bool = False, device_map: str | None = None, max_memory: dict | None = None,
                 warn: Callable[[str], None] | None = None, progress=None):
        self.session = Session(SourceOptions(name, revision, offline, refresh),
                               RunOptions(device, dtype, allow_pickle, force, device_map,
                                          normalize_max_memory(max_memory)),
                               warn=warn or _warn_once)
        if progress is not None:
            self.session.progress = progress

        register_if_in_ipython()

    def __repr__(self) -> str:
        return f"t5peek.Model({self.session.name!r})"

    @property
    def name(self) -> str:
        return self.session.name

    # ------------------------------------------------------------------ headers only

    def info(self, plan_memory: dict | None = None) -> info.ModelInfo:
        """A one-screen summary from config.json and the safetensors headers (no weights)."""
        s = self.session
        resolved, config, checkpoint = s.resolved, s.config, s.checkpoint  # their errors are the command's errors
        total, note = info.total_of(lambda: self._count("component"))
        record = info.summarize(resolved, config, checkpoint, total, note)
        if plan_memory:
            record = replace(record, placement=s.plan_split(normalize_max_memory(plan_memory)))
        return record

    def params(self, by: str = "component", weights: bool = False,
               plan_memory: dict | None = None) -> params.ParamReport:
        """Exact parameter counts, broken down `by` component, layer or type; tied weights count once."""
        if by not in VIEWS:
            raise UsageError(f"by must be one of {', '.join(VIEWS)} (got {by!r}).")
        loaded = self.session.weights(eager_attention=False).model if weights else None
        report = self._count(by, loaded)
        if plan_memory:
            report = replace(report, placement=self.session.plan_split(normalize_max_memory(plan_memory)))
        return report

    def _count(self, by: str, loaded=None) -> params.ParamReport:
        s = self.session
        return params.count(s.name, s.config, s.checkpoint, by, lambda: s.meta_model, loaded)

    def arch(self, depth: int | None = None, expand: bool = False) -> arch.ArchReport:
        """The module tree on the meta device, identical consecutive blocks collapsed (`expand` keeps them)."""
        if depth is not None and depth < 0:
            raise UsageError(f"depth must be 0 or more (got {depth}).")
        s = self.session
        notes = () if s.checkpoint.tensors else (
            "no safetensors header could be read: the tree follows config.json alone, its tie_word_embeddings "
            "included",)
        return arch.describe(s.meta_model, s.name, depth, expand, notes)

    # ------------------------------------------------------------------ weights

    def trace(self, prompt: str, target: str | None = None, steps: int | None = None, depth: int | None = None,
              stats: bool = False, explain: bool = False, global_attention_mask=None, compare: bool = False):
        """Run `prompt` under hooks: every module's shapes, in generation (`steps`, 3 by default) or teacher
        forcing (`target`). `global_attention_mask` (LED only, shape [1, S]) gives tokens global attention.
        `compare` (with `target`; T5 and BART families) adds `.comparison`: teacher-forced logits against cached
        steps fed the same tokens, free-running greedy with its first departure from the target, the causal mask."""
        return self.run(TraceRequest(prompt, target, steps, depth, stats, explain, compare, global_attention_mask))

    def generate(self, prompt: str, *, max_new_tokens: int | None = None, num_beams: int | None = None,
                 sample: bool | None = None, temperature: float | None = None, top_p: float | None = None,
                 seed: int | None = None, top_k: int = 5, layer: int | None = None, keep_heads: bool = False,
                 task_params: bool = False, self_attention: bool = False, occlusion: bool = False,
                 force: tuple[int, str] | str | None = None, on_start: Callable | None = None,
                 on_step: Callable | None = None):
        """Decode `prompt` step by step; ids and scores equal `model.generate()` with the same settings.

        Like `model.generate()`, the config's task_specific_params are left out; `task_params=True` applies the
        settings of the task whose prefix `prompt` starts with, as `model.generate(**those_settings)` would.
        `self_attention=True` also records the encoder's and the decoder's self-attention at `layer`;
        `occlusion=True` re-scores the output with each source token replaced by the pad token (`run.occlusion`).
        `force=(step, token)` (or "STEP=TOKEN"; token a vocabulary string or "#ID") puts the token in at that step
        and decodes on: the run is the branch, `run.original_ids` the run without it.
        `on_start(plan)` and `on_step(step)` are called as decoding goes (the CLI streams with them).
        """
        if isinstance(force, str):
            force = parse_force(force)
        request = GenerateRequest(prompt, max_new_tokens, num_beams, sample, temperature, top_p, seed, top_k,
                                  layer, keep_heads, task_params, self_attention, occlusion, force)
        return self.run(request, on_start=on_start, on_step=on_step)

    def lens(self, prompt: str, *, target: str | None = None, max_new_tokens: int | None = None, top_k: int = 3,
             heads: bool = False, watch: tuple[str, ...] = (), encoder_layer: int | None = None):
        """The logit lens and direct logit attribution of every decoder depth at every step: greedy generation
        (`max_new_tokens`, 8 by default), or teacher forcing of `target`. `heads` splits each attention depth's
        push over heads and keys; `watch` follows rival tokens ("casa", "#42") at every depth; `encoder_layer`
        lets the decoder read that encoder layer's output (DecoderLens). Returns a `t5peek.lens.LensRun`."""
        return self.run(LensRequest(prompt, target, max_new_tokens, top_k, heads, tuple(watch), encoder_layer))

    def attend(self, prompt: str, *, layer: int | None = None, head: int = 0, step: int | None = None,
               cross: bool | None = None, encoder: bool = False, query: int | None = None):
        """One attention head, in numbers, recomputed from the module's weights and checked against it.

        The decoder runs greedily to `step` (0 reads the start token) and the query is that decoder position,
        attending to the source (`cross`, the default) or to decoder positions 0..step (`cross=False`);
        `encoder=True` shows encoder self-attention at source position `query`. `layer` defaults to the last.
        """
        request = AttendRequest(prompt, layer=layer, head=head, step=step, cross=cross, encoder=encoder,
                                query=query)
        return self.run(request)

    def patch(self, prompt: str, *, corrupt: str | None = None, noise: tuple[int, int] | None = None,
              position: int = 0, metric: str = "logit", seed: int | None = None,
              max_new_tokens: int | None = None):
        """Activation patching of decoder `position`: the corrupted run reads `corrupt` (as many tokens as
        `prompt`) or `prompt` with Gaussian noise on source tokens noise[0]..noise[1]-1, teacher-forced on the
        clean greedy output; every site is restored alone from the clean run. Returns a
        `t5peek.interventions.records.PatchRun`."""
        return self.run(PatchRequest(prompt, corrupt, noise, position, metric, seed, max_new_tokens))

    def knockout(self, prompt: str, heads=(), *, mode: str = "zero", sweep: str | None = None,
                 max_new_tokens: int | None = None):
        """Attention heads knocked out (`heads`: "KIND:L.H" strings such as "cross:2.3", or KnockedHead): the
        original greedy output's logits with and without them, and the output decoded with them knocked out;
        `sweep="cross"` knocks out every cross-attention head alone. Returns a
        `t5peek.interventions.records.KnockoutRun`."""
        parsed = tuple(parse_head(head) if isinstance(head, str) else head for head in heads)
        return self.run(KnockoutRequest(prompt, parsed, mode, max_new_tokens, sweep))

    def attribute(self, prompt: str, *, position: int = 0, contrast: str | None = None, steps: int | None = None,
                  max_new_tokens: int | None = None):
        """Integrated gradients of decoder `position`'s score (the greedy token's logit, minus `contrast`'s: a
        vocabulary string or "#ID") over the source token embeddings and over the decoder's tokens 0..position,
        against pad-token embeddings, with the same position's cross-attention and occlusion drops. Returns a
        `t5peek.attribution.records.AttributionRun`."""
        return self.run(AttributeRequest(prompt, position, contrast, steps or DEFAULT_STEPS, max_new_tokens))

    def budget(self, *, batch: int = 1, source: int = 512, target: int = 128, mode: str = "generate",
               num_beams: int = 1, optimizer: str = "adamw", gradient_checkpointing: bool = False,
               device: str | None = None, plan_memory: dict | None = None):
        """Memory and FLOPs of generate() (`mode="generate"`) or of one training step (`mode="train"`), from
        config.json and the safetensors headers only; every byte and FLOP is an integer in the returned rows."""
        request = request_from(batch, source, target, mode, num_beams, optimizer, gradient_checkpointing,
                               self.session.run.dtype, device or "cpu")
        return run_budget(self.session, request, normalize_max_memory(plan_memory))

    def run(self, request, on_start: Callable | None = None, on_step: Callable | None = None,
            progress_steps: bool | None = None):
        """The record of one view's request (a GenerateRequest, TraceRequest, LensRequest, AttendRequest,
        PatchRequest, KnockoutRequest or AttributeRequest, valid
        by construction): the path the CLI takes. `on_start` and `on_step` stream generate's plan and steps;
        `progress_steps` shows the step reached on the progress line too (default: without `on_step`)."""
        if isinstance(request, GenerateRequest):
            return run_generate(self.session, request, on_start=on_start, on_step=on_step,
                                progress_steps=progress_steps)
        runs = {TraceRequest: run_trace, LensRequest: run_lens, AttendRequest: run_attend, PatchRequest: run_patch,
                KnockoutRequest: run_knockout, AttributeRequest: run_attribute}
        if type(request) not in runs:
            raise TypeError(f"Model.run takes a view's request, not {type(request).__name__}")
        return runs[type(request)](self.session, request)

    def tokens(self, text: str) -> tuple[str, ...]:
        """How the model's tokenizer splits `text`."""
        tokenizer = self.session.tokenizer
        return seq2seq.token_strings(tokenizer, tokenizer(text)["input_ids"])


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    import warnings

    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)
