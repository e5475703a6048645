"""Every command on every encoder-decoder family of tests/families.py, each a tiny random checkpoint built offline.

For each family: `params` and `arch` totals equal `model.num_parameters()` after `from_pretrained`; `info` reads it;
`generate` gives the ids `model.generate()` gives with the model's own generation_config (greedy for all but FSMT);
`trace` shows self- and cross-attention apart, in generation and in teacher forcing. A command a family does not
support must say so in one line, with exit code 2. Checkpoints are built once per session, the first time a test needs
one; torch runs on one thread here (tiny models are slower on more, on a busy machine ten times slower).
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import pytest

from families import COMMANDS, D_MODEL, FAMILIES, PROMPT, Family
from helpers import assert_clean_error, json_output, run_cli

pytestmark = pytest.mark.slow  # every family built and run against transformers

ROOT = Path(__file__).resolve().parent.parent
IDS = [family.slug for family in FAMILIES]


class Built:
    """A family's checkpoint folder and, loaded once, the model transformers makes of it."""

    def __init__(self, family: Family, folder: Path):
        self.family = family
        self.folder = folder
        self._model = None
        self._tokenizer = None

    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModelForSeq2SeqLM

            self._model = AutoModelForSeq2SeqLM.from_pretrained(str(self.folder), attn_implementation="eager").eval()
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        return self._tokenizer


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """family → Built, each checkpoint written the first time a test asks for it."""
    from t5peek import loading

    loading.quiet_libraries()
    root = tmp_path_factory.mktemp("families")
    cache: dict[str, Built] = {}

    def get(family: Family) -> Built:
        if family.name not in cache:
            cache[family.name] = Built(family, family.make(root / family.slug))
        return cache[family.name]

    return get


def run_or_refuse(family: Family, command: str, *args: str):
    """The command's result; for a command the family does not support, check the refusal and skip the rest."""
    result = run_cli(command, *args)
    if not family.supports(command):
        assert_clean_error(result, 2)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        pytest.skip(f"{command} does not support {family.name}: {family.unsupported[command]}")
    return result


# ----------------------------------------------------------------------------- the list itself


def test_the_list_is_well_formed():
    from t5peek import families as family_table

    assert len({family.slug for family in FAMILIES}) == len(FAMILIES)
    for family in FAMILIES:
        assert family_table.family(family.model_type) is not None, family.name
        assert family.unsupported == family_table.family(family.model_type).refused, family.name
    wanted = {"t5", "mt5", "umt5", "longt5", "switch_transformers", "bart", "mbart", "marian", "pegasus", "m2m_100",
              "blenderbot", "led", "plbart", "encoder-decoder"}
    assert wanted <= {family.model_type for family in FAMILIES}


# ----------------------------------------------------------------------------- per family, per command


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_params_total_is_num_parameters(built, family):
    model = built(family)
    record = json_output(run_or_refuse(family, "params", model.folder, "--json"))
    assert record["total"] == model.model.num_parameters()
    assert sum(row["params"] for row in record["rows"]) == record["total"]
    assert record["counted_from"] in ("safetensors headers", "meta model, tying checked against headers")
    # Only what transformers computes at load time may be missing from the checkpoint (Marian's sinusoidal positions)
    computed = getattr(model.model, "_keys_to_ignore_on_load_missing", None) or []
    assert all(any(re.search(pattern, name) for pattern in computed) for name in record["unstored"])


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_arch_total_is_num_parameters(built, family):
    model = built(family)
    record = json_output(run_or_refuse(family, "arch", model.folder, "--json", "--depth", "3"))
    assert record["total"] == model.model.num_parameters()
    assert record["model_class"] == type(model.model).__name__


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_info(built, family):
    from t5peek import families as family_table

    model = built(family)
    record = json_output(run_or_refuse(family, "info", model.folder, "--json"))
    decoder = getattr(model.model.config, "decoder", model.model.config)  # EncoderDecoderModel nests its configs
    assert record["model_type"] == family.model_type
    assert record["family"] == family_table.style(family.model_type)
    assert record["architecture"] == type(model.model).__name__
    assert record["encoder_layers"] == _blocks(model.model, "encoder")
    assert record["decoder_layers"] == _blocks(model.model, "decoder")
    assert record["d_model"] == D_MODEL
    assert record["vocab_size"] == decoder.vocab_size >= len(model.tokenizer)
    assert record["activation"]
    assert record["checkpoint_format"] == "safetensors"
    assert record["total"] == model.model.num_parameters()  # counted as `params` counts, in every family


def _blocks(model, stack: str) -> int:
    """How many blocks (layers) a stack of the loaded model holds."""
    from t5peek import anatomy

    return len({anatomy.layer_of(name) for name, _ in model.named_parameters()
                if anatomy.stack_of(name) == stack and anatomy.layer_of(name) is not None})


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_generate_matches_transformers(built, family):
    """The ids `model.generate()` gives with the model's own generation_config: greedy for all but FSMT, whose
    config asks for 5 beams (then --greedy is checked too)."""
    model = built(family)
    record = json_output(run_or_refuse(family, "generate", "-m", model.folder, PROMPT, "--max-new-tokens", "5",
                                       "--json"))
    assert list(record["output_ids"]) == _reference(model, family)
    config = model.model.generation_config
    assert record["strategy"] == ("beam" if (config.num_beams or 1) > 1 else "greedy")
    assert len(record["output_ids"]) > 2  # the seed gives more than a start token and an end of sequence
    if record["strategy"] != "greedy":
        record = json_output(run_cli("generate", "-m", model.folder, PROMPT, "--max-new-tokens", "5", "--greedy",
                                     "--json"))
        assert list(record["output_ids"]) == _reference(model, family, num_beams=1, do_sample=False)


def _reference(model, family: Family, **settings) -> list[int]:
    import torch

    encoded = model.tokenizer(PROMPT, return_tensors="pt")
    if family.generate_needs_no_cache:
        settings["use_cache"] = False
    with torch.no_grad():
        return model.model.generate(**encoded, max_new_tokens=5, **settings)[0].tolist()


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_trace_shows_self_and_cross_attention_apart(built, family):
    from t5peek import anatomy

    model = built(family)
    record = json_output(run_or_refuse(family, "trace", "-m", model.folder, PROMPT, "--steps", "2", "--json"))
    assert [phase["kind"] for phase in record["phases"]][:2] == ["encoder", "step"]
    seen = {(anatomy.stack_of(r["module"]), r["role"], (r["attention"] or {}).get("kind"))
            for phase in record["phases"] for r in phase["records"]}
    encoder = {kind for stack, role, kind in seen if stack == "encoder" and role == anatomy.SELF_ATTENTION}
    assert encoder == {family.encoder_attention}
    assert {kind for stack, role, kind in seen if stack == "decoder" and role == anatomy.SELF_ATTENTION} == {"self"}
    assert {kind for stack, role, kind in seen if stack == "decoder" and role == anatomy.CROSS_ATTENTION} == {"cross"}
    assert not {kind for stack, role, kind in seen if stack == "encoder" and role == anatomy.CROSS_ATTENTION}
    steps = record["steps"]
    assert steps[0]["cross_kv_projections"] > 0
    assert all(step["cross_kv_projections"] == 0 for step in steps[1:])


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_teacher_forcing_trace(built, family):
    """The training view through the core: causal self-attention over the whole target, cross-attention to the
    source, and the loss transformers computes for the same labels."""
    import torch

    from t5peek import anatomy, trace

    if not family.supports("trace"):
        pytest.skip(family.unsupported["trace"])
    model = built(family)
    tokenizer = model.tokenizer
    encoded = tokenizer(PROMPT, return_tensors="pt")
    labels = tokenizer(text_target="the blue house", return_tensors="pt")["input_ids"]
    report = trace.trace_forward(model.model, encoded["input_ids"], encoded["attention_mask"], target_ids=labels,
                                 tokenizer=tokenizer)
    assert report.decoder_input_ids[1:] == tuple(labels[0, :-1].tolist())  # shifted right by one
    decoder_input_ids = torch.tensor([report.decoder_input_ids])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # EncoderDecoderModel warns whenever labels are given
        expected = model.model(**encoded, decoder_input_ids=decoder_input_ids, labels=labels).loss
    assert report.loss == pytest.approx(float(expected), rel=1e-5)
    target, source = labels.shape[-1], encoded["input_ids"].shape[-1]
    shapes = {(r.role, r.attention.shape[-2:]) for r in report.phases[0].records
              if r.attention and anatomy.stack_of(r.module) == "decoder"}
    assert shapes == {(anatomy.SELF_ATTENTION, (target, target)), (anatomy.CROSS_ATTENTION, (target, source))}


# ----------------------------------------------------------------------------- what single families add


def test_switch_shows_router_and_experts(built):
    model = built(_family("switch_transformers"))
    types = {row["label"]: row["params"] for row in
             json_output(run_cli("params", model.folder, "--by", "type", "--json"))["rows"]}
    config = model.model.config
    expert = 2 * config.d_model * config.d_ff
    sparse_layers = config.num_sparse_encoder_layers + config.num_sparse_decoder_layers
    assert types["experts"] == sparse_layers * config.num_experts * expert
    assert types["router"] == sparse_layers * config.num_experts * config.d_model
    tree = json_output(run_cli("arch", model.folder, "--json", "--expand"))["root"]
    roles = {node["role"] for node in _nodes(tree)}
    assert {"experts", "router"} <= roles


def test_switch_trace_shows_the_expert_of_each_token(built):
    import torch

    model = built(_family("switch_transformers"))
    record = json_output(run_cli("trace", "-m", model.folder, PROMPT, "--steps", "2", "--json"))
    routers = [r for phase in record["phases"] for r in phase["records"] if r["role"] == "router"]
    config = model.model.config
    assert len(routers) == config.num_sparse_encoder_layers + 2 * config.num_sparse_decoder_layers
    encoder_routing = routers[0]["routing"]
    tokens = record["source_ids"]
    assert encoder_routing["num_experts"] == config.num_experts
    assert len(encoder_routing["experts"]) == len(tokens)
    for step_router in routers[1:]:
        assert len(step_router["routing"]["experts"]) == 1  # one new token per decoder step

    # The same choice from transformers' own router logits: the argmax, unless that expert was already full.
    encoded = model.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        logits = model.model.get_encoder()(**encoded, output_router_logits=True).router_logits[0][0]
    expected, taken = [], [0] * config.num_experts
    for expert in logits.argmax(-1).tolist():
        taken[expert] += 1
        expected.append(expert if taken[expert] <= config.expert_capacity else -1)
    assert encoder_routing["experts"] == expected
    probabilities = torch.softmax(logits, -1).max(-1).values.tolist()
    assert encoder_routing["probabilities"] == pytest.approx(probabilities, rel=1e-5)

    text = run_cli("trace", "-m", model.folder, PROMPT, "--steps", "1", env={"COLUMNS": "200"}).stdout
    assert "expert per token:" in text and "tokens per expert" in text and "mixture of experts" in text


def test_nllb_moe_trace_shows_both_experts_of_each_token(built):
    import torch

    model = built(_family("nllb-moe"))
    record = json_output(run_cli("trace", "-m", model.folder, PROMPT, "--steps", "1", "--json"))
    routing = next(r["routing"] for phase in record["phases"] for r in phase["records"] if r["role"] == "router")
    assert len(routing["experts"]) == len(routing["second"]) == len(record["source_ids"])
    encoded = model.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        logits = model.model.get_encoder()(**encoded, output_router_logits=True).router_logits[0]
    ranked = logits.reshape(-1, logits.shape[-1]).topk(2, dim=-1).indices.tolist()
    for first, second, (best, runner_up) in zip(routing["experts"], routing["second"], ranked):
        assert first in (best, -1) and second in (runner_up, -1)
    assert any(second >= 0 for second in routing["second"])


def test_switch_tokens_over_capacity_are_marked(tmp_path):
    """A full expert drops the token: the trace says -1 (rendered '–') for it."""
    import torch
    import transformers

    from families import _save, _t5_like
    from t5peek import loading, trace

    config = _t5_like("SwitchTransformersConfig", num_decoder_layers=1, num_layers=1, num_experts=2,
                      expert_capacity=2, num_sparse_encoder_layers=1, num_sparse_decoder_layers=1,
                      router_jitter_noise=0.0)
    torch.manual_seed(0)
    folder = _save(transformers.SwitchTransformersForConditionalGeneration(config).eval(), tmp_path / "m", "t5")
    loaded = loading.load_model(loading.resolve_model(str(folder)), eager_attention=True)
    encoded = loaded.tokenizer(PROMPT, return_tensors="pt")
    report = trace.trace_forward(loaded.model, encoded["input_ids"], encoded["attention_mask"], steps=0)
    routing = next(r.routing for r in report.phases[0].records if r.routing is not None)
    assert routing.experts.count(-1) == len(routing.experts) - 4  # 2 experts × capacity 2 tokens
    assert all(count <= 2 for count in routing.counts())


def test_led_global_attention(built):
    import torch

    from t5peek import trace

    model = built(_family("led"))
    encoded = model.tokenizer(PROMPT, return_tensors="pt")
    global_mask = torch.zeros_like(encoded["input_ids"])
    global_mask[:, 0] = 1
    report = trace.trace_forward(model.model, encoded["input_ids"], encoded["attention_mask"], steps=1,
                                 global_attention_mask=global_mask)
    attention = [r for r in report.phases[0].records if r.attention is not None]
    config = model.model.config
    source = encoded["input_ids"].shape[-1]
    assert len(attention) == config.encoder_layers
    for r in attention:
        window = config.attention_window[0] + 1
        assert r.attention.kind == "local"
        assert r.attention.shape == (1, source, config.encoder_attention_heads, window + 1)  # + 1 global token
        assert r.output_shapes["global_weights"] == (1, config.encoder_attention_heads, 1, source)


def test_bert_names_have_roles():
    from t5peek import anatomy

    roles = {
        "decoder.bert.encoder.layer.0.attention.self.query.weight": anatomy.SELF_ATTENTION,
        "decoder.bert.encoder.layer.0.attention.output.dense.weight": anatomy.SELF_ATTENTION,
        "decoder.bert.encoder.layer.0.attention.output.LayerNorm.weight": anatomy.NORM,
        "decoder.bert.encoder.layer.0.crossattention.self.query.weight": anatomy.CROSS_ATTENTION,
        "decoder.bert.encoder.layer.0.crossattention.output.dense.weight": anatomy.CROSS_ATTENTION,
        "decoder.bert.encoder.layer.0.intermediate.dense.weight": anatomy.FEED_FORWARD,
        "decoder.bert.encoder.layer.0.output.dense.weight": anatomy.FEED_FORWARD,
        "decoder.bert.embeddings.word_embeddings.weight": anatomy.EMBEDDING,
        "decoder.bert.embeddings.position_embeddings.weight": anatomy.POSITION,
        "decoder.cls.predictions.transform.dense.weight": anatomy.LM_HEAD,
        "decoder.cls.predictions.bias": anatomy.LM_HEAD,
        "encoder.encoder.layer.1.attention.self.key.weight": anatomy.SELF_ATTENTION,
    }
    assert {name: anatomy.role_of(name) for name in roles} == roles
    assert anatomy.stack_of("decoder.bert.encoder.layer.0.attention.self.query.weight") == "decoder"
    assert anatomy.stack_of("encoder.encoder.layer.0.output.dense.weight") == "encoder"
    assert anatomy.layer_of("decoder.bert.encoder.layer.1.crossattention.self.query.weight") == 1


def test_bert2bert_params_put_cross_attention_in_the_decoder(built):
    model = built(_family("encoder-decoder"))
    rows = {row["label"]: row for row in json_output(run_cli("params", model.folder, "--json"))["rows"]}
    config = model.model.config.decoder
    hidden = config.hidden_size
    assert "encoder cross-attention" not in rows
    assert rows["decoder cross-attention"]["blocks"] == config.num_hidden_layers
    # query, key, value and output.dense, with biases (its LayerNorm counts as a norm)
    assert rows["decoder cross-attention"]["per_block"] == 4 * (hidden * hidden + hidden)


@pytest.mark.parametrize("model_type, source", [
    ("led", "max_encoder_position_embeddings in config.json"),
    ("encoder-decoder", "the encoder's max_position_embeddings in config.json"),
])
def test_trace_knows_the_length_limit_of_nested_and_led_configs(built, model_type, source):
    model = built(_family(model_type))
    long_prompt = " ".join(["the red house is small"] * 14)  # 70 words, 72 tokens > 64 positions
    result = run_cli("trace", "-m", model.folder, long_prompt)
    assert_clean_error(result, 2, "72 tokens long", "at most 64", source)


def test_prophetnet_refused_by_trace_in_one_line(tmp_path):
    from families import build_prophetnet

    folder = build_prophetnet(tmp_path / "prophetnet")
    result = run_cli("trace", "-m", folder, PROMPT)
    assert_clean_error(result, 2, "does not support prophetnet")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for command in ("params", "arch", "info"):
        assert run_cli(command, folder, "--json").exit_code == 0


def _family(model_type: str) -> Family:
    return next(family for family in FAMILIES if family.model_type == model_type)


def _nodes(node: dict):
    yield node
    for child in node["children"]:
        yield from _nodes(child)


# ----------------------------------------------------------------------------- the README table


def _table_script():
    spec = importlib.util.spec_from_file_location("families_table", ROOT / "scripts" / "families_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_lists_every_family_and_command():
    script = _table_script()
    table = script.table()
    for family in FAMILIES:
        assert f"| {family.name} |" in table
    header = table.splitlines()[0]
    for command in COMMANDS:
        assert f"`{command}`" in header


def test_readme_table_is_generated_from_the_list():
    script = _table_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if script.START not in readme or script.END not in readme:
        pytest.skip("README.md has no families table markers yet (<!-- families:start --> ... <!-- families:end -->)")
    assert script.replace_table(readme, script.table()) == readme, \
        "README.md's families table is out of date: run python scripts/families_table.py --write README.md"
