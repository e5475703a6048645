"""`trace` for one Session: tokenize and check lengths, load the weights, run under hooks, add the notes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from t5peek import seq2seq
from t5peek.errors import UsageError
from t5peek.session import RunShape, Session
from t5peek.trace.views import trace_forward
from t5peek.trace.compare import check_family, compare_runs

DEFAULT_STEPS = 3
EAGER_NOTE = ("attention was loaded in eager mode (attn_implementation='eager') so that attention weights exist; "
              "sdpa or flash attention compute the same result without them.")
TIMES_NOTE = ("times are the wall clock of this one pass, cold: the first call of a module includes one-time work "
              "(allocations, kernel choices), so block 0 and step 0 read slower than the identical ones after them; "
              "compare shapes, not times, between runs.")
GREEDY_NOTE = ("greedy = the highest-scoring token at each step, from the raw logits (generate() may also apply "
               "forced or banned tokens from the generation config).")


@dataclass(frozen=True)
class TraceRequest:
    """What the user asked for; a request that exists is a valid one, for the CLI and the API alike."""

    prompt: str
    target: str | None = None  # teacher forcing instead of generation
    steps: int | None = None  # generation steps; None: DEFAULT_STEPS
    depth: int | None = None  # None: the block view
    stats: bool = False
    explain: bool = False
    compare: bool = False  # with target: teacher forcing against cached steps and free-running greedy
    global_attention_mask: Any = field(default=None, compare=False)  # LED only: [1, S], tokens with global attention

    def __post_init__(self) -> None:
        check_arguments(self.prompt, self.target, self.depth, self.steps, self.compare)
        if self.compare and self.global_attention_mask is not None:
            raise UsageError("compare does not take a global_attention_mask: its free-running greedy runs as "
                             "model.generate() does, without one.")


def check_arguments(prompt: str, target: str | None, depth: int | None, steps: int | None,
                    compare: bool = False) -> None:
    """Usage errors that need nothing but the arguments themselves."""
    seq2seq.check_text(prompt, "PROMPT")
    seq2seq.check_text(target, "--target")
    if steps is not None and steps > 0:
        seq2seq.check_bounded(steps, "--steps", 1, seq2seq.MAX_TRACE_STEPS, "; each step records every module")
    if not prompt or not prompt.strip():
        raise UsageError("PROMPT is empty; give the text to trace, e.g. t5peek trace \"the house is small\".")
    if target is not None and not target.strip():
        raise UsageError("--target is empty; give the target text, or leave --target out for generation.")
    if compare and target is None:
        raise UsageError("--compare needs --target: it sets teacher forcing against generation on the same "
                         "target, e.g. --target \"das Haus ist klein\".")
    if depth is not None and depth < 0:
        raise UsageError(f"--depth must be 0 or more (got {depth}); 0 is the model itself.")
    if steps is not None and target is not None:
        raise UsageError("--steps counts generation steps; with --target the decoder reads the whole target at "
                         "once, so give one or the other.")


def run_trace(session: Session, request: TraceRequest):
    """The TraceReport of the request: the tokenizer and length checks come before any weight is loaded."""
    prompt, target, depth, stats, compare = request.prompt, request.target, request.depth, request.stats, \
        request.compare
    global_attention_mask = request.global_attention_mask
    steps = DEFAULT_STEPS if request.steps is None else request.steps
    session.require("trace")
    if compare:
        check_family(session.model_type, session.name)
    input_ids, attention_mask, labels = seq2seq.encode(session, prompt, target, steps, "--steps")
    new_tokens = steps if labels is None else labels.shape[-1]
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], new_tokens))
    device = loaded.device
    if global_attention_mask is not None:
        global_attention_mask = global_attention_mask.to(device)
    with session.progress("Running the model under hooks…"):
        report = trace_forward(loaded.model, input_ids.to(device), attention_mask.to(device), depth=depth,
                               target_ids=None if labels is None else labels.to(device), steps=steps, stats=stats,
                               tokenizer=session.tokenizer, model_name=session.name, prompt=prompt, target=target,
                               explain=request.explain, global_attention_mask=global_attention_mask)
    comparison = None
    if compare:
        with session.progress("Comparing teacher forcing with cached steps and free-running greedy…"):
            comparison = compare_runs(loaded.model, session.tokenizer, input_ids.to(device),
                                      attention_mask.to(device), labels.to(device))
    return replace(report, notes=_notes(loaded, report, stats) + report.notes, comparison=comparison)


def _notes(loaded, report, stats: bool) -> tuple[str, ...]:
    notes = [EAGER_NOTE, TIMES_NOTE]
    if loaded.device != "cpu" and not stats:
        notes.append(f"times on {loaded.device} are host-side: kernels run asynchronously and the trace does not "
                     "wait for them.")
    split = getattr(loaded.model, "hf_device_map", None)
    if split and (len(set(split.values())) > 1 or "disk" in split.values()):
        by_device: dict[str, list[str]] = {}
        for module_name, where in split.items():
            by_device.setdefault(str(where), []).append(module_name or "the whole model")
        notes.append("split by accelerate: " + "; ".join(f"{where}: {', '.join(names)}"
                                                         for where, names in by_device.items())
                     + ". Offloaded modules run on the CPU, their weights brought in as they run.")
    if report.view == "generation":
        notes.append(GREEDY_NOTE)
    return tuple(notes)
