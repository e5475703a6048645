"""t5peek lens: the logit lens and direct logit attribution, every number checked against transformers itself.

Tolerance: 1e-4 absolute in float32, for the lens at the last depth against the model's logits and for the
attribution's parts (plus the head's constant) against the chosen logit.
"""

from __future__ import annotations

import json
import math

import pytest

import families
from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek
from t5peek.errors import UnsupportedModel
from t5peek.families import lens_families

TOLERANCE = 1e-4
DEMO_PROMPT = "translate English to Spanish: the red house is small"
DEMO_TARGET = "la casa roja es pequeña"
TINY_TARGET = "the red house is small"
NEW_TOKENS = 5
CHECKPOINTS = ("tiny_t5", "tiny_t5_untied", "tiny_flan", "tiny_bart", "tiny_marian", "demo")


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory):
    return families.by_name("marian").make(tmp_path_factory.mktemp("models") / "tiny-marian")


@pytest.fixture(scope="module")
def tiny_flan(tmp_path_factory):
    """flan-t5 as its config.json says it, with other weights than conftest's tiny_t5_untied: gated-gelu, an
    lm_head of its own, tie_word_embeddings false and so no d_model**-0.5 rescale."""
    from support.builders import make_untied_t5

    return make_untied_t5(tmp_path_factory.mktemp("models") / "tiny-flan", seed=5)


@pytest.fixture(scope="module")
def tiny_mbart(tmp_path_factory):
    return families.by_name("mbart").make(tmp_path_factory.mktemp("models") / "tiny-mbart")


@pytest.fixture(params=CHECKPOINTS)
def peek(request):
    from t5peek.api import Model

    name = "demo" if request.param == "demo" else str(request.getfixturevalue(request.param))
    return Model(name)


def _prompt(peek) -> tuple[str, str]:
    return (DEMO_PROMPT, DEMO_TARGET) if peek.name == "demo" else (families.PROMPT, TINY_TARGET)


def _model_logits(peek, decoder_input_ids):
    """The model's own logits for a decoder input, in one forward without a cache (the oracle)."""
    import torch

    model = peek.session.weights(eager_attention=True).model
    input_ids = peek.session.tokenizer(_prompt(peek)[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=input_ids, decoder_input_ids=torch.tensor([decoder_input_ids])).logits[0].float()


def _check_against(run, logits) -> None:
    """Every step's last depth against the model's logits; the attribution's parts against the logit."""
    import torch

    for step, reference in zip(run.steps, logits):
        last = step.depths[-1]
        top_logits, top_ids = torch.topk(reference, run.top_k)
        assert [c.token_id for c in last.top_k] == top_ids.tolist()
        assert max(abs(c.logit - x) for c, x in zip(last.top_k, top_logits.tolist())) <= TOLERANCE
        assert abs(step.logit - float(reference[step.token_id])) <= TOLERANCE
        assert abs(step.probability - float(torch.softmax(reference, -1)[step.token_id])) <= TOLERANCE
        assert last.rank == int((reference > reference[step.token_id]).sum()) + 1
        parts = sum(d.contribution for d in step.depths) + step.constant
        assert abs(parts - step.logit) <= TOLERANCE, (step.step, parts, step.logit)
    assert run.lens_error <= TOLERANCE and run.attribution_error <= TOLERANCE


def test_greedy_lens_equals_generate_and_the_models_logits(peek):
    prompt, _ = _prompt(peek)
    run = peek.lens(prompt, max_new_tokens=NEW_TOKENS)
    model = peek.session.weights(eager_attention=True).model
    input_ids = peek.session.tokenizer(prompt, return_tensors="pt")["input_ids"]
    reference = model.generate(input_ids, do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS)[0].tolist()
    assert list(run.output_ids) == reference
    assert [s.token_id for s in run.steps] == reference[1:]
    assert [s.input_id for s in run.steps] == reference[:-1]
    assert len(run.depth_labels) == 1 + 3 * run.decoder_layers == len(run.steps[0].depths)
    _check_against(run, _model_logits(peek, reference[:-1]))


def test_teacher_forcing_reads_every_target_position(peek):
    import torch

    prompt, target = _prompt(peek)
    run = peek.lens(prompt, target=target)
    model = peek.session.weights(eager_attention=True).model
    tokenizer = peek.session.tokenizer
    labels = tokenizer(text_target=target, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=tokenizer(prompt, return_tensors="pt")["input_ids"], labels=labels).logits[0]
    assert [s.token_id for s in run.steps] == labels[0].tolist()
    assert run.view == "teacher-forcing" and run.stop_reason.startswith("teacher forcing")
    _check_against(run, logits.float())


def _streams_and_sublayer_outputs(model, model_type, input_ids, labels):
    """The lens' streams, the outputs transformers records (hidden states) and each attention's and feed-forward's
    own output, caught by hooks of this test."""
    import torch

    from t5peek.lens.stream import Recorder, read_anatomy
    from t5peek.probe.hooks import hooked

    shape = read_anatomy(model, model_type)
    outputs, handles = {}, []
    for index, layer in enumerate(_decoder_layers(model)):
        for name, module in _sublayer_modules(layer):
            handles.append(module.register_forward_hook(
                lambda _m, _a, out, key=(index, name): outputs.__setitem__(key, out[0] if isinstance(out, tuple)
                                                                            else out)))
    try:
        recorder = Recorder(shape.taps)
        with torch.no_grad(), hooked(model, recorder.hooks()):
            result = model(input_ids=input_ids, labels=labels, output_hidden_states=True)
            streams = recorder.take()
    finally:
        for handle in handles:
            handle.remove()
    return shape, streams, result.decoder_hidden_states, outputs


def _decoder_layers(model):
    decoder = model.get_decoder()
    return decoder.block if hasattr(decoder, "block") else decoder.layers


def _sublayer_modules(layer):
    if hasattr(layer, "layer"):  # T5Block
        return (("self", layer.layer[0].SelfAttention), ("cross", layer.layer[1].EncDecAttention),
                ("ff", layer.layer[2].DenseReluDense))
    return (("self", layer.self_attn), ("cross", layer.encoder_attn), ("ff", layer.fc2))


@pytest.mark.parametrize("fixture, model_type", [("tiny_t5", "t5"), ("tiny_flan", "t5"), ("tiny_bart", "bart"),
                                                 ("tiny_marian", "marian"), ("tiny_mbart", "mbart")])
def test_every_depth_is_the_stream_after_its_sublayer(request, fixture, model_type):
    """Embedding and layer outputs equal transformers' hidden states; each increment is the sublayer's own output
    (pre-norm), or the change its LayerNorm makes of stream + output (post-norm)."""
    import torch

    from t5peek.api import Model
    from t5peek.lens.stream import POST_NORM

    peek = Model(str(request.getfixturevalue(fixture)))
    model = peek.session.weights(eager_attention=True).model
    tokenizer = peek.session.tokenizer
    shape, streams, hidden, outputs = _streams_and_sublayer_outputs(
        model, model_type, tokenizer(families.PROMPT, return_tensors="pt")["input_ids"],
        tokenizer(text_target=TINY_TARGET, return_tensors="pt")["input_ids"])
    layers = shape.decoder_layers
    for index in range(layers):  # the last hidden state may come after the final norm
        assert torch.allclose(streams[3 * index], hidden[index][0], atol=1e-5)
    for index, layer in enumerate(_decoder_layers(model)):
        norms = (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm) \
            if shape.norm_placement == POST_NORM else (None, None, None)
        for n, name in enumerate(("self", "cross", "ff")):
            before, after = streams[3 * index + n], streams[3 * index + n + 1]
            output = outputs[(index, name)][0].float()
            expected = norms[n](before + output) if norms[n] is not None else before + output
            assert torch.allclose(after, expected, atol=1e-5), (fixture, index, name)


def test_attribution_is_the_final_norm_frozen_then_the_head(tiny_flan):
    """The last feed-forward's push, recomputed by hand: its output through final_layer_norm's weight and the final
    stream's 1/rms, then lm_head's row of the chosen token (flan-t5 style: untied head, no rescale)."""
    import torch

    from t5peek.api import Model

    peek = Model(str(tiny_flan))
    run = peek.lens(families.PROMPT, target=TINY_TARGET)
    model = peek.session.weights(eager_attention=True).model
    tokenizer = peek.session.tokenizer
    _, streams, _, outputs = _streams_and_sublayer_outputs(
        model, "t5", tokenizer(families.PROMPT, return_tensors="pt")["input_ids"],
        tokenizer(text_target=TINY_TARGET, return_tensors="pt")["input_ids"])
    norm = model.get_decoder().final_layer_norm
    last_ff = outputs[(len(model.get_decoder().block) - 1, "ff")][0]
    assert run.head == "final_layer_norm (RMS), then lm_head"
    for position, step in enumerate(run.steps):
        final = streams[-1, position]
        inverse = torch.rsqrt(final.pow(2).mean() + norm.variance_epsilon)
        row = model.lm_head.weight[step.token_id] * norm.weight * inverse
        assert abs(step.depths[-1].contribution - float(row.detach() @ last_ff[position])) <= TOLERANCE
        assert step.constant == 0.0


def test_the_demo_settles_on_casa_with_cross_attention():
    """What the README shows: 'casa' at step 1, top-1 only from a late depth, cross-attention pushing it there."""
    from t5peek.api import Model

    run = Model("demo").lens(DEMO_PROMPT)
    casa = run.steps[1]
    assert casa.token == "casa" and run.output_text == DEMO_TARGET
    assert casa.settled_depth is not None and casa.settled_depth > 3
    assert run.depth_labels[casa.settled_depth].endswith("cross-attention")
    assert sum(d.contribution for d in casa.depths if d.sublayer == "cross-attention") > 1.0
    assert "frozen" in run.method and run.norm_placement == "pre-norm"


SUPPORTED_FAMILIES = [f for f in families.FAMILIES if f.model_type in lens_families()]
REFUSED_FAMILIES = [f for f in families.FAMILIES if f not in SUPPORTED_FAMILIES]


@pytest.mark.slow
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES, ids=lambda f: f.slug)
def test_every_supported_family_matches_transformers(family, tmp_path):
    from t5peek.api import Model

    peek = Model(str(family.make(tmp_path / family.slug)))
    run = peek.lens(families.PROMPT, max_new_tokens=NEW_TOKENS)
    model = peek.session.weights(eager_attention=True).model
    input_ids = peek.session.tokenizer(families.PROMPT, return_tensors="pt")["input_ids"]
    reference = model.generate(input_ids, do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS,
                               use_cache=not family.generate_needs_no_cache)[0].tolist()
    assert list(run.output_ids) == reference
    _check_against(run, _model_logits(peek, reference[:-1]))
    forced = peek.lens(families.PROMPT, target=TINY_TARGET)
    assert forced.lens_error <= TOLERANCE and forced.attribution_error <= TOLERANCE


@pytest.mark.parametrize("family", REFUSED_FAMILIES, ids=lambda f: f.slug)
def test_other_families_are_refused(family, tmp_path):
    from t5peek.api import Model

    with pytest.raises(UnsupportedModel, match="t5peek lens does not support"):
        Model(str(family.make(tmp_path / family.slug))).lens(families.PROMPT)


def test_processors_that_overrule_the_model_are_named(tiny_marian):
    """Marian's generation config forces the end-of-sequence token at the last step: the chosen token is then not
    the model's top-1, and the run says so."""
    from t5peek.api import Model

    run = Model(str(tiny_marian)).lens(families.PROMPT, max_new_tokens=NEW_TOKENS)
    overruled = [s for s in run.steps if s.depths[-1].rank != 1]
    assert overruled and all(s.settled_depth is None for s in overruled)
    assert any("logits processors" in note for note in run.notes)
    assert any("post-norm" in note for note in run.notes) and run.norm_placement == "post-norm"


# ----------------------------------------------------------------------------- the command


def test_usage_errors_are_one_line(tiny_t5):
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--target", "x", "-n", "3"), 2, "one or the other")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--top-k", "0"), 2, "--top-k")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "a b", "--step", "8"), 2, "--step 8 is out of range")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "   "), 2, "PROMPT is empty")
    assert_clean_error(run_cli("lens", "-m", tiny_t5, "the red house", "--target", "the house", "--step", "5"),
                       2, "--step 5 is out of range: the target")


def test_the_installed_command_shows_casa_rising(tmp_path):
    run = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, env={"NO_COLOR": "1", "COLUMNS": "80", "T5PEEK_ASCII": "1"})
    assert_known_outcome(run, 0)
    lines = run.stdout.splitlines()
    assert all(len(line) <= 80 and line.isascii() for line in lines), run.stdout
    grid_row = next(line for line in lines if line.startswith("2 cross-attn"))
    assert "casa*" in grid_row
    assert "direct logit attribution" in run.stdout and "settles at" in run.stdout
    detail = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, "--step", "1", env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert_known_outcome(detail, 0)
    assert "chose 'casa'" in detail.stdout and "top 3 at this depth" in detail.stdout


def test_the_installed_command_json_document():
    run = run_t5peek("lens", "-m", "demo", DEMO_PROMPT, "--target", DEMO_TARGET, "--json", "--top-k", "2")
    assert_known_outcome(run, 0)
    document = run.json()
    assert document["command"] == "lens" and document["view"] == "teacher-forcing"
    assert document["method"].startswith("direct logit attribution")
    assert [s["token"] for s in document["steps"]] == ["la", "casa", "roja", "es", "pequeña", "</s>"]
    for step in document["steps"]:
        assert len(step["depths"]) == len(document["depth_labels"]) == 10
        assert all(len(d["top_k"]) == 2 for d in step["depths"])
        parts = sum(d["contribution"] for d in step["depths"]) + step["constant"]
        assert math.isclose(parts, step["logit"], abs_tol=TOLERANCE)
    json.dumps(document)  # plain JSON throughout


def test_a_refused_family_exits_2_in_one_line(tmp_path):
    folder = families.by_name("fsmt").make(tmp_path / "fsmt")
    run = run_t5peek("lens", "-m", folder, families.PROMPT)
    assert_known_outcome(run, 2, "does not support fsmt")


def test_tokens_are_text_not_markup():
    """A token that looks like rich markup is printed as it is, and the lines fit 80 columns."""
    import io

    from t5peek.kinds import View
    from t5peek.lens import DepthReading, LensCandidate, LensRun, LensStep
    from t5peek.render.format import SafeConsole
    from t5peek.render.lens import render_lens

    odd = "[bold red]x[/]"
    depths = tuple(DepthReading(n, None if n == 0 else 0, sub, (LensCandidate(7, odd, 1.0, 0.5),), 1, 1.0, 0.5, 0.25)
                   for n, sub in enumerate(("embedding", "self-attention", "cross-attention", "feed-forward")))
    step = LensStep(0, 0, "<pad>", 7, odd, 1.0, 0.5, 0.0, 0, depths)
    run = LensRun("m", "p", None, View.GENERATION, "t5", "pre-norm", "h", "lens", "push", (1,), ("a",), 1,
                  ("embedding", "0 self-attention", "0 cross-attention", "0 feed-forward"), 1, (step,), (0, 7), "x",
                  "max_new_tokens", 0.0, 0.0)
    for shown in (None, 0):
        buffer = io.StringIO()
        render_lens(run, SafeConsole(file=buffer, width=80, color_system=None), shown)
        assert odd in buffer.getvalue()
        assert all(len(line.rstrip()) <= 80 for line in buffer.getvalue().splitlines())
