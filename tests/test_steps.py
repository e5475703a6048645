"""Step-by-step decoding against transformers' own generate(): same ids, same scores, same RNG use."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from support.builders import make_t5  # noqa: E402
from t5peek.errors import UsageError  # noqa: E402
from t5peek.generate import BeamStep, DecodeError, DecodeSettings, Step, decode, resolve_settings  # noqa: E402

PROMPT = "translate English to German : the red house is small"


def _load(folder):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def t5(tiny_t5_untied):
    return _load(tiny_t5_untied)


@pytest.fixture(scope="module")
def bart(tiny_bart):
    return _load(tiny_bart)


@pytest.fixture(scope="module")
def models(t5, bart):
    return {"t5": t5, "bart": bart}


def _ids(tokenizer, prompt=PROMPT):
    return tokenizer(prompt, return_tensors="pt").input_ids


def _oracle(model, input_ids, settings: DecodeSettings):
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    return model.generate(input_ids, **settings.generate_kwargs, return_dict_in_generate=True, output_scores=True,
                          output_logits=True)


def assert_parity(run, out):
    """Ids token for token; every shown number equal to generate()'s output_scores / output_logits."""
    assert list(run.output_ids) == out.sequences[0].tolist()
    assert len(run.steps) == len(out.scores) if run.strategy in ("greedy", "sample") else True
    beam_indices = getattr(out, "beam_indices", None)
    for t, step in enumerate(run.steps):
        row = int(beam_indices[0, t]) if beam_indices is not None else 0
        assert (step.beam or 0) == row
        scores, logits = out.scores[t][row], out.logits[t][row]
        probs = torch.softmax(out.scores[t], dim=-1)[row]
        assert step.input_ids == tuple(run.output_ids[: t + 1])
        assert step.token_id == run.output_ids[t + 1]
        for candidate in step.top_k + (step.chosen,):
            assert candidate.score == scores[candidate.token_id].item()
            assert candidate.logit == logits[candidate.token_id].item()
            assert candidate.probability == probs[candidate.token_id].item()
        shown = [c.score for c in step.top_k]
        assert shown == sorted(shown, reverse=True)
        assert shown[0] == scores.max().item()


CASES = {
    "greedy": dict(requested={"max_new_tokens": 8}),
    "beam": dict(requested={"num_beams": 3, "max_new_tokens": 7}),
    "beam-penalty": dict(requested={"num_beams": 4, "max_new_tokens": 9, "length_penalty": 0.5,
                                    "early_stopping": True}),
    "beam-never": dict(requested={"num_beams": 2, "max_new_tokens": 6, "early_stopping": "never"}),
    "sample": dict(requested={"do_sample": True, "max_new_tokens": 10}, seed=3),
    "sample-warped": dict(requested={"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 10},
                          seed=11),
    "beam-sample": dict(requested={"do_sample": True, "num_beams": 3, "max_new_tokens": 6}, seed=7),
}


@pytest.mark.parametrize("family", ["t5", "bart"])
@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_generate(models, family, case):
    model, tokenizer = models[family]
    settings = DecodeSettings(top_k=5, **CASES[case])
    input_ids = _ids(tokenizer)
    run = decode(model, tokenizer, input_ids, settings)
    assert_parity(run, _oracle(model, input_ids, settings))
    assert run.strategy == {"greedy": "greedy", "sample": "sample", "sample-warped": "sample",
                            "beam-sample": "beam sample"}.get(case, "beam")


def test_bart_processors_from_generation_config(bart):
    """BART's forced_eos_token_id (generation_config) plus min_length and no_repeat_ngram_size."""
    model, tokenizer = bart
    settings = DecodeSettings(requested={"num_beams": 2, "max_new_tokens": 10, "min_length": 5,
                                         "no_repeat_ngram_size": 2})
    input_ids = _ids(tokenizer)
    run = decode(model, tokenizer, input_ids, settings)
    assert_parity(run, _oracle(model, input_ids, settings))
    assert "ForcedEOSTokenLogitsProcessor" in run.processors
    assert "MinLengthLogitsProcessor" in run.processors
    assert "NoRepeatNGramLogitsProcessor" in run.processors
    assert run.settings["forced_eos_token_id"].value == 2
    assert run.settings["forced_eos_token_id"].source == "generation_config"
    assert run.settings["min_length"].source == "command line"
    assert len(run.output_ids) >= 5


def test_greedy_bart_forced_eos_at_max_length(bart):
    model, tokenizer = bart
    settings = DecodeSettings(requested={"max_new_tokens": 4, "min_length": 5})
    run = decode(model, tokenizer, _ids(tokenizer), settings)
    assert run.output_ids[-1] == 2  # forced at the last position
    assert_parity(run, _oracle(model, _ids(tokenizer), settings))


def test_steps_stream_as_computed(t5):
    model, tokenizer = t5
    seen = []
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"max_new_tokens": 4}),
                 on_step=seen.append)
    assert seen == list(run.steps)
    assert all(isinstance(s, Step) for s in seen)
    beams = []
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"num_beams": 3, "max_new_tokens": 4}),
                 on_step=beams.append)
    assert [b.step for b in beams] == list(range(len(beams))) and all(isinstance(b, BeamStep) for b in beams)
    assert len(beams[0].beams) == 1  # the first step has one real beam; the others are placeholders
    assert all(len(b.next_beams) == 3 for b in beams[:-1]) and beams[-1].next_beams == ()  # the search ends
    assert all([c.score for c in b.next_beams] == sorted((c.score for c in b.next_beams), reverse=True)
               for b in beams)
    for before, after in zip(beams, beams[1:]):
        rows = {row.beam: row for row in after.beams}
        for choice in before.next_beams:
            parent = next(r for r in before.beams if r.beam == choice.parent)
            assert rows[choice.beam].input_ids == parent.input_ids + (choice.token_id,)
            assert rows[choice.beam].score == pytest.approx(choice.score)
            assert choice.score == pytest.approx(parent.score + choice.step_score, abs=1e-4)


def test_kv_cache_one_token_per_step(t5):
    """The encoder runs once, the decoder gets one new token per step."""
    model, tokenizer = t5
    lengths, encoder_calls = [], []
    hooks = [model.decoder.register_forward_pre_hook(
                 lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape), with_kwargs=True),
             model.encoder.register_forward_pre_hook(lambda module, args: encoder_calls.append(1))]
    try:
        run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"num_beams": 2, "max_new_tokens": 5}))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(encoder_calls) == 1
    assert len(lengths) == len(run.beam_steps)
    assert all(shape == (2, 1) for shape in lengths)


def _reference_greedy(model, input_ids, steps: int):
    """Cache-free greedy: the whole decoder prefix again at every step."""
    decoder_ids = torch.tensor([[model.generation_config.decoder_start_token_id]])
    logits, cross = [], []
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=input_ids, decoder_input_ids=decoder_ids, use_cache=False, output_attentions=True)
            last = out.logits[0, -1]
            logits.append(last)
            cross.append(torch.stack([a[0, :, -1, :] for a in out.cross_attentions]).mean(dim=1))
            decoder_ids = torch.cat([decoder_ids, last.argmax().view(1, 1)], dim=-1)
            if decoder_ids[0, -1].item() == model.generation_config.eos_token_id:
                break
    return decoder_ids[0].tolist(), logits, cross


@pytest.fixture(scope="module")
def deep_decoder(tmp_path_factory):
    """1 encoder layer, 3 decoder layers: transformers' generate() sizes its cache by the encoder and fails."""
    return _load(make_t5(tmp_path_factory.mktemp("models") / "tiny-t5-deep-decoder", seed=6, num_layers=1,
                         num_decoder_layers=3))


@pytest.mark.parametrize("which", ["tiny_t5_asym", "deep_decoder"])
def test_asymmetric_depths_match_cache_free_reference(request, which):
    model, tokenizer = _load(request.getfixturevalue(which)) if which == "tiny_t5_asym" else \
        request.getfixturevalue(which)
    input_ids = _ids(tokenizer)
    run = decode(model, tokenizer, input_ids, DecodeSettings(requested={"max_new_tokens": 6}))
    ids, logits, cross = _reference_greedy(model, input_ids, 6)
    assert list(run.output_ids) == ids
    assert run.decoder_layers == model.config.num_decoder_layers
    for step, ref_logits, ref_cross in zip(run.steps, logits, cross):
        shown = torch.tensor([c.logit for c in step.top_k])
        assert torch.allclose(shown, ref_logits[[c.token_id for c in step.top_k]], atol=1e-5)
        assert torch.allclose(torch.tensor(step.cross_attention), ref_cross[-1], atol=1e-5)
        assert len(step.layers) == model.config.num_decoder_layers
    beams = decode(model, tokenizer, input_ids, DecodeSettings(requested={"num_beams": 3, "max_new_tokens": 5}))
    assert len(beams.output_ids) > 1


def test_deep_decoder_breaks_generate_but_not_decode(deep_decoder):
    """Documents why decode() builds its own cache; if transformers fixes it, the comparison runs instead."""
    model, tokenizer = deep_decoder
    input_ids = _ids(tokenizer)
    run = decode(model, tokenizer, input_ids, DecodeSettings(requested={"max_new_tokens": 4}))
    try:
        out = model.generate(input_ids, max_new_tokens=4)
    except IndexError:
        return
    assert list(run.output_ids) == out[0].tolist()


def test_cross_attention_is_a_distribution_over_the_source(t5):
    model, tokenizer = t5
    input_ids = _ids(tokenizer)
    run = decode(model, tokenizer, input_ids, DecodeSettings(requested={"max_new_tokens": 3}, layer=0))
    assert run.layer == 0 and run.source_ids == tuple(input_ids[0].tolist())
    for step in run.steps:
        assert len(step.cross_attention) == input_ids.shape[1]
        assert sum(step.cross_attention) == pytest.approx(1.0, abs=1e-4)
        focus = step.layers[0]
        assert focus.weight == max(step.cross_attention)
        assert focus.source_token == run.source_tokens[focus.source_index]


def test_keep_heads_for_every_layer_and_head(t5):
    model, tokenizer = t5
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"num_beams": 2, "max_new_tokens": 3},
                                                                   keep_heads=True))
    heads = run.head_attention
    assert len(heads) == len(run.steps)
    assert len(heads[0]) == run.decoder_layers and len(heads[0][0]) == run.heads
    for step, per_layer in zip(run.steps, heads):
        mean = torch.tensor(per_layer[run.layer]).mean(dim=0)
        assert torch.allclose(mean, torch.tensor(step.cross_attention), atol=1e-6)
    assert decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"max_new_tokens": 2})
                  ).head_attention is None


def test_task_specific_params_apply_to_matching_prompts(t5):
    model, tokenizer = t5
    raw = {"task_specific_params": {
        "translation_en_to_de": {"prefix": "translate English to German : ", "num_beams": 3, "max_length": 6,
                                 "early_stopping": True},
        "summarization": {"prefix": "summarize : ", "min_length": 4, "no_repeat_ngram_size": 2}}}
    # like model.generate(), the default leaves them out, and says what they would change
    settings = resolve_settings(raw, PROMPT, {})
    assert settings.task == "translation_en_to_de" and settings.generate_kwargs == {}
    run = decode(model, tokenizer, _ids(tokenizer), settings)
    assert_parity(run, _oracle(model, _ids(tokenizer), settings))
    assert run.settings["num_beams"].source == "default"
    assert run.settings["task_specific_params"].value == {"num_beams": 3, "max_length": 6, "early_stopping": True}
    settings = resolve_settings(raw, PROMPT, {}, task_params=True)
    assert settings.task == "translation_en_to_de"
    assert settings.generate_kwargs == {"num_beams": 3, "max_length": 6, "early_stopping": True}
    run = decode(model, tokenizer, _ids(tokenizer), settings)
    assert_parity(run, _oracle(model, _ids(tokenizer), settings))
    assert run.settings["num_beams"].source == "task_specific_params.translation_en_to_de"
    assert run.settings["max_new_tokens"].value == 5
    assert "max_length 6" in run.settings["max_new_tokens"].source
    # the command line wins over the task, and max_new_tokens replaces its max_length
    settings = resolve_settings(raw, PROMPT, {"num_beams": 1, "max_new_tokens": 3}, task_params=True)
    assert settings.generate_kwargs == {"num_beams": 1, "max_new_tokens": 3, "early_stopping": True}
    run = decode(model, tokenizer, _ids(tokenizer), settings)
    assert run.strategy == "greedy" and run.settings["num_beams"].source == "command line"
    assert resolve_settings(raw, "the red house", {}).task is None


def test_default_settings_are_labelled(t5):
    model, tokenizer = t5
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings())
    assert run.settings["max_new_tokens"].value == 20
    assert run.settings["max_new_tokens"].source.startswith("default")
    assert run.settings["num_beams"].source == "default"
    assert run.settings["decoder_start_token_id"].source == "generation_config"
    json.dumps(run.settings["eos_token_id"].value)  # plain values


def test_layer_out_of_range(t5):
    model, tokenizer = t5
    with pytest.raises(UsageError, match="layers 0 to 1"):
        decode(model, tokenizer, _ids(tokenizer), DecodeSettings(layer=2))


def test_top_k_is_clamped_to_the_vocabulary(t5):
    model, tokenizer = t5
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"max_new_tokens": 1}, top_k=10_000))
    assert run.top_k == model.config.vocab_size == len(run.steps[0].top_k)
    assert sum(c.probability for c in run.steps[0].top_k) == pytest.approx(1.0, abs=1e-4)


@pytest.fixture
def nan_model(tiny_t5_untied):
    model, tokenizer = _load(tiny_t5_untied)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    return model, tokenizer


def test_nan_logits_while_sampling_is_a_clear_error(nan_model):
    model, tokenizer = nan_model
    with pytest.raises(DecodeError, match="NaN"):
        decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"do_sample": True, "max_new_tokens": 3},
                                                                 seed=0))


def test_nan_logits_in_greedy_follow_generate_with_a_note(nan_model):
    model, tokenizer = nan_model
    run = decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"max_new_tokens": 3}))
    assert list(run.output_ids) == model.generate(_ids(tokenizer), max_new_tokens=3)[0].tolist()
    assert run.notes and "NaN" in run.notes[0]
    assert all(math.isnan(c.logit) for c in run.steps[0].top_k)


def test_unsupported_modes_are_usage_errors(t5):
    model, tokenizer = t5
    with pytest.raises(UsageError, match="num_return_sequences"):
        decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"num_beams": 2,
                                                                            "num_return_sequences": 2}))
    with pytest.raises(UsageError):
        decode(model, tokenizer, _ids(tokenizer), DecodeSettings(requested={"not_a_setting": 1}))
