"""The probe layer on tiny models: hooks read what transformers reports, write what they are told (checked against
oracles: zeroed weights for a knocked-out head, the clean run recovered by patching every position), and always
come off again; one cached decoder step equals the full pass."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from t5peek.probe.hooks import INPUT, OUTPUT, Hook, evaluating, hooked, keep, zero_heads  # noqa: E402
from t5peek.probe.stepping import decoder_step  # noqa: E402
from t5peek.seq2seq import new_cache  # noqa: E402


@pytest.fixture(scope="module", params=["t5", "bart"])
def model(request, tiny_t5, tiny_bart):
    from transformers import AutoModelForSeq2SeqLM

    folder = tiny_t5 if request.param == "t5" else tiny_bart
    return AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()


def inputs(model):
    torch.manual_seed(0)
    vocab = model.config.vocab_size
    input_ids = torch.randint(4, vocab, (1, 7))
    decoder_input_ids = torch.cat([torch.tensor([[model.config.decoder_start_token_id]]),
                                   torch.randint(4, vocab, (1, 4))], dim=1)
    return input_ids, decoder_input_ids


def logits(model, input_ids, decoder_input_ids, **kwargs):
    with torch.no_grad():
        return model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, **kwargs).logits


def decoder_layers(model):
    decoder = model.get_decoder()
    return list(decoder.block if hasattr(decoder, "block") else decoder.layers)


def encoder_layers(model):
    encoder = model.get_encoder()
    return list(encoder.block if hasattr(encoder, "block") else encoder.layers)


def output_projection(layer):
    """The self-attention's output projection of a decoder layer (T5's `o`, BART's `out_proj`)."""
    attention = layer.layer[0].SelfAttention if hasattr(layer, "layer") else layer.self_attn
    return attention.o if hasattr(attention, "o") else attention.out_proj


def test_reading_outputs_equals_the_hidden_states_transformers_reports(model):
    input_ids, decoder_input_ids = inputs(model)
    kept: list = []
    with torch.no_grad(), hooked(model, [Hook(layer, OUTPUT, keep(kept)) for layer in encoder_layers(model)]):
        result = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids, output_hidden_states=True)
    reported = result.encoder_hidden_states[1:]
    assert len(kept) == len(reported)
    # T5's last hidden state is after the final norm; every earlier one is a block's own output
    for ours, theirs in list(zip(kept, reported))[:-1]:
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_a_replacement_by_the_same_value_changes_nothing_and_zeros_change_the_logits(model):
    input_ids, decoder_input_ids = inputs(model)
    clean = logits(model, input_ids, decoder_input_ids)
    layer = decoder_layers(model)[0]
    with hooked(model, [Hook(layer, OUTPUT, lambda value, _call: value.clone())]):
        same = logits(model, input_ids, decoder_input_ids)
    with hooked(model, [Hook(layer, INPUT, lambda value, _call: torch.zeros_like(value))]):
        zeroed = logits(model, input_ids, decoder_input_ids)
    torch.testing.assert_close(same, clean, rtol=0, atol=0)
    assert not torch.allclose(zeroed, clean)


def test_zeroing_a_head_equals_zeroing_its_weights(model):
    """The knockout oracle: zeroing head h's slice before the output projection computes what the model computes
    with the projection's columns of that head set to zero."""
    import copy

    input_ids, decoder_input_ids = inputs(model)
    config = model.config
    heads = getattr(config, "num_heads", None) or config.decoder_attention_heads
    head_size = getattr(config, "d_kv", None) or config.d_model // heads
    knocked = [1, heads - 1]
    with hooked(model, [Hook(output_projection(decoder_layers(model)[-1]), INPUT, zero_heads(knocked, head_size))]):
        hooked_logits = logits(model, input_ids, decoder_input_ids)

    oracle = copy.deepcopy(model)
    weight = output_projection(decoder_layers(oracle)[-1]).weight
    with torch.no_grad():
        for head in knocked:
            weight[:, head * head_size:(head + 1) * head_size] = 0
    torch.testing.assert_close(hooked_logits, logits(oracle, input_ids, decoder_input_ids), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(hooked_logits, logits(model, input_ids, decoder_input_ids))


def test_patching_every_position_from_the_clean_run_recovers_it(model):
    """Full-cut recovery: the corrupted run with every encoder block's output restored from the clean run gives
    the clean logits exactly."""
    input_ids, decoder_input_ids = inputs(model)
    corrupted_ids = input_ids.flip(-1)
    clean_states: list = []
    with hooked(model, [Hook(layer, OUTPUT, keep(clean_states)) for layer in encoder_layers(model)]):
        clean = logits(model, input_ids, decoder_input_ids)
    corrupted = logits(model, corrupted_ids, decoder_input_ids)
    assert not torch.allclose(corrupted, clean)
    last = encoder_layers(model)[-1]
    with hooked(model, [Hook(last, OUTPUT, lambda _value, _call: clean_states[-1])]):
        restored = logits(model, corrupted_ids, decoder_input_ids)
    torch.testing.assert_close(restored, clean, rtol=0, atol=0)


class Stop(Exception):
    pass


@pytest.mark.parametrize("error", [Stop, KeyboardInterrupt])
def test_hooks_come_off_and_modes_come_back_whatever_ends_the_block(model, error):
    model.train()
    model.get_encoder().eval()  # a mixed state, to be given back as it was
    before = {name: module.training for name, module in model.named_modules()}
    layer = decoder_layers(model)[0]
    hooks_before = (dict(layer._forward_hooks), dict(layer._forward_pre_hooks))  # transformers keeps its own
    with pytest.raises(error):
        with hooked(model, [Hook(layer, OUTPUT, keep([])), Hook(layer, INPUT, keep([]))]):
            assert not any(module.training for module in model.modules())
            raise error()
    assert {name: module.training for name, module in model.named_modules()} == before
    assert (dict(layer._forward_hooks), dict(layer._forward_pre_hooks)) == hooks_before
    model.eval()


def test_evaluating_puts_back_exactly_what_was_training(model):
    model.train()
    model.get_encoder().eval()  # a mixed state: only the decoder side trains
    before = {name: module.training for name, module in model.named_modules()}
    assert any(before.values()) and not all(before.values())
    with evaluating(model):
        assert not any(module.training for module in model.modules())
    assert {name: module.training for name, module in model.named_modules()} == before
    model.eval()


def full_pass_and_encoding(model):
    """The inputs, their mask, the decoder's logits in one uncached pass, and the encoder's output."""
    input_ids, decoder_input_ids = inputs(model)
    mask = torch.ones_like(input_ids)
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits[0]
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=mask, return_dict=True)
    return input_ids, decoder_input_ids, mask, full, encoder_outputs


def test_a_cached_step_by_step_decoder_equals_the_full_pass(model):
    _, decoder_input_ids, mask, full, encoder_outputs = full_pass_and_encoding(model)
    with torch.no_grad():
        cache, rows = new_cache(), []
        for position in range(decoder_input_ids.shape[-1]):
            output, cache = decoder_step(model, encoder_outputs, mask, decoder_input_ids[:, position:position + 1],
                                         cache)
            rows.append(output.logits[0, -1])
    torch.testing.assert_close(torch.stack(rows), full, rtol=1e-4, atol=1e-5)
    assert cache.get_seq_length() == decoder_input_ids.shape[-1]


def test_decoder_steps_teacher_forced_and_greedy(model):
    from t5peek.probe.stepping import decoder_steps

    input_ids, decoder_input_ids, mask, full, encoder_outputs = full_pass_and_encoding(model)
    with torch.no_grad():
        forced = list(decoder_steps(model, encoder_outputs, mask, 99, feed=decoder_input_ids[0].tolist()))
        greedy = list(decoder_steps(model, encoder_outputs, mask, 4))
    assert [s.fed_id for s in forced] == decoder_input_ids[0].tolist()  # stops where the feed ends
    torch.testing.assert_close(torch.stack([s.output.logits[0, -1] for s in forced]), full, rtol=1e-4, atol=1e-5)
    chosen = [int(s.output.logits[0, -1].argmax()) for s in greedy]
    assert [s.fed_id for s in greedy] == [model.config.decoder_start_token_id, *chosen[:-1]]
    with torch.no_grad():  # each greedy step sees exactly what an uncached pass over its inputs sees
        again = model(input_ids=input_ids, attention_mask=mask,
                      decoder_input_ids=torch.tensor([[s.fed_id for s in greedy]])).logits[0].argmax(-1).tolist()
    assert again == chosen
