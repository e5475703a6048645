"""t5peek lens --heads, --watch and --encoder-layer, each number checked against transformers by another route.

--heads: a head's part = the output projection run with every other head's slice zeroed, pushed through the frozen
path by hand; the heads sum to their depth's push; a head's keys sum to the head, and zeroing one key's value vector
takes exactly its part away. --watch: at the last depth, the rank and probability in the model's own logits.
--encoder-layer: at the last layer, generate() itself; at layer L, generate() fed encoder outputs computed by
running the first L + 1 encoder blocks by hand, then the encoder's final norm.
"""

from __future__ import annotations

import json

import pytest

import families
from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek
from t5peek.families import lens_families

TOLERANCE = 1e-4
TARGET = "the red house is small"
DEMO_PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(scope="module")
def tiny_mbart(tmp_path_factory):
    return families.by_name("mbart").make(tmp_path_factory.mktemp("models") / "tiny-mbart")


def _model(path):
    from t5peek.api import Model

    return Model(str(path))


def _inputs(peek, prompt=families.PROMPT):
    return peek.session.tokenizer(prompt, return_tensors="pt")["input_ids"]


# ----------------------------------------------------------------------------- --heads


def _attention(model, layer: int, sublayer: str):
    """(attention module, its value projection, its output projection, heads, head size, post-norm LayerNorm)."""
    decoder = model.get_decoder()
    if hasattr(decoder, "block"):
        block = decoder.block[layer]
        module = block.layer[0].SelfAttention if sublayer == "self-attention" else block.layer[1].EncDecAttention
        return module, module.v, module.o, module.n_heads, module.key_value_proj_dim, None
    layer_module = decoder.layers[layer]
    if sublayer == "self-attention":
        module, norm = layer_module.self_attn, layer_module.self_attn_layer_norm
    else:
        module, norm = layer_module.encoder_attn, layer_module.encoder_attn_layer_norm
    return module, module.v_proj, module.out_proj, module.num_heads, module.head_dim, norm


def _final_norm(model):
    decoder = model.get_decoder()
    return getattr(decoder, "final_layer_norm", None) or getattr(decoder, "layer_norm", None)


def _forward(model, input_ids, decoder_input_ids, hooks):
    """One teacher-forced pass with plain torch hooks `[(module, "pre"|"post", fn)]`."""
    import torch

    handles = [module.register_forward_pre_hook(fn) if at == "pre" else module.register_forward_hook(fn)
               for module, at, fn in hooks]
    try:
        with torch.no_grad():
            return model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()


def _by_hand(model, run, input_ids, decoder_input_ids):
    """For each (position, vector u written at an attention depth) the logit part, frozen as the lens freezes it:
    the final norm (T5: weight / rms; LayerNorm: centred, weight / std) at the final stream, the T5 rescale, the
    chosen token's lm_head row; post-norm: first the sublayer's LayerNorm, centred, weight / its std."""
    import torch

    seen = {}
    norm = _final_norm(model)
    hooks = []
    if norm is not None:
        hooks.append((norm, "pre", lambda _m, args: seen.__setitem__("final", args[0][0].detach())))
    post_norms = {}
    for depth, label in enumerate(run.depth_labels):
        layer, _, sublayer = label.partition(" ")
        if sublayer in ("self-attention", "cross-attention"):
            ln = _attention(model, int(layer), sublayer)[5]
            if ln is not None and run.norm_placement == "post-norm":
                post_norms[depth] = ln
                hooks.append((ln, "pre", lambda _m, args, d=depth: seen.__setitem__(d, args[0][0].detach())))
    _forward(model, input_ids, decoder_input_ids, hooks)
    scale = model.config.d_model ** -0.5 if "d_model**-0.5" in run.head else 1.0

    def part(depth: int, position: int, u):
        token = run.steps[position].token_id
        if depth in post_norms:
            ln, y = post_norms[depth], seen[depth][position]
            u = ln.weight * (u - u.mean()) / torch.sqrt(y.var(unbiased=False) + ln.eps)
        if norm is not None:
            final = seen["final"][position]
            if hasattr(norm, "variance_epsilon"):
                u = norm.weight * u * torch.rsqrt(final.pow(2).mean() + norm.variance_epsilon)
            else:
                u = norm.weight * (u - u.mean()) / torch.sqrt(final.var(unbiased=False) + norm.eps)
        return float(u.detach() @ model.get_output_embeddings().weight[token].detach()) * scale

    return part


def _only_head(head: int, size: int):
    def keep_one(_module, args):
        z = args[0].clone()
        mask = torch_zeros_like(z)
        mask[..., head * size:(head + 1) * size] = 1
        return (z * mask,)

    return keep_one


def torch_zeros_like(z):
    import torch

    return torch.zeros_like(z)


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_bart", "tiny_mbart"])
def test_each_heads_part_is_its_slice_of_the_output_projection(request, fixture):
    """Every head at every attention depth and step: the output projection fed only that head's slice (the others
    zeroed), its bias taken off, pushed through the frozen path by hand; the heads plus the biases (plus, post-norm,
    what the LayerNorm made of its stream) sum to the depth's push."""
    import torch

    peek = _model(request.getfixturevalue(fixture))
    run = peek.lens(families.PROMPT, max_new_tokens=4, heads=True)
    model = peek.session.weights(eager_attention=True).model
    input_ids = _inputs(peek)
    decoder_input_ids = torch.tensor([[s.input_id for s in run.steps]])
    part = _by_hand(model, run, input_ids, decoder_input_ids)
    checked = 0
    for depth, label in enumerate(run.depth_labels):
        layer, _, sublayer = label.partition(" ")
        if sublayer not in ("self-attention", "cross-attention"):
            assert all(s.depths[depth].heads is None for s in run.steps)
            continue
        _, _, output, heads, size, _ = _attention(model, int(layer), sublayer)
        bias = output.bias if output.bias is not None else torch.zeros(output.out_features)
        for head in range(heads):
            out = {}
            _forward(model, input_ids, decoder_input_ids,
                     [(output, "pre", _only_head(head, size)),
                      (output, "post", lambda _m, _a, o: out.__setitem__("u", o[0].detach()))])
            for position, step in enumerate(run.steps):
                expected = part(depth, position, out["u"][position] - bias)
                assert abs(step.depths[depth].heads[head].contribution - expected) <= TOLERANCE, (label, head)
                checked += 1
        for position, step in enumerate(run.steps):
            d = step.depths[depth]
            assert abs(d.output_bias - part(depth, position, bias.detach())) <= TOLERANCE
            total = sum(h.contribution for h in d.heads) + d.output_bias + (d.norm_part or 0.0)
            assert abs(total - d.contribution) <= TOLERANCE, (label, position)
            assert (d.norm_part is not None) == (run.norm_placement == "post-norm")
    assert checked == sum(len(d.heads) for s in run.steps for d in s.depths if d.heads)
    assert run.heads_error <= TOLERANCE


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_bart"])
def test_a_heads_keys_sum_to_it_and_each_is_that_keys_value(request, fixture):
    """Σ keys + value bias = the head's part; a cross-attention key's value vector set to the bias alone (W_V x = 0)
    takes exactly its part out of the head's; self-attention reads decoder positions 0..step."""
    import torch

    peek = _model(request.getfixturevalue(fixture))
    run = peek.lens(families.PROMPT, target=TARGET, heads=True)
    for step in run.steps:
        for d in step.depths:
            for h in d.heads or ():
                assert abs(sum(h.sources) + h.value_bias - h.contribution) <= TOLERANCE
                keys = step.step + 1 if d.sublayer == "self-attention" else len(run.source_ids)
                assert len(h.sources) == keys
    model = peek.session.weights(eager_attention=True).model
    input_ids = _inputs(peek)
    decoder_input_ids = torch.tensor([[s.input_id for s in run.steps]])
    part = _by_hand(model, run, input_ids, decoder_input_ids)
    depth = run.depth_labels.index("1 cross-attention")
    _, value, output, _, size, _ = _attention(model, 1, "cross-attention")
    bias = output.bias if output.bias is not None else torch.zeros(output.out_features)
    position, head, key = max(((p, h.head, k) for p, s in enumerate(run.steps) for h in s.depths[depth].heads
                               for k in range(len(h.sources))),
                              key=lambda c: abs(run.steps[c[0]].depths[depth].heads[c[1]].sources[c[2]]))
    h = run.steps[position].depths[depth].heads[head]
    value_bias = value.bias if value.bias is not None else torch.zeros(value.out_features)

    def no_key(_module, _args, out):
        out = out.clone()
        out[0, key] = value_bias
        return out

    seen = {}
    _forward(model, input_ids, decoder_input_ids,
             [(value, "post", no_key), (output, "pre", _only_head(head, size)),
              (output, "post", lambda _m, _a, o: seen.__setitem__("u", o[0].detach()))])
    without = part(depth, position, seen["u"][position] - bias)
    assert abs(h.sources[key]) > 1e-4  # a key that matters (the tiny BART's weights are small)
    assert abs((h.contribution - without) - h.sources[key]) <= 1e-3 * abs(h.sources[key]), (h.sources[key], without)
    if value.bias is None:
        assert all(p.value_bias == 0.0 for s in run.steps for d in s.depths for p in d.heads or ())


def test_source_and_prefix_are_the_cross_and_self_pushes():
    run = _model("demo").lens(DEMO_PROMPT, heads=True)
    for s in run.steps:
        cross = sum(d.contribution for d in s.depths if d.sublayer == "cross-attention")
        own = sum(d.contribution for d in s.depths if d.sublayer == "self-attention")
        assert abs(s.source_push - cross) <= 1e-9 and abs(s.prefix_push - own) <= 1e-9
        up = max(cross, 0) + max(own, 0)
        assert s.source_share == (max(cross, 0) / up if up > 0 else None)
    casa = run.steps[1]
    assert casa.token == "casa" and casa.source_share > 0.9
    strongest = max(((d, h) for d in casa.depths if d.heads for h in d.heads), key=lambda p: abs(p[1].contribution))
    assert strongest[0].sublayer == "cross-attention"
    source = run.source_tokens[max(range(len(strongest[1].sources)), key=lambda k: strongest[1].sources[k])]
    assert source == "house"  # 'casa' is read from 'house'


# ----------------------------------------------------------------------------- --watch


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_bart"])
def test_watched_tokens_at_the_last_depth_are_the_models_own_rank(request, fixture):
    import torch

    peek = _model(request.getfixturevalue(fixture))
    tokenizer = peek.session.tokenizer
    rivals = ("#3", tokenizer.convert_ids_to_tokens(7))
    run = peek.lens(families.PROMPT, max_new_tokens=4, watch=rivals)
    model = peek.session.weights(eager_attention=True).model
    with torch.no_grad():
        logits = model(input_ids=_inputs(peek),
                       decoder_input_ids=torch.tensor([list(run.output_ids[:-1])])).logits[0].float()
    for step, reference in zip(run.steps, logits):
        assert [w.token_id for w in step.watch] == [3, 7]
        for w in step.watch:
            assert len(w.ranks) == len(w.probabilities) == len(run.depth_labels)
            assert w.ranks[-1] == int((reference > reference[w.token_id]).sum()) + 1
            assert abs(w.probabilities[-1] - float(torch.softmax(reference, -1)[w.token_id])) <= TOLERANCE
    chosen = peek.lens(families.PROMPT, max_new_tokens=4, watch=(f"#{run.steps[0].token_id}",)).steps[0]
    assert list(chosen.watch[0].ranks) == [d.rank for d in chosen.depths]
    assert list(chosen.watch[0].probabilities) == [d.probability for d in chosen.depths]


# ----------------------------------------------------------------------------- --encoder-layer


def _encoder_by_hand(model, input_ids, layer: int):
    """The first layer + 1 encoder blocks run one by one, then the encoder's norm after its blocks (if any)."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    encoder = model.get_encoder()
    with torch.no_grad():
        hidden = encoder(input_ids=input_ids, output_hidden_states=True).hidden_states[0]  # what block 0 reads
        if hasattr(encoder, "block"):
            bias = None
            for block in encoder.block[:layer + 1]:
                hidden, bias, _ = block(hidden, position_bias=bias)
            hidden = encoder.final_layer_norm(hidden)
        else:
            for block in encoder.layers[:layer + 1]:
                hidden = block(hidden, None)
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            if getattr(encoder, "layer_norm", None) is not None:
                hidden = encoder.layer_norm(hidden)
    return BaseModelOutput(last_hidden_state=hidden)


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_bart", "tiny_mbart"])
def test_decoder_lens_is_generate_on_an_earlier_encoder_layer(request, fixture):
    import torch

    peek = _model(request.getfixturevalue(fixture))
    model = peek.session.weights(eager_attention=True).model
    input_ids = _inputs(peek)
    layers = peek.session.config.get("num_layers") or peek.session.config["encoder_layers"]
    plain = model.generate(input_ids, do_sample=False, num_beams=1, max_new_tokens=5)[0].tolist()
    last = peek.lens(families.PROMPT, max_new_tokens=5, encoder_layer=layers - 1)
    assert list(last.output_ids) == plain and last.encoder_layer == layers - 1
    assert "DecoderLens" not in last.encoder_read
    outputs = _encoder_by_hand(model, input_ids, 0)
    expected = model.generate(encoder_outputs=outputs, do_sample=False, num_beams=1, max_new_tokens=5)[0].tolist()
    first = peek.lens(families.PROMPT, max_new_tokens=5, encoder_layer=0)
    assert list(first.output_ids) == expected
    assert "encoder layer 0" in first.encoder_read
    with torch.no_grad():
        logits = model(encoder_outputs=outputs, decoder_input_ids=torch.tensor([expected[:-1]])).logits[0].float()
    for step, reference in zip(first.steps, logits):
        assert abs(step.logit - float(reference[step.token_id])) <= TOLERANCE
    forced = peek.lens(families.PROMPT, target=TARGET, encoder_layer=0)
    assert forced.lens_error <= TOLERANCE and forced.attribution_error <= TOLERANCE
    assert peek.lens(families.PROMPT, max_new_tokens=5).output_ids == tuple(plain)  # the model is left whole


def test_decoder_lens_changes_what_the_demo_says():
    run = _model("demo").lens("translate English to German: the cat is small", encoder_layer=0)
    plain = _model("demo").lens("translate English to German: the cat is small")
    assert [s.logit for s in run.steps] != [s.logit for s in plain.steps]
    assert run.encoder_layers == 3 and plain.encoder_layer is None


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in families.FAMILIES if f.model_type in lens_families()],
                         ids=lambda f: f.slug)
def test_every_family_splits_heads_and_reads_earlier_encoder_layers(family, tmp_path):
    peek = _model(family.make(tmp_path / family.slug))
    model = peek.session.weights(eager_attention=True).model
    input_ids = _inputs(peek)
    reference = model.generate(input_ids, do_sample=False, num_beams=1, max_new_tokens=4,
                               use_cache=not family.generate_needs_no_cache)[0].tolist()
    run = peek.lens(families.PROMPT, max_new_tokens=4, heads=True, encoder_layer=run_layers(peek) - 1)
    assert list(run.output_ids) == reference
    assert run.heads_error <= TOLERANCE and run.attribution_error <= TOLERANCE
    early = peek.lens(families.PROMPT, target=TARGET, heads=True, encoder_layer=0)
    assert early.heads_error <= TOLERANCE and early.lens_error <= TOLERANCE
    assert list(peek.lens(families.PROMPT, max_new_tokens=4).output_ids) == reference


def run_layers(peek) -> int:
    from t5peek import anatomy

    return int(anatomy.config_value(peek.session.config, "encoder_layers"))


# ----------------------------------------------------------------------------- the command


def test_usage_errors_are_one_line(tiny_t5):
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--encoder-layer", "2"), 2,
                       "--encoder-layer 2 is out of range", "layers 0 to 1")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--encoder-layer", "-1"), 2, "--encoder-layer -1")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--watch", "no-such-word"), 2, "--watch",
                       "not a token")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--watch", "#99999"), 2, "--watch", "not a token id")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", *["--watch", "#1"] * 11), 2, "at most 10")


def test_the_demo_text_with_every_option_fits_80_columns():
    env = {"NO_COLOR": "1", "COLUMNS": "80", "T5PEEK_ASCII": "1"}
    overview = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, "--heads", "--watch", "madre", env=env)
    assert_known_outcome(overview, 0)
    lines = overview.stdout.splitlines()
    assert all(len(line) <= 80 and line.isascii() for line in lines), overview.stdout
    assert "source or prefix" in overview.stdout and "watched tokens" in overview.stdout
    casa = next(line for line in lines if line.split()[:2] == ["1", "casa"] and "%" in line and "at" not in line)
    assert casa.split()[4] == "95%"
    detail = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, "--heads", "--watch", "madre", "--step", "1",
                        "--encoder-layer", "1", env=env)
    assert_known_outcome(detail, 0)
    assert "strongest of 48 heads" in detail.stdout and "'madre'" in detail.stdout
    assert "decoder reads: the output of encoder layer 1" in detail.stdout
    assert all(len(line) <= 80 for line in detail.stdout.splitlines())


def test_the_json_document_has_heads_watch_and_the_encoder_layer():
    run = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, "--json", "--heads", "--watch", "madre", "--watch", "#5",
                     "--encoder-layer", "2")
    assert_known_outcome(run, 0)
    document = run.json()
    assert document["encoder_layer"] == 2 and document["encoder_layers"] == 3
    assert document["heads_error"] <= TOLERANCE and document["heads_method"]
    for step in document["steps"]:
        assert [w["token"] for w in step["watch"]] == ["madre", "Auto"]
        assert all(len(w["ranks"]) == len(document["depth_labels"]) for w in step["watch"])
        for depth in step["depths"]:
            if depth["sublayer"] in ("self-attention", "cross-attention"):
                assert len(depth["heads"]) == 8 and {"head", "contribution", "sources", "value_bias"} <= set(
                    depth["heads"][0])
            else:
                assert depth["heads"] is None
        assert step["source_share"] is None or 0 <= step["source_share"] <= 1
    json.dumps(document)
    _matches_the_schema(document)


def test_a_post_norm_json_document_has_the_norm_part(tiny_bart):
    run = run_t5peek("lens", "-m", tiny_bart, families.PROMPT, "--json", "--heads", "--target", TARGET)
    assert_known_outcome(run, 0)
    document = run.json()
    attention = [d for s in document["steps"] for d in s["depths"] if d["heads"] is not None]
    assert attention and all(isinstance(d["norm_part"], float) for d in attention)
    _matches_the_schema(document)


def _matches_the_schema(document: dict) -> None:
    from importlib import resources

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(resources.files("t5peek").joinpath("schemas", "lens.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:3]]


def test_without_the_options_nothing_is_added():
    run = _model("demo").lens(DEMO_PROMPT)
    assert run.heads_method is None and run.heads_error is None and run.encoder_layer is None
    assert all(not s.watch and all(d.heads is None for d in s.depths) for s in run.steps)
