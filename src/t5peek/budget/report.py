"""Build the budget of one model for one request: every row from the shape, the request and the memory available.

Nothing here imports torch unless --device cuda asks how much GPU memory is free.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import families, seq2seq
from t5peek.budget import activations, flops, inference, training
from t5peek.budget.records import BudgetReport, BudgetRow, Group
from t5peek.kinds import Mode, Optimizer
from t5peek.budget.shapes import T5_STYLE, ModelShape, active_parameters
from t5peek.dtypes import ELEMENT_BYTES, compute_dtype
from t5peek.errors import UsageError

MAX_BATCH = 65536


@dataclass(frozen=True)
class BudgetRequest:
    batch: int = 1
    source: int = 512
    target: int = 128
    mode: Mode = Mode.generate
    num_beams: int = 1
    optimizer: Optimizer = Optimizer.adamw
    gradient_checkpointing: bool = False
    dtype: str = "auto"
    device: str = "cpu"


DEVICES = ("cpu", "cuda")


def request_from(batch: int, source: int, target: int, mode: str, num_beams: int, optimizer: str,
                 gradient_checkpointing: bool, dtype: str, device: str) -> BudgetRequest:
    """The request the Python API's plain strings name, each choice checked against what budget knows."""
    choices = {"mode": ([m.value for m in Mode], mode), "optimizer": ([o.value for o in Optimizer], optimizer),
               "device": (list(DEVICES), device)}
    for option, (allowed, value) in choices.items():
        if value not in allowed:
            raise UsageError(f"{option} must be one of {', '.join(allowed)} (got {value!r}).")
    return BudgetRequest(batch, source, target, Mode(mode), num_beams, Optimizer(optimizer),
                         gradient_checkpointing, dtype, device)


def check_request(request: BudgetRequest, raw: dict, name: str) -> None:
    """Usage errors before anything is computed: bounded sizes, and positions a learned table holds."""
    seq2seq.check_bounded(request.batch, "--batch", 1, MAX_BATCH)
    seq2seq.check_bounded(request.source, "--source", 1, seq2seq.MAX_SOURCE_TOKENS)
    seq2seq.check_bounded(request.target, "--target", 1, seq2seq.MAX_NEW_TOKENS)
    seq2seq.check_bounded(request.num_beams, "--num-beams", 1, seq2seq.MAX_BEAMS)
    if request.num_beams > 1 and request.mode == Mode.train:
        raise UsageError("--num-beams applies to --mode generate; a training step has no beams.")
    for limit, needed, option in ((seq2seq.encoder_limit(raw), request.source, "--source"),
                                  (seq2seq.decoder_limit(raw), request.target + 1, "--target")):
        if limit.hard and limit.positions is not None and needed > limit.positions:
            raise UsageError(f"{option} {needed - (option == '--target'):,} needs {needed:,} positions; '{name}' "
                             f"reads at most {limit.positions:,} ({limit.source}).")


def _names(shape: ModelShape) -> dict[str, str]:
    """Short names of the modules each row comes from (T5's, or BART's for the other layouts)."""
    if shape.style == T5_STYLE:
        return {"enc": "encoder.block", "dec": "decoder.block", "cross": "EncDecAttention",
                "self": "SelfAttention", "out": "encoder final norm", "head": "lm_head",
                "emb": "embeddings, norms, loss"}
    return {"enc": "encoder.layers", "dec": "decoder.layers", "cross": "encoder_attn", "self": "self_attn",
            "out": "encoder last layer", "head": "lm_head", "emb": "embeddings, norms, loss"}


def weights_rows(shape: ModelShape, stored: int | None, stored_dtype: str | None, dtype: str,
                 element: int) -> list[BudgetRow]:
    rows = []
    if stored is not None:
        rows.append(BudgetRow(Group.weights, "weights_stored", f"as stored ({stored_dtype})",
                              "safetensors headers", "every tensor", stored))
    rows.append(BudgetRow(Group.weights, "weights", f"in {dtype}", f"{shape.parameters:,} params × {element}",
                          "tied ones once", shape.parameters * element))
    if shape.experts:
        active = active_parameters(shape)
        rows.append(BudgetRow(Group.weights, "active_weights", "active per token",
                              f"{active:,} params: {shape.experts_per_token} of {shape.experts} experts",
                              "router picks per token", active * element))
    return rows


def inference_rows(shape: ModelShape, request: BudgetRequest, memory: inference.InferenceBudget) -> list[BudgetRow]:
    names, b, k = _names(shape), request.batch, request.num_beams
    rows_label = f"{b}·{k}" if k > 1 else f"{b}"
    layers, heads, kv = shape.decoder_layers, shape.decoder_heads, shape.d_kv
    cache = f"2 × {layers} × {rows_label} × {heads} × {kv}"
    inf = Group.inference
    return [
        BudgetRow(inf, "encoder_output", "encoder output", f"{rows_label} × {request.source} × {shape.d_model}",
                  names["out"], memory.encoder_output),
        BudgetRow(inf, "cross_attention_cache", "cross-attention cache (once)", f"{cache} × S={request.source}",
                  names["cross"], memory.cross_cache),
        BudgetRow(inf, "self_attention_cache", f"self-attention cache at T={request.target}",
                  f"{cache} × T={request.target}", names["self"], memory.self_cache),
        BudgetRow(inf, "self_attention_cache_per_token", "  grows per token by", cache, names["self"],
                  memory.self_cache_per_token),
        BudgetRow(inf, "encoder_peak", "encoder pass peak (one layer)", "scores, q k v, feed-forward",
                  names["enc"], memory.encoder_peak),
        BudgetRow(inf, "decoder_step_peak", "decoder step peak (one layer)", "one token's attention, FF",
                  names["dec"], memory.decoder_step_peak),
        BudgetRow(inf, "logits", "logits buffer", f"{rows_label} × {shape.vocab:,} (+ float32 copy)", names["head"],
                  memory.logits),
        BudgetRow(inf, "inference_peak", "peak of generate()", "weights + max(encoder, decoding)", "",
                  memory.peak, total=True),
    ]


def training_rows(shape: ModelShape, request: BudgetRequest, saved: activations.ActivationBudget,
                  state: training.TrainingState, peak: int) -> list[BudgetRow]:
    names, ft, ck = _names(shape), Group.fine_tuning, request.gradient_checkpointing
    enc_block = saved.checkpointed_encoder_block if ck else saved.encoder_block
    dec_block = saved.checkpointed_decoder_block if ck else saved.decoder_block
    kept = "block input only" if ck else "per block"
    master = [BudgetRow(ft, "master_weights", "float32 master weights", f"{shape.trainable:,} × 4",
                        "mixed precision", state.master_weights)] if state.master_weights else []
    return [
        BudgetRow(ft, "saved_encoder_blocks", "saved: encoder blocks", f"{shape.encoder_layers} × {enc_block:,} "
                  f"({kept})", names["enc"], shape.encoder_layers * enc_block if ck else saved.encoder_blocks),
        BudgetRow(ft, "saved_decoder_blocks", "saved: decoder blocks", f"{shape.decoder_layers} × {dec_block:,} "
                  f"({kept})", names["dec"], shape.decoder_layers * dec_block),
        BudgetRow(ft, "saved_outside_blocks", "saved: outside blocks", "ids, outer norms, log-softmax",
                  names["emb"], saved.outside),
        BudgetRow(ft, "saved_total", "saved for backward" + (" (checkpointed)" if ck else ""),
                  "the rows above" + ("" if ck else f"; checkpointed: {saved.total_checkpointed:,}"), "",
                  saved.total_checkpointed if ck else saved.total, total=True),
        BudgetRow(ft, "saved_total_other", "saved " + ("without" if ck else "with") + " checkpointing",
                  "for comparison", "", saved.total if ck else saved.total_checkpointed),
        BudgetRow(ft, "gradients", "gradients", f"{shape.trainable:,} × {state.gradients // max(shape.trainable, 1)}",
                  "trainable", state.gradients),
        BudgetRow(ft, "optimizer_state", f"optimizer state ({request.optimizer.value})",
                  _optimizer_formula(request.optimizer), "per tensor", state.optimizer),
        *master,
        BudgetRow(ft, "training_peak", "peak of one training step", "weights + the rows above + transients", "",
                  peak, total=True),
    ]


def _optimizer_formula(optimizer: Optimizer) -> str:
    return {Optimizer.adamw: "2 float32 moments + step",
            Optimizer.adafactor: "rows + columns, float32",
            Optimizer.sgd: "none (no momentum)"}[optimizer]


def flops_rows(shape: ModelShape, request: BudgetRequest) -> list[BudgetRow]:
    b, s, t, fl = request.batch, request.source, request.target, Group.flops
    names = _names(shape)
    if request.mode == Mode.train:
        return [BudgetRow(fl, "forward_flops", "forward (teacher forcing)", f"B={b}, S={s}, T={t}", "whole model",
                          flops=flops.training_forward(shape, b, s, t)),
                BudgetRow(fl, "training_step_flops", "training step", "3 × forward" + (
                    " + blocks again" if request.gradient_checkpointing else ""), "forward + backward",
                    flops=flops.training_step(shape, b, s, t, request.gradient_checkpointing))]
    rows = b * request.num_beams
    return [BudgetRow(fl, "encoder_flops", "encoder pass", f"B={b}, S={s}", names["enc"],
                      flops=flops.encoder_pass(shape, b, s)),
            BudgetRow(fl, "decoder_step_flops", f"decoder step at t={t - 1}", f"{rows} rows, {t} keys + S",
                      names["dec"] + ", lm_head", flops=flops.decoder_step(shape, rows, t - 1, s)),
            BudgetRow(fl, "cross_projection_flops", "cross keys/values (step 0)", f"{rows} × S={s}", names["cross"],
                      flops=flops.cross_projection(shape, rows, s)),
            BudgetRow(fl, "generate_flops", "whole generate()", f"encoder + {t} steps", "", total=True,
                      flops=flops.generate(shape, b, s, t, request.num_beams))]


def build(name: str, shape: ModelShape, request: BudgetRequest, stored_bytes: int | None, stored_dtype: str | None,
          available: tuple[int | None, str], placement=None) -> BudgetReport:
    dtype = compute_dtype(request.dtype, stored_dtype, request.device)
    element = ELEMENT_BYTES[dtype]
    weights = shape.parameters * element
    memory = inference.budget(shape, weights, request.batch, request.source, request.target, request.num_beams,
                              element)
    dims = activations.Dims(request.batch, request.source, request.target, element,
                            1 if request.device == "cuda" else element)
    saved = activations.saved_for_backward(shape, dims)
    state = training.state(shape, request.optimizer, element)
    train_peak = training_peak(shape, request, weights, saved, state, element)
    rows = weights_rows(shape, stored_bytes, stored_dtype, dtype, element)
    rows += inference_rows(shape, request, memory) if request.mode == Mode.generate else \
        training_rows(shape, request, saved, state, train_peak)
    rows += flops_rows(shape, request)
    needed = memory.peak if request.mode == Mode.generate else train_peak
    free, where = available
    rows.append(BudgetRow(Group.fit, "available", f"available on {where}", "", "", free))
    return BudgetReport(
        model=name, model_type=shape.model_type, mode=request.mode, dtype=dtype, stored_dtype=stored_dtype,
        device=request.device, batch=request.batch, source=request.source, target=request.target,
        num_beams=request.num_beams, optimizer=request.optimizer.value,
        gradient_checkpointing=request.gradient_checkpointing, parameters=shape.parameters,
        active_parameters=active_parameters(shape), rows=tuple(rows), inference_peak_bytes=memory.peak,
        training_peak_bytes=train_peak, needed_bytes=needed, available_bytes=free, available_on=where,
        fits=None if free is None else needed <= free, measured=shape.measured, notes=notes(shape),
        placement=placement)


def training_peak(shape: ModelShape, request: BudgetRequest, weights: int, saved: activations.ActivationBudget,
                  state: training.TrainingState, element: int) -> int:
    """Weights, master copy, gradients, optimizer state and saved activations, plus what backward holds at once:
    the logits' gradient, and under checkpointing one block recomputed."""
    kept = saved.total_checkpointed if request.gradient_checkpointing else saved.total
    transient = request.batch * request.target * shape.vocab * element
    if request.gradient_checkpointing:
        transient += saved.recompute_peak
    return weights + state.master_weights + state.gradients + state.optimizer + kept + transient


def notes(shape: ModelShape) -> tuple[str, ...]:
    found = []
    if not shape.measured:
        found.append(f"{shape.model_type}: the formulas follow the {shape.style.upper()} layout and are not checked "
                     "against measurement for this family; treat activations and FLOPs as estimates.")
    found.extend(_encoder_attention_notes(shape))
    if shape.experts:
        found.append(f"mixture of experts: each token runs {shape.experts_per_token} of {shape.experts} experts; "
                     "FLOPs count the router and the dense layout, expert capacity limits are not modelled.")
    found.append("peaks are estimates: the caches, weights, gradients and optimizer state are exact; the transient "
                 "working set of a layer is approximated.")
    return tuple(found)


def _encoder_attention_notes(shape: ModelShape) -> list[str]:
    kind = shape.encoder_attention.kind
    if kind == families.DENSE:
        return []
    found = [f"the encoder's {kind} attention is counted as transformers runs it, padding included (FLOPs and "
             "saved activations checked against measurement)."]
    if kind == families.SLIDING_WINDOW:
        found.append("global attention (a global_attention_mask, which generate() does not set) is not counted.")
    if kind in (families.SLIDING_WINDOW, families.BLOCK_SPARSE):
        found.append("with gradient checkpointing, saved activations of a source the encoder pads are an estimate "
                     "and may be low.")
    if kind == families.BLOCK_SPARSE:
        found.append("sources of (5 + 2 × num_random_blocks) blocks or fewer run full attention, as transformers "
                     "switches the model to it (and keeps it switched for later calls).")
    return found
