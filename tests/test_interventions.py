"""patch and knockout, checked against transformers with hand-written hooks and edited weights."""

from __future__ import annotations

import json

import pytest

from families import FAMILIES, PROMPT, by_name
from helpers import run_t5peek

CORRUPT = PROMPT.replace("red", "blue")
DEMO_PROMPT = "translate English to Spanish: the red house is small"
TOLERANCE = 1e-4


FAMILY_NAMES = {"t5": "t5 (v1.0)", "bart": "bart"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {key: by_name(name).make(tmp_path_factory.mktemp(key) / key) for key, name in FAMILY_NAMES.items()}


@pytest.fixture(scope="module")
def peeks(folders):
    from t5peek import Model

    return {key: Model(str(folder)) for key, folder in folders.items()}


@pytest.fixture(scope="module")
def models(folders):
    """The same checkpoints loaded by transformers alone: the oracle."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return {key: (AutoModelForSeq2SeqLM.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder)))
            for key, folder in folders.items()}


def _encode(tokenizer, text):
    return tokenizer(text, return_tensors="pt")


def _logits(model, tokenizer, text, decoder_ids):
    import torch

    encoded = _encode(tokenizer, text)
    with torch.no_grad():
        return model(**encoded, decoder_input_ids=torch.tensor([decoder_ids]), use_cache=False).logits[0].float()


# ----------------------------------------------------------------------------- patch


@pytest.fixture(scope="module", params=["t5", "bart"])
def patched(request, peeks, models):
    family = request.param
    run = peeks[family].patch(PROMPT, corrupt=CORRUPT, position=1)
    return family, run, models[family]


def test_patch_scores_the_clean_and_corrupted_runs_as_transformers_does(patched):
    family, run, (model, tokenizer) = patched
    decoder_ids = list(run.output_ids[:run.position + 1])
    assert run.output_ids == tuple(model.generate(**_encode(tokenizer, PROMPT), do_sample=False, num_beams=1,
                                                  max_new_tokens=20)[0].tolist())
    clean = _logits(model, tokenizer, PROMPT, decoder_ids)[run.position, run.token_id]
    corrupted = _logits(model, tokenizer, CORRUPT, decoder_ids)[run.position, run.token_id]
    assert run.token_id == run.output_ids[run.position + 1]
    assert abs(run.clean - float(clean)) < TOLERANCE
    assert abs(run.corrupted - float(corrupted)) < TOLERANCE
    assert run.clean != pytest.approx(run.corrupted, abs=1e-3), "the corruption must change the score to test it"


def test_patch_lists_every_site_once(patched):
    _, run, _ = patched
    source = len(run.source_tokens)
    kinds = [site.kind for site in run.sites]
    assert kinds.count("encoder") == run.encoder_layers * source
    for kind in ("self_attention", "cross_attention", "feed_forward"):
        assert kinds.count(kind) == run.decoder_layers * (run.position + 1)
    assert kinds.count("cross_kv") == run.decoder_layers
    assert len({(s.kind, s.layer, s.position) for s in run.sites}) == len(run.sites)
    for site in run.sites:
        assert site.restored == pytest.approx((site.logit - run.corrupted) / (run.clean - run.corrupted))


def _manual_site(model, tokenizer, run, site):
    """The score with one site restored, by hooks written here on the transformers modules."""
    import torch

    decoder_ids = torch.tensor([list(run.output_ids[:run.position + 1])])
    t5 = hasattr(model, "shared")
    encoder, decoder = model.get_encoder(), model.get_decoder()
    if site.kind == "encoder":
        modules = [(encoder.block if t5 else encoder.layers)[site.layer]]
    elif site.kind == "cross_kv":
        attention = decoder.block[site.layer].layer[1].EncDecAttention if t5 else \
            decoder.layers[site.layer].encoder_attn
        modules = [attention.k, attention.v] if t5 else [attention.k_proj, attention.v_proj]
    else:
        if t5:
            block = decoder.block[site.layer]
            modules = [{"self_attention": block.layer[0].SelfAttention,
                        "cross_attention": block.layer[1].EncDecAttention,
                        "feed_forward": block.layer[2].DenseReluDense}[site.kind]]
        else:
            layer = decoder.layers[site.layer]
            modules = [{"self_attention": layer.self_attn, "cross_attention": layer.encoder_attn,
                        "feed_forward": layer.fc2}[site.kind]]
    saved = {}

    def first(output):
        return output[0] if isinstance(output, tuple) else output

    def save(module, _args, output):
        saved[module] = first(output).detach().clone()

    def put(module, _args, output):
        value = first(output).clone()
        if site.position is None:
            value[:] = saved[module]
        else:
            value[:, site.position] = saved[module][:, site.position]
        return (value, *output[1:]) if isinstance(output, tuple) else value

    with torch.no_grad():
        handles = [m.register_forward_hook(save) for m in modules]
        model(**_encode(tokenizer, PROMPT), decoder_input_ids=decoder_ids, use_cache=False)
        for handle in handles:
            handle.remove()
        handles = [m.register_forward_hook(put) for m in modules]
        logits = model(**_encode(tokenizer, CORRUPT), decoder_input_ids=decoder_ids, use_cache=False).logits
        for handle in handles:
            handle.remove()
    return float(logits[0, run.position, run.token_id])


@pytest.mark.parametrize("kind", ["encoder", "self_attention", "cross_attention", "feed_forward", "cross_kv"])
def test_each_kind_of_site_equals_a_hand_written_hook(patched, kind):
    _, run, (model, tokenizer) = patched
    sites = [s for s in run.sites if s.kind == kind]
    for site in (sites[0], max(sites, key=lambda s: abs(s.logit - run.corrupted))):
        assert abs(site.logit - _manual_site(model, tokenizer, run, site)) < TOLERANCE, site


def _cut_score(peek, run, cut, prompt=PROMPT, corrupt=CORRUPT):
    """The score with every site of `cut` restored at once, through t5peek's own restoring hooks."""
    import torch

    from t5peek.interventions import common, patching
    from t5peek.interventions.sites import find_sites

    session = peek.session
    model = session.weights().model
    sites = find_sites(model, session.model_type, session.name, "patch")
    clean_ids = session.tokenizer(prompt, return_tensors="pt")
    corrupt_ids = session.tokenizer(corrupt, return_tensors="pt")
    decoder = torch.tensor([list(run.output_ids[:run.position + 1])])
    _, clean = patching.recorded(model, sites, lambda: common.forward_logits(
        model, clean_ids["input_ids"], clean_ids["attention_mask"], decoder))
    logits = common.forward_logits(model, corrupt_ids["input_ids"], corrupt_ids["attention_mask"], decoder,
                                   patching.restoring(sites, [tuple(cut(sites))] if cut else [()], clean))
    return float(logits[0, run.position, run.token_id])


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_a_complete_cut_restores_the_clean_score_and_nothing_restores_nothing(peeks, family):
    from t5peek.interventions.patching import Site

    run = peeks[family].patch(PROMPT, corrupt=CORRUPT, position=1)
    source = len(run.source_tokens)
    last_encoder = lambda s: [Site("encoder", s.encoder_layers - 1, p) for p in range(source)]  # noqa: E731
    every_cross_kv = lambda s: [Site("cross_kv", layer, None) for layer in range(s.decoder_layers)]  # noqa: E731
    every_cross = lambda s: [Site("cross_attention", layer, p) for layer in range(s.decoder_layers)  # noqa: E731
                             for p in range(run.position + 1)]
    for cut in (last_encoder, every_cross_kv, every_cross):
        assert abs(_cut_score(peeks[family], run, cut) - run.clean) < TOLERANCE
    assert abs(_cut_score(peeks[family], run, None) - run.corrupted) < TOLERANCE


LENS_FAMILIES = [f for f in FAMILIES if f.model_type in __import__("t5peek.families").families.lens_families()]


@pytest.mark.slow
@pytest.mark.parametrize("family", LENS_FAMILIES, ids=lambda f: f.slug)
def test_every_lens_family_patches_exactly_and_knocks_heads_out(family, tmp_path):
    from t5peek import Model
    from t5peek.errors import UnsupportedModel
    from t5peek.interventions.patching import Site

    peek = Model(str(family.make(tmp_path / family.slug)))
    run = peek.patch(PROMPT, corrupt=CORRUPT, position=0)
    source = len(run.source_tokens)
    cut = [Site("encoder", run.encoder_layers - 1, p) for p in range(source)]
    assert abs(_cut_score(peek, run, lambda _s: cut) - run.clean) < TOLERANCE
    every_kv = [Site("cross_kv", layer, None) for layer in range(run.decoder_layers)]
    assert abs(_cut_score(peek, run, lambda _s: every_kv) - run.clean) < TOLERANCE
    knocked = peek.knockout(PROMPT, ["self:0.0", "cross:0.1"], max_new_tokens=5)
    assert len(knocked.steps) == len(knocked.original_ids) - 1
    try:
        peek.knockout(PROMPT, ["encoder:0.0"], max_new_tokens=5)
    except UnsupportedModel as refused:
        assert "self and cross heads work" in refused.message


def test_noise_is_seeded_and_three_times_the_embedding_spread(peeks, models):
    model, _ = models["t5"]
    first = peeks["t5"].patch(PROMPT, noise=(6, 8), position=1)
    again = peeks["t5"].patch(PROMPT, noise=(6, 8), position=1)
    other = peeks["t5"].patch(PROMPT, noise=(6, 8), position=1, seed=7)
    assert first.corrupted == again.corrupted and first.seed == 0 and other.seed == 7
    assert first.corrupted != other.corrupted
    assert first.noise_std == pytest.approx(3 * float(model.shared.weight.detach().float().std()), rel=1e-6)
    assert first.corrupted_tokens == first.source_tokens


def test_noise_corrupts_the_encoder_only_though_t5_shares_its_embedding(peeks):
    """Noise on every source token with the whole last encoder block restored is the clean run: the decoder's
    embedding (the same module in T5) was not noised."""
    import torch

    from t5peek.interventions import common, patching
    from t5peek.interventions.patch import PatchRequest, _noise_hook
    from t5peek.interventions.sites import find_sites

    peek = peeks["t5"]
    run = peek.patch(PROMPT, noise=(0, 11), position=1)
    assert run.corrupted != pytest.approx(run.clean, abs=1e-3)
    session = peek.session
    model = session.weights().model
    sites = find_sites(model, session.model_type, session.name, "patch")
    encoded = session.tokenizer(PROMPT, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    decoder = torch.tensor([list(run.output_ids[:2])])
    _, clean = patching.recorded(model, sites, lambda: common.forward_logits(model, ids, mask, decoder))
    cut = tuple(patching.Site("encoder", sites.encoder_layers - 1, p) for p in range(ids.shape[-1]))
    with common.inside(model.get_encoder()) as encoding:
        noise = _noise_hook(sites, PatchRequest(PROMPT, noise=(0, 11), position=1), ids.shape[-1], "cpu", encoding)
        noised = common.forward_logits(model, ids, mask, decoder, noise)
        restored = common.forward_logits(model, ids, mask, decoder, noise + patching.restoring(sites, [cut], clean))
    assert float(noised[0, 1, run.token_id]) == pytest.approx(run.corrupted, abs=TOLERANCE)
    assert float(restored[0, 1, run.token_id]) == pytest.approx(run.clean, abs=TOLERANCE)


def test_logit_diff_and_prob_metrics(peeks, models):
    model, tokenizer = models["t5"]
    diff = peeks["t5"].patch(PROMPT, corrupt=CORRUPT, position=1, metric="logit-diff")
    decoder_ids = list(diff.output_ids[:2])
    clean = _logits(model, tokenizer, PROMPT, decoder_ids)[1]
    assert diff.corrupted_token_id != diff.token_id
    assert diff.clean == pytest.approx(float(clean[diff.token_id] - clean[diff.corrupted_token_id]), abs=TOLERANCE)
    prob = peeks["t5"].patch(PROMPT, corrupt=CORRUPT, position=1, metric="prob")
    assert prob.clean == pytest.approx(float(clean.softmax(-1)[prob.token_id]), abs=1e-5)


# ----------------------------------------------------------------------------- knockout


@pytest.mark.parametrize("family,heads", [("t5", ["cross:1.0", "self:0.2"]), ("bart", ["cross:0.1", "encoder:1.3"])])
def test_knockout_equals_zeroing_the_heads_columns_of_the_output_projection(peeks, models, family, heads):
    import copy

    import torch

    run = peeks[family].knockout(PROMPT, heads, max_new_tokens=10)
    model, tokenizer = models[family]
    edited = copy.deepcopy(model)
    t5 = hasattr(model, "shared")
    for head in run.heads:
        stack = edited.get_encoder() if head.kind == "encoder" else edited.get_decoder()
        if t5:
            block = stack.block[head.layer]
            attention = block.layer[0].SelfAttention if head.kind != "cross" else block.layer[1].EncDecAttention
            projection, size = attention.o, attention.key_value_proj_dim
        else:
            layer = stack.layers[head.layer]
            attention = layer.encoder_attn if head.kind == "cross" else layer.self_attn
            projection, size = attention.out_proj, attention.head_dim
        with torch.no_grad():
            projection.weight[:, head.head * size:(head.head + 1) * size] = 0
    logits = _logits(edited, tokenizer, PROMPT, list(run.original_ids[:-1]))
    for step in run.steps:
        assert abs(step.ablated_logit - float(logits[step.position, step.token_id])) < TOLERANCE
        assert step.ablated_top_id == int(logits[step.position].argmax())
    reference = edited.generate(**_encode(tokenizer, PROMPT), do_sample=False, num_beams=1, max_new_tokens=10)
    assert run.ablated_ids == tuple(reference[0].tolist())
    original = model.generate(**_encode(tokenizer, PROMPT), do_sample=False, num_beams=1, max_new_tokens=10)
    assert run.original_ids == tuple(original[0].tolist())
    assert any(abs(s.ablated_logit - s.logit) > 1e-3 for s in run.steps)


def test_a_sweep_cell_equals_knocking_that_head_out_alone(peeks):
    run = peeks["t5"].knockout(PROMPT, sweep="cross", max_new_tokens=10)
    assert len(run.sweep) == 2 * 4  # tiny T5: 2 decoder layers × 4 heads
    for cell in (run.sweep[0], max(run.sweep, key=lambda c: abs(c.mean_logit_change))):
        alone = peeks["t5"].knockout(PROMPT, [f"cross:{cell.layer}.{cell.head}"], max_new_tokens=10)
        change = sum(s.ablated_logit - s.logit for s in alone.steps) / len(alone.steps)
        assert cell.mean_logit_change == pytest.approx(change, abs=TOLERANCE)
        assert cell.output_changes == (alone.ablated_ids != alone.original_ids)
        assert cell.first_change == alone.first_change


def test_mean_ablation_replaces_the_slice_with_its_mean(peeks, models):
    """Mean-ablating every head of a layer replaces the whole input of its projection by a constant: the layer's
    output is then the same at every position."""
    import torch

    heads = [f"encoder:0.{h}" for h in range(4)]
    run = peeks["t5"].knockout(PROMPT, heads, mode="mean", max_new_tokens=10)
    model, tokenizer = models["t5"]
    seen = []
    from t5peek.interventions.knockout import KnockoutRequest  # noqa: F401 - the request the run came from
    projection = model.get_encoder().block[0].layer[0].SelfAttention.o
    handle = projection.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(**_encode(tokenizer, PROMPT), decoder_input_ids=torch.tensor([list(run.original_ids[:-1])]))
    handle.remove()
    mean = seen[0][0].mean(0)

    def constant(_module, _args):
        return (mean.expand_as(seen[0]).clone(),)

    handle = projection.register_forward_pre_hook(constant)
    logits = _logits(model, tokenizer, PROMPT, list(run.original_ids[:-1]))
    handle.remove()
    for step in run.steps:
        assert abs(step.ablated_logit - float(logits[step.position, step.token_id])) < TOLERANCE
    assert run.notes and "mean" in run.notes[0]


# ----------------------------------------------------------------------------- the commands


def test_patch_json_carries_the_contract_keys():
    result = run_t5peek("patch", "-m", "demo", DEMO_PROMPT, "--noise", "6:7", "--position", "2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("position", "token_id", "metric", "clean", "corrupted", "sites"):
        assert key in data
    assert data["command"] == "patch" and data["token"] == "roja"
    assert set(data["sites"][0]) >= {"kind", "layer", "position", "logit", "restored"}
    assert {s["kind"] for s in data["sites"]} == {"encoder", "self_attention", "cross_attention", "feed_forward",
                                                 "cross_kv"}
    assert all(s["position"] is None for s in data["sites"] if s["kind"] == "cross_kv")
    best = max(data["sites"], key=lambda s: s["restored"])
    assert best["kind"] == "encoder" and best["position"] == 6  # 'red' decides 'roja'


def test_patch_text_shows_the_maps_and_what_they_mean():
    result = run_t5peek("patch", "-m", "demo", DEMO_PROMPT, "--corrupt",
                        "translate English to Spanish: the blue house is small", "--position", "2",
                        env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    for text in ("encoder block outputs", "decoder cross-attention outputs", "cross-attention keys and values",
                 "strongest sites", "meaning: restoring the output of encoder block", "'roja'", "'azul'"):
        assert text in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_knockout_json_carries_the_contract_keys():
    result = run_t5peek("knockout", "-m", "demo", DEMO_PROMPT, "--head", "cross:2.0", "--head", "self:1.1",
                        "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("heads", "original_ids", "ablated_ids", "first_change", "steps"):
        assert key in data
    assert data["heads"][0] == {"kind": "cross", "layer": 2, "head": 0}
    assert data["original_ids"][0] == 0 and data["original_ids"][-1] == 1
    assert set(data["steps"][0]) >= {"position", "token_id", "logit", "ablated_logit"}


def test_knockout_sweep_text():
    result = run_t5peek("knockout", "-m", "demo", DEMO_PROMPT, "--sweep", "cross", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "--sweep cross" in result.stdout and "head 7" in result.stdout
    assert "change the output alone" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["patch", DEMO_PROMPT], "--corrupt TEXT"),
    (["patch", DEMO_PROMPT, "--corrupt", "the red house", "--noise", "1:2"], "not both"),
    (["patch", DEMO_PROMPT, "--corrupt", "the red house"], "as many"),
    (["patch", DEMO_PROMPT, "--noise", "3"], "not I:J"),
    (["patch", DEMO_PROMPT, "--noise", "5:2"], "0 <= I < J"),
    (["patch", DEMO_PROMPT, "--noise", "5:99"], "past the source"),
    (["patch", DEMO_PROMPT, "--noise", "5:6", "--position", "40"], "past the output"),
    (["patch", DEMO_PROMPT, "--noise", "5:6", "--metric", "rank"], "--metric"),
    (["patch", DEMO_PROMPT, "--corrupt", DEMO_PROMPT, "--seed", "3"], "--seed"),
    (["knockout", DEMO_PROMPT], "--head KIND:L.H"),
    (["knockout", DEMO_PROMPT, "--head", "cross:9.0"], "layer 9 is out of range"),
    (["knockout", DEMO_PROMPT, "--head", "cross:1.8"], "head 8 is out of range"),
    (["knockout", DEMO_PROMPT, "--head", "ears:1.0"], "the kind is one of"),
    (["knockout", DEMO_PROMPT, "--head", "cross-1-0"], "not KIND:L.H"),
    (["knockout", DEMO_PROMPT, "--sweep", "all"], "the kind is one of"),
    (["knockout", DEMO_PROMPT, "--head", "cross:1.0", "--mode", "half"], "--mode"),
])
def test_bad_requests_get_one_line_and_exit_2(args, message):
    result = run_t5peek(args[0], "-m", "demo", *args[1:])
    assert result.exit_code == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- generate --force


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_a_forced_branch_equals_generate_continued_from_the_forced_prefix(peeks, models, family):
    import torch

    model, tokenizer = models[family]
    original = peeks[family].generate(PROMPT, max_new_tokens=8, sample=False)
    step = 1
    other = next(c.token_id for c in original.steps[step].top_k if c.token_id != original.steps[step].token_id)
    branch = peeks[family].generate(PROMPT, max_new_tokens=8, sample=False, force=(step, f"#{other}"))
    assert branch.original_ids == original.output_ids
    prefix = list(original.output_ids[:step + 1]) + [other]
    assert branch.output_ids[:step + 2] == tuple(prefix)
    reference = model.generate(**_encode(tokenizer, PROMPT), decoder_input_ids=torch.tensor([prefix]),
                               do_sample=False, num_beams=1, max_new_tokens=8 - (step + 1))
    assert branch.output_ids == tuple(reference[0].tolist())
    assert branch.forced.step == step and branch.forced.token_id == other
    assert branch.forced.original_token_id == original.output_ids[step + 1]
    assert branch.steps[step].rule == "forced"
    assert [s.token_id for s in branch.steps[:step]] == [s.token_id for s in original.steps[:step]]


def test_a_sampled_branch_keeps_the_seed_and_the_steps_before_it(peeks):
    original = peeks["t5"].generate(PROMPT, max_new_tokens=6, sample=True, seed=3)
    branch = peeks["t5"].generate(PROMPT, max_new_tokens=6, sample=True, seed=3, force="2=#5")
    assert branch.original_ids == original.output_ids
    assert branch.output_ids[:3] == original.output_ids[:3] and branch.output_ids[3] == 5


def test_force_json_keeps_the_original_under_its_own_key():
    result = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--force", "2=azul", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output_text"] == "la casa azul es pequeña"
    assert data["original_text"] == "la casa roja es pequeña"
    assert data["original_ids"][3] == 521 and data["output_ids"][3] == 88
    assert data["forced"]["step"] == 2 and data["forced"]["token"] == "azul"
    plain = json.loads(run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--json").stdout)
    assert "forced" not in plain and "original_ids" not in plain


def test_force_text_shows_both_runs_side_by_side():
    result = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--force", "2=azul", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "branch at step 2: 'azul' (id 88) forced where the model chose 'roja'" in result.stdout
    assert "original: 'la casa roja es pequeña'" in result.stdout
    assert "◀ forced" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--force", "2=xylophone"], "not a token of this model's vocabulary"),
    (["--force", "2=#99999"], "is not a token id"),
    (["--force", "40=azul"], "never happens"),
    (["--force", "two=azul"], "not STEP=TOKEN"),
    (["--force", "2="], "names no token"),
    (["--force", "2=azul", "--num-beams", "3"], "beam search keeps several"),
    (["--force", "2=azul", "--occlusion"], "run them apart"),
])
def test_bad_force_requests_get_one_line_and_exit_2(args, message):
    result = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_the_memory_override_keeps_its_old_name_elsewhere_and_has_a_new_one():
    for args in (["lens", "-m", "demo", DEMO_PROMPT, "-n", "2", "--force"],
                 ["lens", "-m", "demo", DEMO_PROMPT, "-n", "2", "--skip-memory-check"],
                 ["generate", "-m", "demo", DEMO_PROMPT, "-n", "2", "--skip-memory-check"]):
        result = run_t5peek(*args)
        assert result.exit_code == 0, result.stderr
