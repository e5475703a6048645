"""The defaults in t5peek's family table are transformers' own: every field a view reads from config.json, when
the file leaves it out, takes the value the family's config class gives it (issue #24: budget ran a T5 with no
`dropout_rate` key without dropout; transformers sets 0.1)."""

from __future__ import annotations

import pytest

from t5peek import families


def _config(model_type: str):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]()


@pytest.mark.parametrize("model_type", [name for name, row in families.FAMILIES.items() if row.defaults])
def test_every_default_is_the_config_classs(model_type):
    config = _config(model_type)
    for key, value in families.FAMILIES[model_type].defaults.items():
        assert getattr(config, key) == value, f"{model_type}.{key}"


@pytest.mark.parametrize("model_type", [name for name, row in families.FAMILIES.items() if row.style == "t5"])
@pytest.mark.parametrize("projection", [None, "relu", "gelu", "gated-gelu", "gated-silu"])
def test_the_t5_feed_forward_follows_transformers_rule(model_type, projection):
    """T5, mT5, umT5 and LongT5 derive the activation from feed_forward_proj; Switch names its dense_act_fn
    (the same values, under that name)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    key = "feed_forward_proj" if "feed_forward_proj" in families.FAMILIES[model_type].defaults else "dense_act_fn"
    value = None if projection is None else (projection if key == "feed_forward_proj" else projection.split("-")[-1])
    raw = {"model_type": model_type, **({key: value} if value is not None else {})}
    config = CONFIG_MAPPING[model_type](**{k: v for k, v in raw.items() if k != "model_type"})
    gated, activation = families.t5_feed_forward(raw)
    assert activation == config.dense_act_fn
    assert gated == bool(getattr(config, "is_gated_act", False))


def test_budget_reads_missing_fields_through_the_defaults():
    """A T5 config.json without dropout_rate, d_kv or feed_forward_proj is budgeted as transformers builds it."""
    from t5peek.budget.shapes import read_shape

    raw = {"model_type": "t5", "d_model": 32, "num_heads": 4, "d_ff": 64, "num_layers": 2, "vocab_size": 100}
    shape = read_shape(raw, [])
    config = _config("t5")
    assert shape.dropout == shape.attention_dropout == shape.activation_dropout == config.dropout_rate == 0.1
    assert shape.d_kv == config.d_kv == 64
    assert (shape.gated, shape.activation) == (False, "relu")
    mt5 = read_shape({**raw, "model_type": "mt5"}, [])
    assert (mt5.gated, mt5.activation) == (True, "gelu_new")
    bart = read_shape({"model_type": "bart", "d_model": 32, "encoder_attention_heads": 4, "encoder_ffn_dim": 64,
                       "encoder_layers": 2, "decoder_layers": 2, "vocab_size": 100}, [])
    assert (bart.dropout, bart.attention_dropout, bart.activation) == (0.1, 0.0, "gelu")
