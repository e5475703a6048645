"""Step-by-step decoding: what the decoder saw, scored and chose at every step, and where it looked.

`decode()` runs the same algorithm as transformers' `model.generate()` one step at a time, and records each
step as frozen dataclasses of plain values (ids, token strings, floats):

  1. the encoder runs once over the prompt;
  2. the decoder runs one new token per step, reusing its key/value cache (an `EncoderDecoderCache` of two
     growing `DynamicCache`s, so encoders and decoders of different depths work);
  3. the raw logits of the last position go through the same `LogitsProcessorList` generate() builds
     (min_length, forced EOS/BOS, no_repeat_ngram, temperature, top-p, ...);
  4. the next token is chosen by the same rule: argmax (greedy), `torch.multinomial` (sampling, so a seeded run
     draws the same tokens), or the beam search of `GenerationMixin._beam_search`, mirrored helper by helper.

The settings come from `model.generation_config`, then (only when asked: `model.generate()` never applies
them) from the `task_specific_params` whose prefix starts the prompt, then from what the caller asked for;
`DecodeSettings.generate_kwargs` is exactly what to hand `model.generate()` for the same result, which the
tests check token for token and score for score.

Modules: `records` (what a run returns), `settings` (the layered settings, and every call to a private
`GenerationMixin` method), `state` (the state one run shares between steps), `decode` (the entry point, greedy
search and sampling), `beam` (beam search, mirroring `_beam_search`) and `beam_steps` (its records);
`occlusion` re-scores the output with each source token replaced by the pad token (--occlusion); `run` is the
request and the run for one Session (import it from `t5peek.generate.run`: it loads the session).
"""

from __future__ import annotations

from t5peek.generate.decode import decode
from t5peek.generate.records import (BeamChoice, BeamHypothesis, BeamRow, BeamStep, Candidate, DecodePlan, DecodeRun,
                                     EncoderSelfAttention, LayerFocus, Occlusion, OcclusionRow, SettingValue, Step)
from t5peek.generate.state import DecodeError
from t5peek.generate.settings import DecodeSettings, resolve_settings, task_for_prompt

__all__ = [
    "BeamChoice", "BeamHypothesis", "BeamRow", "BeamStep", "Candidate", "DecodeError", "DecodePlan", "DecodeRun",
    "DecodeSettings", "EncoderSelfAttention", "LayerFocus", "Occlusion", "OcclusionRow", "SettingValue", "Step",
    "decode", "resolve_settings", "task_for_prompt",
]
