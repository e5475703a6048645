"""--heads: each attention depth's push split over its heads, and each head's part over the keys it read.

An attention sublayer writes out(z) = W_O z + b_O, z the heads' outputs side by side, so its push into the chosen
logit (x · d, d the direction of `project.directions`: the final norm frozen, then lm_head's row) is exactly
Σ_h (W_O,h z_h) · d + b_O · d. Each head's output is z_h = Σ_k a_k (W_V,h x_k + b_V,h) over the keys k it reads
(cross-attention: the source tokens; self-attention: decoder positions 0..t), and the weights a_k sum to 1, so its
part is exactly Σ_k a_k (W_O,h W_V,h x_k) · d plus (W_O,h b_V,h) · d, the value bias, kept apart: it comes from no key.

Post-norm decoders (BART, Marian) write LN(x + out(z)) − x. With the LayerNorm's 1/std frozen at its value for
x + out(z) (its mean removal is linear), that is g ⊙ (out(z) − mean) / std, linear in z, plus what the LayerNorm
made of the stream x it was given (g ⊙ (x − mean x) / std + b − x), which no head wrote: `norm_part`.

The split is read in one teacher-forced pass over the run's decoder inputs (no cache), with transformers' own
attention weights (output_attentions) and hooks on each attention's value and output projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t5peek import anatomy
from t5peek.attend.heads import locate
from t5peek.attend.records import AttentionKind
from t5peek.interventions.sites import find_sites
from t5peek.lens.project import directions
from t5peek.lens.records import HeadPart
from t5peek.lens.stream import POST_NORM, Anatomy, Recorder
from t5peek.probe.hooks import INPUT, OUTPUT, Hook, hooked

KINDS = {anatomy.SELF_ATTENTION: ("self", AttentionKind.DECODER_SELF, 0),
         anatomy.CROSS_ATTENTION: ("cross", AttentionKind.CROSS, 1)}


@dataclass(frozen=True)
class Site:
    """One attention sublayer of the decoder: where its depth is, and the modules its split reads."""

    depth: int
    layer: int
    sublayer: str
    value: Any  # the value projection (its output: W_V x + b_V, every key)
    output: Any  # the output projection (its input: z)
    heads: int
    head_size: int
    norm: Any | None  # post-norm: the sublayer's LayerNorm


@dataclass(frozen=True)
class DepthHeads:
    """The split of one attention depth at one position."""

    heads: tuple[HeadPart, ...]
    output_bias: float
    norm_part: float | None


def method(shape: Anatomy) -> str:
    post = (" Post-norm: each head's part goes through the sublayer's LayerNorm with its 1/std frozen (its mean "
            "removal kept); norm_part is what that LayerNorm made of the stream it was given, which no head wrote."
            if shape.norm_placement == POST_NORM else "")
    return ("each attention depth's push = Σ heads + the output projection's bias; a head's part is its output "
            "through its slice of the output projection, then the depth's frozen path to the chosen logit; it is "
            "split over the keys it read (weight × its value vector), plus its value bias, which comes from no key."
            + post)


def sites(model, model_type: str, name: str, shape: Anatomy) -> tuple[Site, ...]:
    found = find_sites(model, model_type, name, "lens")
    out = []
    for depth, tap in enumerate(shape.taps):
        if tap.sublayer not in KINDS:
            continue
        kind, attention_kind, _ = KINDS[tap.sublayer]
        attention = found.attention[kind][tap.layer]
        value = locate(model, model_type, attention_kind, tap.layer).value
        out.append(Site(depth, tap.layer, tap.sublayer, value, attention.output_projection, attention.heads,
                        attention.head_size, tap.module if shape.norm_placement == POST_NORM else None))
    return tuple(out)


def split(model, shape: Anatomy, found: tuple[Site, ...], input_ids, attention_mask, decoder_input_ids,
          chosen) -> list[dict[int, DepthHeads]]:
    """[position]{depth: DepthHeads} for every attention depth, in one teacher-forced pass."""
    import torch

    recorder = Recorder(shape.taps)
    seen: dict = {}

    def keeper(key):
        def keep(value, _call) -> None:
            seen[key] = value[0].detach().float()

        return keep

    hooks = [*recorder.hooks()]
    for site in found:
        hooks += [Hook(site.value, OUTPUT, keeper(("v", site.depth))),
                  Hook(site.output, INPUT, keeper(("z", site.depth)))]
        if site.norm is not None:
            hooks.append(Hook(site.norm, INPUT, keeper(("y", site.depth))))
    with torch.no_grad():
        with hooked(model, hooks):
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                            use_cache=False, output_attentions=True, return_dict=True)
        streams = recorder.take()
        direction, _ = directions(shape.head, streams[-1], chosen.to(streams.device))
        positions = decoder_input_ids.shape[-1]
        result: list[dict[int, DepthHeads]] = [{} for _ in range(positions)]
        for site in found:
            weights_of = outputs.decoder_attentions if site.sublayer == anatomy.SELF_ATTENTION else \
                outputs.cross_attentions
            weights = weights_of[site.layer][0].float().to(streams.device)  # (heads, positions, keys)
            parts = _site(site, weights, seen, streams, direction)
            for position in range(positions):
                result[position][site.depth] = _at(parts, position, site.sublayer)
    return result


def _site(site: Site, weights, seen: dict, streams, direction):
    import torch

    device = streams.device
    heads, size = site.heads, site.head_size
    d = direction
    norm_part = None
    if site.norm is not None:
        y, norm = seen[("y", site.depth)].to(device), site.norm
        inverse = torch.rsqrt(y.var(-1, unbiased=False, keepdim=True) + norm.eps)
        gain = norm.weight.float().to(device) if norm.weight is not None else torch.ones_like(y[0])
        bias = norm.bias.float().to(device) if norm.bias is not None else torch.zeros_like(y[0])
        before = streams[site.depth - 1]
        kept = gain * (before - before.mean(-1, keepdim=True)) * inverse + bias - before
        norm_part = (kept * d).sum(-1)
        through = d * gain
        d = (through - through.mean(-1, keepdim=True)) * inverse
    projection = site.output.weight.float().to(device)  # (d_model, heads × size)
    back = d @ projection  # (positions, heads × size): what each value of z adds to the logit
    z = seen[("z", site.depth)].to(device)
    head_parts = (z * back).reshape(-1, heads, size).sum(-1)  # (positions, heads)
    output_bias = d @ site.output.bias.float().to(device) if site.output.bias is not None else \
        torch.zeros(d.shape[0], device=device)
    values = seen[("v", site.depth)].to(device)  # (keys, heads × size), the bias included
    value_bias = site.value.bias.float().to(device) if site.value.bias is not None else torch.zeros_like(values[0])
    per_key = torch.einsum("khs,phs->hpk", (values - value_bias).reshape(-1, heads, size),
                           back.reshape(-1, heads, size))
    key_parts = weights * per_key  # (heads, positions, keys)
    bias_parts = (value_bias.reshape(heads, size) * back.reshape(-1, heads, size)).sum(-1) * \
        weights.sum(-1).transpose(0, 1)  # (positions, heads)
    return (head_parts.tolist(), output_bias.tolist(), None if norm_part is None else norm_part.tolist(),
            key_parts.transpose(0, 1).tolist(), bias_parts.tolist())


def _at(parts, position: int, sublayer: str) -> DepthHeads:
    head_parts, output_bias, norm_part, key_parts, bias_parts = parts
    keys = position + 1 if sublayer == anatomy.SELF_ATTENTION else None  # a decoder position reads 0..itself
    heads = tuple(HeadPart(h, head_parts[position][h], tuple(key_parts[position][h][:keys]), bias_parts[position][h])
                  for h in range(len(head_parts[position])))
    return DepthHeads(heads, output_bias[position], None if norm_part is None else norm_part[position])
