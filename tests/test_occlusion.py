"""`generate --occlusion`: each drop equals a hand computation with the model; the view beside attention."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek  # noqa: E402
from t5peek.generate import DecodeSettings, decode  # noqa: E402
from t5peek.generate.occlusion import occlude  # noqa: E402

PROMPT = "translate English to German : the red house is small"
DEMO_PROMPT = "translate English to Spanish: the red house is small"


def _occluded_run(model, tokenizer, requested):
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    run = decode(model, tokenizer, ids, DecodeSettings(requested=requested))
    return ids, run, occlude(model, ids, None, run, tokenizer.pad_token_id, tokenizer.pad_token,
                             set(tokenizer.all_special_ids))


def _by_hand(model, input_ids, output_ids, position=None, pad=None):
    """The oracle: the model's forward with labels (its own shift right), softmax, the output token's probability."""
    source = input_ids.clone()
    if position is not None:
        source[0, position] = pad
    labels = torch.tensor([list(output_ids[1:])])
    with torch.no_grad():
        logits = model(input_ids=source, labels=labels).logits
    return torch.softmax(logits[0].double(), dim=-1).gather(1, labels[0].view(-1, 1)).squeeze(1)


@pytest.mark.parametrize("family", ["t5", "bart"])
@pytest.mark.parametrize("requested", [{"max_new_tokens": 6}, {"num_beams": 3, "max_new_tokens": 6}],
                         ids=["greedy", "beam"])
def test_every_drop_equals_a_hand_computation(models, family, requested):
    model, tokenizer = models[family]
    ids, run, occlusion = _occluded_run(model, tokenizer, requested)
    full = _by_hand(model, ids, run.output_ids)
    worst = 0.0
    for position, occluded in enumerate(occlusion.occluded):
        column = [row[position] for row in occlusion.drops]
        if not occluded:
            assert column == [None] * len(run.steps)
            continue
        expected = full - _by_hand(model, ids, run.output_ids, position, tokenizer.pad_token_id)
        worst = max(worst, (torch.tensor(column, dtype=torch.float64) - expected).abs().max().item())
    assert worst < 1e-5
    assert [row.probability for row in occlusion.rows] == pytest.approx(full.tolist(), abs=1e-5)


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_argmaxes_and_agreement(models, family):
    model, tokenizer = models[family]
    _, run, occlusion = _occluded_run(model, tokenizer, {"max_new_tokens": 6})
    special = set(tokenizer.all_special_ids)
    assert occlusion.occluded == tuple(i not in special for i in run.source_ids)
    assert occlusion.total == len(run.steps) == len(occlusion.rows) == len(occlusion.drops)
    for step, row, drops in zip(run.steps, occlusion.rows, occlusion.drops):
        candidates = [i for i, d in enumerate(drops) if d is not None]
        assert row.occlusion_index == max(candidates, key=lambda i: drops[i])
        assert row.drop == drops[row.occlusion_index]
        assert row.attention_index == max(range(len(step.cross_attention)), key=step.cross_attention.__getitem__)
        assert row.attention_weight == step.cross_attention[row.attention_index]
        assert row.agree == (row.occlusion_index == row.attention_index)
        assert row.occlusion_token == run.source_tokens[row.occlusion_index]
    assert occlusion.agree == sum(row.agree for row in occlusion.rows)


def test_one_batched_pass_per_source_token_at_most(models, monkeypatch):
    """(source length + 1) rows re-scored at most, in as few forwards as memory allows (here: one)."""
    model, tokenizer = models["t5"]
    calls = []
    forward = type(model).forward

    def counting(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return forward(self, *args, **kwargs)

    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    run = decode(model, tokenizer, ids, DecodeSettings(requested={"max_new_tokens": 6}))
    monkeypatch.setattr(type(model), "forward", counting)
    occlusion = occlude(model, ids, None, run, tokenizer.pad_token_id, tokenizer.pad_token,
                        set(tokenizer.all_special_ids))
    assert calls == [sum(occlusion.occluded) + 1]
    assert len(calls) <= len(run.source_ids) + 1


def test_cli_occlusion_beside_attention_at_80_columns():
    run = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--occlusion",
                     env={"COLUMNS": "80", "NO_COLOR": "1", "T5PEEK_ASCII": "1"})
    assert_known_outcome(run, 0)
    out = run.stdout
    table = out[out.index("occlusion - each source token replaced by <pad>"):]
    assert "not occluded: </s>" in table
    assert "needs most" in table and "looks at most" in table
    assert "agree 5 of 6:" in table
    # the demo's first token, 'la', looks most at 'english' but needs 'house' (the gender of casa)
    assert any(line.split()[:2] == ["0", "la"] and "house" in line and "english" in line and "x differs" in line
               for line in table.splitlines())
    assert all(len(line) <= 80 for line in out.splitlines())


def test_cli_occlusion_json_carries_the_drop_matrix():
    record = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--occlusion", "--json").json()
    occlusion = record["occlusion"]
    steps, source = len(record["steps"]), len(record["source_ids"])
    assert len(occlusion["drops"]) == steps and all(len(row) == source for row in occlusion["drops"])
    assert occlusion["occluded"][-1] is False and all(row[-1] is None for row in occlusion["drops"])
    assert occlusion["total"] == steps and occlusion["pad_token"] == "<pad>"
    assert {"occlusion_index", "drop", "attention_index", "attention_weight", "agree"} <= set(occlusion["rows"][0])
    json.dumps(record, allow_nan=False)


def test_models_without_a_pad_token_are_refused(copy_model, tiny_bart):
    folder = copy_model(tiny_bart)
    config = json.loads((folder / "config.json").read_text())
    config["pad_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["pad_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    assert_clean_error(run_cli("generate", "-m", str(folder), PROMPT, "--occlusion", "-n", "2"), 2,
                       "--occlusion", "pad token")
