"""The trace core: hooks, shapes checked against the model's own outputs, both decoder views, clean-up."""

from __future__ import annotations

import dataclasses
import json

import pytest

from t5peek import anatomy, loading, seq2seq, trace
from t5peek.jsonable import document

PROMPT = "translate english to german : the red house is small"
TARGET = "the blue house"


def load(folder):
    loading.quiet_libraries()
    return loading.load_model(loading.resolve_model(str(folder)), eager_attention=True)


@pytest.fixture(scope="module")
def t5(tiny_t5):
    return load(tiny_t5)


@pytest.fixture(scope="module")
def bart(tiny_bart):
    return load(tiny_bart)


@pytest.fixture(scope="module")
def asym(tiny_t5_asym):
    return load(tiny_t5_asym)


def encode(loaded, text=PROMPT):
    encoded = loaded.tokenizer(text, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def labels_of(loaded, text=TARGET):
    return loaded.tokenizer(text_target=text, return_tensors="pt")["input_ids"]


def records(report, role=None, stack=None, phase_kind=None):
    found = []
    for phase in report.phases:
        if phase_kind and phase.kind != phase_kind:
            continue
        for record in phase.records:
            if role and record.role != role:
                continue
            if stack and anatomy.stack_of(record.module) != stack:
                continue
            found.append(record)
    return found


def main_output(record):
    shapes = record.output_shapes
    return shapes.get("hidden_states", shapes.get("output"))


def assert_plain(value):
    """Records hold plain values only: no tensors, no modules, no caches."""
    import torch

    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            assert_plain(getattr(value, f.name))
    elif isinstance(value, dict):
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            assert_plain(item)
    else:
        assert not isinstance(value, (torch.Tensor, torch.nn.Module)), type(value)
        assert value is None or isinstance(value, (int, float, str, bool)), type(value)


# --------------------------------------------------------------------------------------------- module choice


def test_depth_levels_match_arch(t5, bart):
    t5_levels = {path: level for path, (_, level) in trace.module_levels(t5.model).items()}
    assert t5_levels[""] == 0 and t5_levels["encoder"] == 1 and t5_levels["encoder.block.0"] == 2
    assert t5_levels["encoder.block.0.layer.0"] == 3
    assert t5_levels["encoder.block.0.layer.0.SelfAttention"] == 4
    assert t5_levels["encoder.block.0.layer.0.SelfAttention.q"] == 5
    bart_levels = {path: level for path, (_, level) in trace.module_levels(bart.model).items()}
    assert bart_levels["model.encoder.layers.0"] == 3 and bart_levels["model.encoder.layers.0.self_attn"] == 4
    chosen = trace.select_modules(t5.model, 2)
    assert "encoder.block.1" in chosen and "encoder.block.1.layer.0" not in chosen
    assert "encoder.block" not in chosen  # a ModuleList never runs


def test_block_view_has_blocks_and_their_sublayers(t5, bart):
    chosen = set(trace.select_modules(t5.model, None))
    assert {"", "encoder", "decoder", "lm_head", "encoder.embed_tokens", "encoder.final_layer_norm",
            "encoder.block.0", "encoder.block.0.layer.0.SelfAttention", "encoder.block.0.layer.0.layer_norm",
            "encoder.block.0.layer.1.DenseReluDense", "decoder.block.1.layer.1.EncDecAttention",
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias"} <= chosen
    assert not {"encoder.block.0.layer.0.SelfAttention.q", "encoder.block.0.layer.0.dropout",
                "encoder.block.0.layer.1.DenseReluDense.wi", "encoder.dropout"} & chosen
    chosen = set(trace.select_modules(bart.model, None))
    assert {"model.decoder.layers.0", "model.decoder.layers.0.self_attn", "model.decoder.layers.0.encoder_attn",
            "model.decoder.layers.0.fc1", "model.decoder.layers.0.final_layer_norm",
            "model.encoder.embed_positions"} <= chosen
    assert "model.decoder.layers.0.self_attn.k_proj" not in chosen


# --------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_shapes_agree_with_the_models_own_outputs(name, request):
    import torch

    loaded = request.getfixturevalue(name)
    input_ids, mask = encode(loaded)
    labels = labels_of(loaded)
    report = trace.trace_forward(loaded.model, input_ids, mask, target_ids=labels)
    with torch.no_grad():
        reference = loaded.model(input_ids=input_ids, attention_mask=mask,
                                 decoder_input_ids=seq2seq.shift_right(loaded.model, labels),
                                 output_hidden_states=True, output_attentions=True, use_cache=False)
    for stack, hidden in (("encoder", reference.encoder_hidden_states),
                          ("decoder", reference.decoder_hidden_states)):
        blocks = records(report, role=trace.BLOCK, stack=stack)
        assert len(blocks) == len(hidden) - 1  # hidden_states = embeddings + one per block
        for block, expected in zip(blocks, hidden[1:]):
            assert main_output(block) == tuple(expected.shape)
    for stack, kind, expected in (("encoder", "self", reference.encoder_attentions),
                                  ("decoder", "self", reference.decoder_attentions),
                                  ("decoder", "cross", reference.cross_attentions)):
        found = [r.attention.shape for r in records(report, stack=stack) if r.attention and r.attention.kind == kind]
        assert found == [tuple(a.shape) for a in expected]
    head = records(report, role=anatomy.LM_HEAD)[0]
    assert head.output_shapes["output"] == tuple(reference.logits.shape)
    for record in records(report):
        assert record.dtype == "float32" and record.device == "cpu" and record.time_ms >= 0
    assert_plain(report)


def test_attention_kinds_are_marked(bart):
    input_ids, mask = encode(bart)
    report = trace.trace_forward(bart.model, input_ids, mask, target_ids=labels_of(bart))
    src, tgt = input_ids.shape[-1], labels_of(bart).shape[-1]
    heads = bart.model.config.decoder_attention_heads
    kinds = {(r.module.rsplit(".", 1)[-1], r.attention.kind, r.attention.shape)
             for r in records(report, stack="decoder") if r.attention}
    assert kinds == {("self_attn", "self", (1, heads, tgt, tgt)), ("encoder_attn", "cross", (1, heads, tgt, src))}


def test_caches_are_followed_into_per_layer_shapes(t5):
    input_ids, mask = encode(t5)
    report = trace.trace_forward(t5.model, input_ids, mask, steps=2, stop_at_eos=False)
    step1 = [p for p in report.phases if p.kind == "step"][1]
    root = step1.records[0]
    assert root.role == trace.MODEL
    name = "cache" if "cache" in root.input_shapes else "past_key_values"  # transformers' name up to 5.23
    before, after = root.input_shapes[name], root.output_shapes[name]
    assert isinstance(before, trace.CacheShape) and before.cls == "EncoderDecoderCache"
    heads, head_dim = t5.model.config.num_heads, t5.model.config.d_kv
    assert [layer.keys for layer in before.self_attention] == [(1, heads, 1, head_dim)] * 2
    assert [layer.values for layer in after.self_attention] == [(1, heads, 2, head_dim)] * 2
    assert after.cross_lengths == (input_ids.shape[-1],) * 2


# --------------------------------------------------------------------------------------------- the two views


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_teacher_forcing_feeds_the_labels_shifted_right(name, request):
    loaded = request.getfixturevalue(name)
    input_ids, mask = encode(loaded)
    labels = labels_of(loaded)
    report = trace.trace_forward(loaded.model, input_ids, mask, target_ids=labels, tokenizer=loaded.tokenizer)
    start = loaded.model.config.decoder_start_token_id
    assert report.view == "teacher-forcing"
    assert report.labels == tuple(labels[0].tolist())
    assert report.decoder_input_ids == (start,) + report.labels[:-1]
    assert report.decoder_input_tokens[1:] == report.label_tokens[:-1]
    assert report.loss is not None and len(report.predicted_ids) == len(report.labels)
    # The whole target goes through the decoder at once: every decoder block sees all T positions.
    length = len(report.labels)
    for block in records(report, role=trace.BLOCK, stack="decoder"):
        assert main_output(block)[1] == length
    self_attn = [r.attention.shape for r in records(report, stack="decoder") if r.attention
                 and r.attention.kind == "self"]
    assert self_attn and all(shape[-2:] == (length, length) for shape in self_attn)
    assert [p.kind for p in report.phases] == ["forward"]
    assert report.phases[0].cross_kv_projections == 2 * len(records(report, role=trace.BLOCK, stack="decoder"))


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_generation_grows_the_cache_by_one_per_step(name, request):
    loaded = request.getfixturevalue(name)
    input_ids, mask = encode(loaded)
    report = trace.trace_forward(loaded.model, input_ids, mask, steps=3, stop_at_eos=False)
    layers = len(records(report, role=trace.BLOCK, stack="decoder", phase_kind="step")) // 3
    assert [p.kind for p in report.phases] == ["encoder", "step", "step", "step"]
    assert [s.position for s in report.steps] == [0, 1, 2]
    for i, step in enumerate(report.steps):
        assert step.self_cache_before == ((i,) * layers if i else ())
        assert step.self_cache_after == (i + 1,) * layers
        assert step.cross_cache == (input_ids.shape[-1],) * layers
    assert report.steps[0].input_id == loaded.model.config.decoder_start_token_id
    assert [s.input_id for s in report.steps[1:]] == [s.next_id for s in report.steps[:-1]]
    # One new query per step; keys = everything cached so far (self) or every encoder position (cross).
    for phase, step in zip(report.phases[1:], report.steps):
        shapes = {(r.attention.kind, r.attention.shape[-2:]) for r in phase.records if r.attention}
        assert shapes == {("self", (1, step.position + 1)), ("cross", (1, input_ids.shape[-1]))}
    # The encoder ran once, in its own phase, and never again.
    assert all(anatomy.stack_of(r.module) != "encoder" for p in report.phases[1:] for r in p.records)
    assert records(report, phase_kind="encoder")[0].module.endswith("encoder")


@pytest.mark.parametrize("name, projection", [("t5", "EncDecAttention.k"), ("bart", "encoder_attn.k_proj")])
def test_cross_attention_keys_and_values_are_computed_once(name, projection, request):
    """transformers 5.23 projects the encoder output to cross keys/values at step 0, then reads the cache."""
    loaded = request.getfixturevalue(name)
    input_ids, mask = encode(loaded)
    calls = []
    handles = [module.register_forward_hook(lambda *args, path=path: calls.append(path))
               for path, module in loaded.model.named_modules() if path.endswith(projection)]
    try:
        report = trace.trace_forward(loaded.model, input_ids, mask, steps=3, stop_at_eos=False)
    finally:
        for handle in handles:
            handle.remove()
    layers = len(handles)
    assert layers == len(report.steps[0].self_cache_after)
    assert sorted(calls) == sorted(set(calls)) and len(calls) == layers  # each layer's projection ran once
    assert [s.cross_kv_projections for s in report.steps] == [2 * layers, 0, 0]  # k and v, at step 0 only
    assert [p.cross_kv_projections for p in report.phases] == [0, 2 * layers, 0, 0]


def test_generation_with_encoder_deeper_than_decoder(asym):
    input_ids, mask = encode(asym)
    report = trace.trace_forward(asym.model, input_ids, mask, steps=3, stop_at_eos=False)
    assert len(records(report, role=trace.BLOCK, phase_kind="encoder")) == 3
    for phase in report.phases[1:]:
        assert len([r for r in phase.records if r.role == trace.BLOCK]) == 1
    assert [s.self_cache_after for s in report.steps] == [(1,), (2,), (3,)]
    assert [s.cross_kv_projections for s in report.steps] == [2, 0, 0]


def test_generation_with_decoder_deeper_than_encoder(tmp_path):
    """transformers' own generate() sizes its cache by the encoder depth here; the trace's cache grows lazily."""
    from support.builders import make_t5

    loaded = load(make_t5(tmp_path / "deep-decoder", seed=5, num_layers=1, num_decoder_layers=3))
    input_ids, mask = encode(loaded)
    report = trace.trace_forward(loaded.model, input_ids, mask, steps=2, stop_at_eos=False)
    assert [s.self_cache_after for s in report.steps] == [(1, 1, 1), (2, 2, 2)]


def test_generation_stops_at_end_of_sequence(t5, monkeypatch):
    input_ids, mask = encode(t5)
    first = trace.trace_forward(t5.model, input_ids, mask, steps=1).steps[0].next_id
    monkeypatch.setattr(t5.model.generation_config, "eos_token_id", first)
    report = trace.trace_forward(t5.model, input_ids, mask, steps=3)
    assert len(report.steps) == 1 and report.steps[0].eos
    assert any("end-of-sequence" in note for note in report.notes)


def test_depth_zero_and_steps_zero(t5):
    input_ids, mask = encode(t5)
    report = trace.trace_forward(t5.model, input_ids, mask, depth=0, steps=2, stop_at_eos=False)
    assert report.phases[0].records == ()  # the encoder is called directly, not through the root
    assert all([r.module for r in p.records] == [""] for p in report.phases[1:])
    report = trace.trace_forward(t5.model, input_ids, mask, steps=0)
    assert [p.kind for p in report.phases] == ["encoder"] and report.steps == ()
    with pytest.raises(ValueError):
        trace.trace_forward(t5.model, input_ids, mask, depth=-1)


# --------------------------------------------------------------------------------------------- robustness


def all_hooks(model):
    return [(path, hooks) for path, module in model.named_modules()
            for hooks in (module._forward_hooks, module._forward_pre_hooks, module._forward_hooks_with_kwargs,
                          module._forward_pre_hooks_with_kwargs) if hooks]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_hooks_are_removed_and_mode_restored_after_an_error(tiny_t5, monkeypatch, error):
    loaded = load(tiny_t5)
    model = loaded.model
    model.train()
    model.decoder.block[0].layer[0].training = False  # a mixed state, restored as it was
    modes = {path: module.training for path, module in model.named_modules()}
    assert all_hooks(model) == []
    input_ids, mask = encode(loaded)
    failing = model.decoder.block[1].layer[1]
    seen = {}

    def explode(*args, **kwargs):
        seen["hooks"] = len(all_hooks(model))
        seen["training"] = model.training
        raise error

    monkeypatch.setattr(failing, "forward", explode)
    with pytest.raises(type(error)):
        trace.trace_forward(model, input_ids, mask, steps=2)
    assert seen["hooks"] > 10 and seen["training"] is False  # hooks were on, the model was in eval mode
    assert all_hooks(model) == []
    assert {path: module.training for path, module in model.named_modules()} == modes


def test_tracer_context_removes_its_hooks(t5):
    before = all_hooks(t5.model)
    with trace.Tracer(t5.model) as tracer:
        assert tracer.hook_count > 0 and len(all_hooks(t5.model)) > len(before)
    assert all_hooks(t5.model) == before


def test_cached_hook_plan_does_not_keep_the_model_alive():
    import gc
    import weakref

    import torch
    from support.builders import t5_config
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration(t5_config()).eval()
    ids = torch.tensor([[5, 6, 7, 1]])
    trace.trace_forward(model, ids, steps=1)
    first = trace.hook_plan(model, None)
    assert trace.hook_plan(model, None) is first  # built once, reused
    model.decoder.block[1].layer[0].layer_norm = torch.nn.LayerNorm(32)  # the tree changed: rebuilt
    assert trace.hook_plan(model, None) is not first
    alive = weakref.ref(model)
    del model, first
    gc.collect()
    assert alive() is None


def test_stats_flag_the_first_non_finite_module(t5):
    import torch

    input_ids, mask = encode(t5)
    culprit = "encoder.block.1.layer.1.DenseReluDense"

    def inject(module, args, output):
        output = output.clone()
        output[0, 0, 0] = float("inf")
        return output

    handle = t5.model.get_submodule(culprit).register_forward_hook(inject)
    try:
        report = trace.trace_forward(t5.model, input_ids, mask, target_ids=labels_of(t5), stats=True)
    finally:
        handle.remove()
    bad = report.first_nonfinite
    assert bad is not None and bad.module == culprit and bad.inf >= 1 and bad.output == "output"
    by_path = {r.module: r for r in records(report)}
    assert by_path["encoder.block.1.layer.0.SelfAttention"].stats["output"].finite
    assert not by_path["encoder.block.1"].stats["hidden_states"].finite  # the block it sits in, later
    clean = by_path["encoder.block.0"].stats["hidden_states"]
    assert clean.finite and clean.abs_max > 0 and clean.std > 0
    assert torch.isfinite(torch.tensor(clean.mean))

    plain = trace.trace_forward(t5.model, input_ids, mask, target_ids=labels_of(t5), stats=True)
    assert plain.first_nonfinite is None
    without = trace.trace_forward(t5.model, input_ids, mask, target_ids=labels_of(t5))
    assert all(r.stats is None for r in records(without))


def test_tensor_stats_over_finite_values():
    import torch

    stats = trace.tensor_stats({"x": torch.tensor([1.0, 3.0, float("nan"), float("-inf")]),
                                "ids": torch.tensor([1, 2])})
    assert set(stats) == {"x"}
    assert stats["x"].mean == 2.0 and stats["x"].abs_max == 3.0 and stats["x"].nan == 1 and stats["x"].inf == 1
    assert stats["x"].std == pytest.approx(2 ** 0.5)


def test_report_json_document(t5):
    input_ids, mask = encode(t5)
    report = trace.trace_forward(t5.model, input_ids, mask, target_ids=labels_of(t5), stats=True, explain=True,
                                 tokenizer=t5.tokenizer, prompt=PROMPT, target=TARGET)
    data = json.loads(json.dumps(document("trace", report)))
    record = data["phases"][0]["records"][1]
    assert {"module", "class", "input_shapes", "output_shapes", "dtype", "device", "time_ms", "stats"} <= set(record)
    assert record["module"] == "encoder" and record["class"] == "T5Stack"
    assert data["command"] == "trace" and data["schema_version"] == 1 and data["view"] == "teacher-forcing"
    assert data["decoder_input_ids"][1:] == data["labels"][:-1]
    assert set(data["explanations"]) >= {"embedding", "residual", "self-attention:encoder", "cross-attention",
                                         "feed-forward", "norm", "lm_head", "position:relative"}


def test_position_limit():
    from t5peek.seq2seq import PositionLimit, decoder_limit, encoder_limit

    class Tokenizer:
        model_max_length = 512

    class Unlimited:
        model_max_length = int(1e30)

    assert encoder_limit({"model_type": "bart", "max_position_embeddings": 1024}, Unlimited()) == PositionLimit(
        1024, "max_position_embeddings in config.json", hard=True)
    assert encoder_limit({"model_type": "t5", "n_positions": 512}, Unlimited()) == PositionLimit(None)
    assert encoder_limit({"model_type": "t5"}, Tokenizer()) == PositionLimit(
        512, "the tokenizer's model_max_length", hard=False)
    nested = {"model_type": "encoder-decoder", "encoder": {"max_position_embeddings": 512},
              "decoder": {"max_position_embeddings": 128}}
    assert decoder_limit(nested).positions == 128
    assert encoder_limit(nested).source == "the encoder's max_position_embeddings in config.json"
