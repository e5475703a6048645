"""Every view that runs the model uses only what the installed transformers and torch support today: a
FutureWarning or DeprecationWarning raised from either is an error here, so the next deprecation is found the
day it appears instead of on the upgrade that removes the old way."""

from __future__ import annotations

import warnings

import pytest

import t5peek

PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(scope="module")
def demo():
    return t5peek.Model("demo")


@pytest.fixture
def deprecations_are_errors():
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("error", category=category, module=r"(transformers|torch)(\.|$)")
        yield


@pytest.mark.parametrize("view, arguments", [
    ("generate", {"max_new_tokens": 3}),
    ("generate", {"max_new_tokens": 3, "num_beams": 2}),
    ("generate", {"max_new_tokens": 3, "self_attention": True, "occlusion": True}),
    ("lens", {"max_new_tokens": 2}),
    ("lens", {"target": "la casa"}),
    ("trace", {"steps": 2}),
    ("trace", {"target": "la casa", "compare": True}),
    ("attend", {"step": 1}),
    ("attend", {"step": 1, "cross": False}),
])
def test_views_raise_no_deprecation(demo, deprecations_are_errors, view, arguments):
    getattr(demo, view)(PROMPT, **arguments)
