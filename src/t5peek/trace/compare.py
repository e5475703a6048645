"""`trace --target TEXT --compare`: training and inference compute the same thing, until the model goes its own way.

Three views of one (prompt, target) pair, for the T5 and BART families:

  teacher forcing ≡ cached steps   one forward pass with `labels` (the model shifts them right itself) scores every
                                   position at once; the decoder run one token at a time with a KV cache, fed the
                                   same tokens (start token, then each label), must give the same logits at every
                                   position, to float tolerance.
  free-running greedy              the decoder fed its own choices (what `model.generate(do_sample=False,
                                   num_beams=1)` does), for as many steps as the target has; the first position
                                   where its choice is not the label is where exposure bias begins: in training the
                                   decoder always read the right previous token, here it reads its own.
  the causal mask                  position i of the teacher-forced pass attends to positions 0..i only; measured
                                   on the model's own attention weights (every weight above the diagonal is 0).

Nothing here imports torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import families, finite
from t5peek.errors import UnsupportedModel
from t5peek.probe.hooks import evaluating
from t5peek.probe.stepping import decoder_steps
from t5peek.seq2seq import shift_right, token_strings

# The bound asserted on max |Δ| between the two logits vectors of a position: RELATIVE_TOLERANCE of the dtype the
# model ran in, times the largest |logit| of the position or TOLERANCE_FLOOR, whichever is larger (1e-4 at least in
# float32). float32 keeps about 7 significant digits, float16 about 3, bfloat16 about 2, and the two runs add up the
# same numbers in different orders.
RELATIVE_TOLERANCE = {"float32": 5e-5, "float64": 1e-10, "float16": 1e-2, "bfloat16": 5e-2}
TOLERANCE_FLOOR = 2.0


def check_family(model_type: str | None, name: str) -> None:
    """Refuse, before any weight is loaded, the families whose decoder the comparison does not follow."""
    if not (families.is_t5_style(model_type) or families.is_bart_style(model_type)):
        raise UnsupportedModel(f"t5peek trace --compare supports the T5 and BART families (Marian, Pegasus, mBART, "
                               f"...), not {model_type} models like '{name}'; leave out --compare for the trace.")


@dataclass(frozen=True)
class ForcedPosition:
    """One target position scored two ways: in the one teacher-forced pass, and by the cached decoder fed the same
    token."""

    position: int
    input_id: int  # the token the decoder reads here: the decoder start token, then the labels shifted right
    input_token: str
    label_id: int  # what this position must predict
    label_token: str
    label_probability: float  # softmax of the teacher-forced logits at the label; the loss is the mean of -log p
    max_abs_diff: float  # max over the vocabulary of |teacher-forced logit - cached logit|
    tolerance: float  # the bound max_abs_diff must stay under at this position
    forced_top_id: int  # argmax of the teacher-forced logits
    cached_top_id: int  # argmax of the cached step's logits
    compared: bool = True  # false: the logits of both paths are not finite here (NaN or inf): nothing to compare

    @property
    def agrees(self) -> bool:
        return self.compared and self.max_abs_diff <= self.tolerance and self.forced_top_id == self.cached_top_id


@dataclass(frozen=True)
class FreeRunPosition:
    """One step of free-running greedy decoding, next to the label of the same position."""

    position: int
    input_id: int  # the token the decoder reads here: the decoder start token, then its own previous choice
    input_token: str
    label_id: int  # the target's token at this position
    label_token: str
    chosen_id: int  # the model's own choice, fed back as the next step's input
    chosen_token: str
    probability: float  # of the chosen token, after generate()'s logits processors

    @property
    def matches(self) -> bool:
        return self.chosen_id == self.label_id


@dataclass(frozen=True)
class CausalMask:
    """The decoder self-attention mask of the teacher-forced pass: query position i sees key positions 0..i."""

    size: int  # target positions: the mask is size × size
    layers: int  # decoder layers whose attention weights were measured
    heads: int
    above_diagonal_max: float | None  # largest weight a query gave a later key (0: the mask held); None: unmeasured


@dataclass(frozen=True)
class Comparison:
    """Training ≡ inference: teacher forcing against cached steps on the same tokens, then free-running greedy."""

    dtype: str  # the dtype the model computed the logits in (compared in float32)
    relative_tolerance: float  # each position's tolerance is this × max(2, largest |logit| of the position)
    positions: tuple[ForcedPosition, ...]
    max_abs_diff: float  # the largest max_abs_diff of the positions compared (NaN when none is)
    agrees: bool | None  # every position within its tolerance, same argmax both ways; null: some were not compared
    forced_loss: float  # mean cross-entropy of the labels over the teacher-forced logits (in float32): training's loss
    cached_loss: float  # the same over the cached steps' logits
    free_running: tuple[FreeRunPosition, ...]  # stops early at the end-of-sequence token, as generate() does
    free_running_text: str
    first_departure: int | None  # the first position whose free-running choice is not the label; None: none
    processors: tuple[str, ...]  # generate()'s logits processors applied to the free-running scores
    mask: CausalMask
    arbitrary_from: int | None = None  # the first free-running step whose scores are NaN (or all -inf): no choice
    notes: tuple[str, ...] = ()  # where the numbers stop being finite, in generate's words


def compare_runs(model, tokenizer, input_ids, attention_mask, labels, encoder_extra: dict | None = None) -> Comparison:
    """Teacher forcing against cached steps on `labels` (shape [1, T]), then T steps of free-running greedy."""
    import torch

    with torch.no_grad(), evaluating(model):
        forced, mask = _teacher_forced(model, input_ids, attention_mask, labels, encoder_extra or {})
        fed = shift_right(model, labels)
        cached = _cached_steps(model, input_ids, attention_mask, fed, encoder_extra or {})
        free = _free_running(model, tokenizer, input_ids, attention_mask, labels.shape[-1])
    return _assemble(tokenizer, forced, cached, labels, fed, free, mask)


def _teacher_forced(model, input_ids, attention_mask, labels, encoder_extra: dict):
    """One forward pass with labels (the model shifts them right itself): the logits of every position, and the
    causal mask measured on the decoder's self-attention weights."""
    import torch

    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False,
                   output_attentions=True, return_dict=True, **encoder_extra)
    weights = [w for w in (output.decoder_attentions or ()) if w is not None]
    size = labels.shape[-1]
    above = None
    if weights:
        upper = torch.ones(size, size, dtype=torch.bool, device=weights[0].device).triu(1)
        above = 0.0 if size == 1 else finite.largest(float(w[..., upper].float().abs().max()) for w in weights)
    mask = CausalMask(size=size, layers=len(weights), heads=int(weights[0].shape[1]) if weights else 0,
                      above_diagonal_max=above)
    return output.logits[0], mask


def _cached_steps(model, input_ids, attention_mask, fed, encoder_extra: dict):
    """The decoder one token at a time with a KV cache, fed `fed` (the labels shifted right), not its own choices."""
    import torch

    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                          **encoder_extra)
    steps = decoder_steps(model, encoder_outputs, attention_mask, fed.shape[-1], feed=fed[0].tolist())
    return torch.stack([passed.output.logits[0, -1] for passed in steps])


def _free_running(model, tokenizer, input_ids, attention_mask, steps: int):
    """Greedy decoding of `steps` new tokens, step by step as `model.generate(do_sample=False, num_beams=1)`."""
    from t5peek.generate import DecodeSettings, decode

    settings = DecodeSettings(requested={"max_new_tokens": steps, "do_sample": False, "num_beams": 1}, top_k=1)
    return decode(model, tokenizer, input_ids, settings, attention_mask=attention_mask)


def _assemble(tokenizer, forced, cached, labels, fed, free, mask: CausalMask) -> Comparison:
    import torch

    dtype = str(forced.dtype).removeprefix("torch.")  # what the model computed in; compared in float32
    forced, cached = forced.float(), cached.float()
    label_ids = [int(i) for i in labels[0].tolist()]
    fed_ids = [int(i) for i in fed[0].tolist()]
    relative = RELATIVE_TOLERANCE.get(dtype, RELATIVE_TOLERANCE["bfloat16"])
    differences = (forced - cached).abs().amax(-1).tolist()
    scales = torch.maximum(forced.abs().amax(-1), cached.abs().amax(-1)).clamp(min=TOLERANCE_FLOOR).tolist()
    probabilities = torch.softmax(forced, -1)
    label_index = torch.tensor(label_ids, device=forced.device).clamp(min=0).unsqueeze(-1)
    label_p = probabilities.gather(-1, label_index).squeeze(-1).tolist()
    forced_top, cached_top = forced.argmax(-1).tolist(), cached.argmax(-1).tolist()
    forced_states, cached_states = finite.row_states(forced), finite.row_states(cached)
    compared = [f is None or c is None for f, c in zip(forced_states, cached_states)]
    label_tokens, fed_tokens = token_strings(tokenizer, label_ids), token_strings(tokenizer, fed_ids)
    positions = tuple(
        ForcedPosition(position=i, input_id=fed_ids[i], input_token=fed_tokens[i], label_id=label_ids[i],
                       label_token=label_tokens[i], label_probability=float(label_p[i]),
                       max_abs_diff=float(differences[i]), tolerance=relative * scales[i],
                       forced_top_id=int(forced_top[i]), cached_top_id=int(cached_top[i]), compared=compared[i])
        for i in range(len(label_ids)))
    targets = labels[0].to(forced.device)
    forced_loss = float(torch.nn.functional.cross_entropy(forced, targets, ignore_index=-100))
    cached_loss = float(torch.nn.functional.cross_entropy(cached, targets, ignore_index=-100))
    free_running = tuple(  # max_new_tokens = the target's length: never more steps than labels
        FreeRunPosition(position=i, input_id=step.input_ids[-1], input_token=step.input_tokens[-1],
                        label_id=label_ids[i], label_token=label_tokens[i], chosen_id=step.token_id,
                        chosen_token=step.token, probability=float(step.chosen.probability))
        for i, step in enumerate(free.steps))
    departure = next((p.position for p in free_running if not p.matches), None)
    if departure is None and len(free_running) < len(label_ids):
        departure = len(free_running)  # stopped before the target ended: the next label was never produced
    compared_differences = [d for d, kept in zip(differences, compared) if kept]
    agrees = all(p.agrees for p in positions if p.compared)
    arbitrary = finite.first(finite.scores_state(step.top_k[0].score) for step in free.steps)
    return Comparison(dtype=dtype, relative_tolerance=relative, positions=positions,
                      max_abs_diff=finite.largest(compared_differences),
                      agrees=None if agrees and not all(compared) else agrees,
                      forced_loss=forced_loss, cached_loss=cached_loss, free_running=free_running,
                      free_running_text=free.output_text, first_departure=departure, processors=free.processors,
                      mask=mask, arbitrary_from=None if arbitrary is None else arbitrary[0],
                      notes=_nonfinite_notes(forced_states, cached_states, arbitrary))


def _nonfinite_notes(forced_states: list, cached_states: list, arbitrary) -> tuple[str, ...]:
    """generate's sentence for the first position whose logits are not finite (in both paths, or in one: then the
    paths differ there), and for the first free-running step whose scores leave no choice."""
    notes = []
    first = finite.first(f or c for f, c in zip(forced_states, cached_states))
    if first is not None:
        position = first[0]
        forced, cached = forced_states[position], cached_states[position]
        if forced is not None and cached is not None:
            notes.append(finite.from_step(position, "logits of both paths", forced if forced == cached else
                                          "not finite", "teacher forcing and the cached steps are not compared "
                                          "there", unit="position"))
        else:
            numbers = "teacher-forced logits" if forced is not None else "cached steps' logits"
            notes.append(finite.from_step(position, numbers, forced or cached, "the other path's are finite, so the "
                                          "two paths differ", unit="position"))
    if arbitrary is not None:
        notes.append(finite.from_step(arbitrary[0], "free-running scores", arbitrary[1], "the choices are arbitrary"))
    return tuple(notes)

