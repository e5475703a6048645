"""What the commands show is true, and what is true is shown (issue #13): T5's positions are relative, `arch`
subtotals add up, `info` counts what `params` counts, disk offload is named, and `generate` decodes what
`model.generate()` decodes unless --task-params asks for the config's task_specific_params.

Each behaviour is checked on the installed `t5peek` in a fresh process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from families import FAMILIES, by_name
from helpers import assert_known_outcome, run_t5peek

PROMPT = "translate English to German : the red house is small"
TASK_PARAMS = {"num_beams": 3, "max_length": 6, "early_stopping": True}
TASK = {"translation_en_to_de": {"prefix": "translate English to German : ", **TASK_PARAMS}}


def _edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# ----------------------------------------------------------------------------- positions


def test_t5_positions_are_relative_not_512(copy_model, tiny_t5):
    """Real T5 configs carry n_positions 512, which no T5 module reads."""
    folder = _edit_config(copy_model(tiny_t5), n_positions=512)
    record = run_t5peek("info", folder, "--json").json()
    assert record["max_positions"] is None
    assert (record["position_kind"], record["relative_buckets"], record["relative_max_distance"]) == ("relative", 8,
                                                                                                       16)
    run = run_t5peek("info", folder)
    assert_known_outcome(run, 0)
    assert "relative (8 buckets, max distance 16)" in run.stdout
    assert "max positions" not in run.stdout and "512" not in run.stdout


def test_relative_distance_left_out_of_the_config_is_transformers_default(copy_model, tiny_t5):
    """google-t5/t5-small's config.json has no relative_attention_max_distance: T5Config's 128 applies."""
    folder = _edit_config(copy_model(tiny_t5), relative_attention_max_distance=None)
    assert run_t5peek("info", folder, "--json").json()["relative_max_distance"] == 128


def test_learned_and_sinusoidal_positions_keep_their_limit(tiny_bart, tmp_path):
    bart = run_t5peek("info", tiny_bart, "--json").json()
    assert (bart["max_positions"], bart["position_kind"], bart["relative_buckets"]) == (64, "learned", None)
    run = run_t5peek("info", tiny_bart)
    assert_known_outcome(run, 0)
    assert "learned, 64 positions" in run.stdout
    marian = run_t5peek("info", by_name("marian").make(tmp_path / "marian"), "--json").json()
    assert (marian["max_positions"], marian["position_kind"]) == (64, "sinusoidal")


# ----------------------------------------------------------------------------- arch subtotals


def _walk(node):
    yield node
    for child in node["children"]:
        yield from _walk(child)


def _assert_children_add_up(root: dict) -> None:
    """Without what is tied to a name elsewhere, every node's children (and its own tensors) add up to it."""
    for node in _walk(root):
        if not node["children"]:
            continue
        own = sum(math.prod(shape) for key, shape in node["shapes"].items() if key not in node["tied_to"])
        below = sum((child["params"] - child["tied_params"]) * child["repeat"] for child in node["children"])
        assert below + own == node["params"] - node["tied_params"], node["path"]


def test_arch_says_which_subtotals_hold_the_tied_embedding():
    run = run_t5peek("arch", "demo", "--depth", "3")
    assert_known_outcome(run, 0)
    lines = run.stdout.splitlines()
    encoder = next(line for line in lines if "(encoder): T5Stack" in line)
    decoder = next(line for line in lines if "(decoder): T5Stack" in line)
    assert "683K  incl. 92K tied to shared.weight" in encoder
    assert "880K  incl. 92K tied to shared.weight" in decoder
    assert "92K  tied to shared.weight" in next(line for line in lines if "(lm_head)" in line)
    assert "incl." not in next(line for line in lines if "(shared)" in line)
    record = run_t5peek("arch", "demo", "--expand", "--json").json()
    _assert_children_add_up(record["root"])
    assert sum(c["params"] - c["tied_params"] for c in record["root"]["children"]) == record["total"]


@pytest.mark.parametrize("fixture", ["tiny_bart", "tiny_t5_untied"])
def test_arch_subtotals_add_up_tied_or_not(request, fixture):
    folder = request.getfixturevalue(fixture)
    record = run_t5peek("arch", folder, "--expand", "--json").json()
    _assert_children_add_up(record["root"])
    lm_head = next(node for node in _walk(record["root"]) if node["path"] == "lm_head")
    if fixture == "tiny_bart":
        assert (lm_head["tied_params"], lm_head["tied_sources"]) == (lm_head["params"], ["model.shared.weight"])
        encoder = next(node for node in _walk(record["root"]) if node["path"] == "model.encoder")
        assert encoder["tied_params"] == lm_head["params"]
    else:
        assert lm_head["tied_params"] == 0  # flan-t5 style: the head has its own values


@pytest.mark.slow
def test_arch_subtotals_add_up_in_every_family(tmp_path):
    from t5peek import Model
    from t5peek.jsonable import to_jsonable

    for family in FAMILIES:
        model = Model(str(family.make(tmp_path / family.slug)))
        _assert_children_add_up(to_jsonable(model.arch(expand=True))["root"])


# ----------------------------------------------------------------------------- info counts what params counts


def test_info_counts_marian_as_params_does(tmp_path):
    folder = by_name("marian").make(tmp_path / "marian")
    info = run_t5peek("info", folder, "--json").json()
    params = run_t5peek("params", folder, "--json").json()
    assert info["total"] == params["total"] > 0
    assert "meta device" in info["total_note"]
    run = run_t5peek("info", folder)
    assert_known_outcome(run, 0)
    assert f"{params['total']:,}" in run.stdout
    assert "needs the checkpoint headers" not in run.stdout


@pytest.mark.slow
def test_info_total_is_params_total_in_every_family(tmp_path):
    from t5peek import Model

    for family in FAMILIES:
        model = Model(str(family.make(tmp_path / family.slug)))
        assert model.info().total == model.params().total, family.name


# ----------------------------------------------------------------------------- disk offload


def test_placement_names_what_goes_to_disk():
    run = run_t5peek("params", "-m", "demo", "--max-memory", "cpu=1MB")
    assert_known_outcome(run, 0)
    assert "offloaded to disk: the whole model" in " ".join(run.stdout.split())
    run = run_t5peek("info", "demo", "--max-memory", "cpu=2MB")
    assert_known_outcome(run, 0)
    shown = " ".join(run.stdout.split())
    assert "offloaded to disk: 6 modules" in shown and "read in each time their module runs" in shown
    record = run_t5peek("info", "demo", "--max-memory", "cpu=2MB", "--json").json()
    assert [share["device"] for share in record["placement"]["shares"]] == ["cpu", "disk"]
    run = run_t5peek("params", "-m", "demo", "--max-memory", "cpu=1GB")
    assert_known_outcome(run, 0)
    assert "offloaded" not in run.stdout


# ----------------------------------------------------------------------------- task_specific_params


def _generate_ids(folder, **kwargs):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    encoded = AutoTokenizer.from_pretrained(str(folder))(PROMPT, return_tensors="pt")
    return model.generate(**encoded, **kwargs)[0].tolist()


@pytest.fixture(scope="module")
def with_task(tmp_path_factory, tiny_t5_untied):
    import shutil

    folder = tmp_path_factory.mktemp("task") / "model"
    shutil.copytree(tiny_t5_untied, folder)
    return _edit_config(folder, task_specific_params=TASK)


def test_generate_ignores_task_params_like_model_generate(with_task):
    record = run_t5peek("generate", "-m", with_task, PROMPT, "--json").json()
    assert record["output_ids"] == _generate_ids(with_task)
    assert record["strategy"] == "greedy" and record["settings"]["num_beams"]["source"] == "default"
    note = record["settings"]["task_specific_params"]
    assert note["value"] == TASK_PARAMS
    assert "--task-params" in note["source"] and "translate English to German : " in note["source"]
    run = run_t5peek("generate", "-m", with_task, PROMPT, "-n", "2")
    assert_known_outcome(run, 0)
    assert "--task-params would set" in " ".join(run.stdout.split())
    record = run_t5peek("generate", "-m", with_task, "the red house", "-n", "3", "--json").json()
    assert "task_specific_params" not in record["settings"]  # no task prefix, nothing to say


def test_task_params_flag_applies_them_like_generate_with_them(with_task):
    record = run_t5peek("generate", "-m", with_task, PROMPT, "--task-params", "--json").json()
    assert record["output_ids"] == _generate_ids(with_task, **TASK_PARAMS)
    assert record["strategy"] == "beam"
    assert record["settings"]["num_beams"] == {"value": 3, "source": "task_specific_params.translation_en_to_de"}
    assert "task_specific_params" not in record["settings"]
    # what the command line sets is not what --task-params would change
    record = run_t5peek("generate", "-m", with_task, PROMPT, "--num-beams", "2", "-n", "3", "--json").json()
    assert record["settings"]["task_specific_params"]["value"] == {"early_stopping": True}


def test_python_api_task_params(with_task):
    from t5peek import Model

    model = Model(str(with_task))
    assert model.generate(PROMPT).strategy == "greedy"
    assert model.generate(PROMPT, task_params=True).strategy == "beam"
