"""One head, recomputed in float32 from the module's own weights on the hidden states that really entered it.

    q = W_q[h] x_query + b_q[h]          k_j = W_k[h] x_j + b_k[h]          v_j = W_v[h] x_j + b_v[h]
    score_j = (q · k_j) × scaling + bias_j + mask_j          weight = softmax(score)
    head output = Σ_j weight_j v_j          contribution = W_o[:, h] · head output

W[h] are the d_kv rows of head h (columns of W_o); T5 has no biases b, no scaling, and adds its bucket bias.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import anatomy, families, finite, seq2seq
from t5peek.attend.capture import Captured
from t5peek.attend.heads import HeadSite, relative_buckets, scaling
from t5peek.attend.records import AttendReport, AttentionKind, HeadCheck, KeyRow


@dataclass(frozen=True)
class Query:
    """What the head is asked about: which attention, which head, which position."""

    kind: AttentionKind
    layer: int
    layers: int
    head: int
    heads: int
    position: int  # source position (encoder) or decoder position (= step)


def _rows(linear, head: int, d_kv: int):
    """Head `head`'s rows of a projection, as (weight, bias or None) in float32."""
    rows = slice(head * d_kv, (head + 1) * d_kv)
    bias = linear.bias[rows].float() if linear.bias is not None else None
    return linear.weight[rows].float(), bias


def _project(linear, head: int, d_kv: int, states):
    weight, bias = _rows(linear, head, d_kv)
    projected = states.float() @ weight.T
    return projected + bias if bias is not None else projected


def _mask_row(mask, query_row: int, head: int, keys: int):
    """The additive mask of the query's row (zeros when the module got none)."""
    import torch

    if mask is None:
        return None
    row = mask[0, min(head, mask.shape[1] - 1), min(query_row, mask.shape[2] - 1), :keys]
    if row.dtype == torch.bool:  # True = may attend
        return torch.where(row, 0.0, torch.finfo(torch.float32).min)
    return row.float()


def _states(captured: Captured, kind: AttentionKind):
    """(the query's hidden state, the hidden states the keys and values come from, the query's row in the call)."""
    import torch

    last = captured.inputs[-1][0]
    if kind is AttentionKind.CROSS:
        return last[-1], captured.key_value_states[0], last.shape[0] - 1
    if kind is AttentionKind.DECODER_SELF:  # one call per step, one position each: the cache's positions 0..T
        return last[-1], torch.cat([call[0] for call in captured.inputs], dim=0), last.shape[0] - 1
    return None, last, None


def recompute(site: HeadSite, captured: Captured, query: Query, model_type: str, raw_config: dict) -> dict:
    """Every number of the head as tensors, and the check against the module's own results."""
    import torch

    head, kind = query.head, query.kind
    d_kv = site.query.weight.shape[0] // query.heads
    x_query, x_keys, query_row = _states(captured, kind)
    if x_query is None:  # encoder: the query is a row of the same call
        x_query, query_row = x_keys[query.position], query.position
    q = _project(site.query, head, d_kv, x_query)
    keys, values = _project(site.key, head, d_kv, x_keys), _project(site.value, head, d_kv, x_keys)
    dot = keys @ q
    scaled = dot * scaling(model_type, d_kv)
    count = keys.shape[0]
    relative = buckets = None
    bias = torch.zeros_like(dot)
    if site.bias_table is not None:
        relative = torch.arange(count, device=dot.device) - query.position
        num_buckets, max_distance = anatomy.relative_buckets(raw_config)
        buckets = relative_buckets(relative, kind is AttentionKind.ENCODER_SELF, num_buckets, max_distance)
        bias = site.bias_table.weight[buckets, head].float()
    mask = _mask_row(captured.mask, query_row, head, count)
    score = scaled + bias + (mask if mask is not None else 0.0)
    weights = torch.softmax(score, dim=-1)
    head_output = weights @ values
    columns = (head * d_kv, (head + 1) * d_kv)
    projection = site.output.weight[:, columns[0]:columns[1]].float()
    contribution = projection @ head_output
    module_weights = captured.weights[0, head, query_row, :count].float()
    module_head_output = captured.projection_input[0, query_row, columns[0]:columns[1]].float()
    visible = score if mask is None else score[mask > torch.finfo(torch.float32).min / 2]  # a mask may add -inf
    named = [(f"the hidden state that entered {site.name.rsplit('.', 1)[-1]}", x_query),
             (_KEY_STATES[kind], x_keys), ("q", q), ("a key k", keys), ("a value v", values), ("q·k", dot),
             ("a score", visible), ("a weight", weights), ("the head output", head_output),
             ("the contribution", contribution)]
    return dict(first_nonfinite=_first_nonfinite(named), d_kv=d_kv, q=q, keys=keys, values=values, dot=dot,
                scaled=scaled, relative=relative,
                buckets=buckets, bias=bias, mask=mask, score=score, weights=weights, head_output=head_output,
                columns=columns, projection_norm=projection.norm(), contribution=contribution,
                output_norm=captured.output[0, query_row].float().norm(),
                weights_diff=(module_weights - weights).abs().max(),
                head_output_diff=(module_head_output - head_output).abs().max())


_KEY_STATES = {AttentionKind.CROSS: "the encoder's output its keys and values come from",
               AttentionKind.DECODER_SELF: "a hidden state its keys and values come from (positions 0..T)",
               AttentionKind.ENCODER_SELF: "a hidden state its keys and values come from (every source position)"}


def _first_nonfinite(named) -> tuple[str, str] | None:
    """(name, NaN or inf) of the first of the head's numbers, in the order they are computed, that is not finite."""
    found = finite.first(finite.tensor_states([tensor for _, tensor in named]))
    return None if found is None else (named[found[0]][0], found[1])


def _floats(tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in tensor.tolist())


def build_report(numbers: dict, query: Query, *, name: str, model_type: str, prompt: str, raw_config: dict,
                 site: HeadSite, source_ids, decoder_ids, next_id, d_model: int, tokenizer) -> AttendReport:
    """The record of the head: plain Python values, one transfer per tensor."""
    kind = query.kind
    source_ids, decoder_ids = tuple(source_ids), tuple(decoder_ids)
    source_tokens = seq2seq.token_strings(tokenizer, source_ids)
    decoder_tokens = seq2seq.token_strings(tokenizer, decoder_ids)
    key_ids, key_tokens = ((decoder_ids, decoder_tokens) if kind is AttentionKind.DECODER_SELF
                           else (source_ids, source_tokens))
    query_ids, query_tokens = (source_ids, source_tokens) if kind is AttentionKind.ENCODER_SELF else (decoder_ids,
                                                                                                     decoder_tokens)
    columns = ("dot", "scaled", "bias", "score", "weights")
    per_key = {column: numbers[column].tolist() for column in columns}
    mask = numbers["mask"].tolist() if numbers["mask"] is not None else [0.0] * len(key_ids)
    relative = numbers["relative"].tolist() if numbers["relative"] is not None else [None] * len(key_ids)
    buckets = numbers["buckets"].tolist() if numbers["buckets"] is not None else [None] * len(key_ids)
    keys, values = numbers["keys"].tolist(), numbers["values"].tolist()
    rows = tuple(KeyRow(position=j, token=key_tokens[j], token_id=key_ids[j], key=tuple(keys[j]),
                        value=tuple(values[j]), dot=per_key["dot"][j], scaled=per_key["scaled"][j],
                        relative_position=relative[j], bucket=buckets[j], bias=per_key["bias"][j], mask=mask[j],
                        masked=mask[j] < -1e30, score=per_key["score"][j], weight=per_key["weights"][j])
                 for j in range(len(key_ids)))
    relative_kind = site.bias_table is not None
    num_buckets, max_distance = anatomy.relative_buckets(raw_config) if relative_kind else (None, None)
    return AttendReport(
        model=name, model_type=model_type, prompt=prompt, kind=kind, module=site.name, layer=query.layer,
        layers=query.layers, head=query.head, heads=query.heads, d_model=d_model, d_kv=numbers["d_kv"],
        scaling=scaling(model_type, numbers["d_kv"]), position_kind=families.position_kind(model_type) or "unknown",
        buckets=num_buckets, max_distance=max_distance,
        bidirectional=(kind is AttentionKind.ENCODER_SELF) if relative_kind else None,
        source_ids=source_ids, source_tokens=source_tokens, decoder_ids=decoder_ids, decoder_tokens=decoder_tokens,
        step=None if kind is AttentionKind.ENCODER_SELF else query.position, query_position=query.position,
        query_token=query_tokens[query.position], query_id=query_ids[query.position], next_id=next_id,
        next_token=None if next_id is None else seq2seq.token_strings(tokenizer, [next_id])[0],
        query=_floats(numbers["q"]), keys=rows, head_output=_floats(numbers["head_output"]),
        output_columns=numbers["columns"], projection_norm=float(numbers["projection_norm"]),
        contribution=_floats(numbers["contribution"]), contribution_norm=float(numbers["contribution"].norm()),
        output_norm=float(numbers["output_norm"]),
        check=HeadCheck(float(numbers["weights_diff"]), float(numbers["head_output_diff"])), notes=())
