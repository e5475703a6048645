"""The closed sets of names that records carry: decoding strategies, step rules, trace views, phase kinds, and
what `budget` counts (mode, optimizer).

Each is a str Enum whose members compare, hash, print and serialise as their plain value, so `--json` and the
renderers see the same words as before."""

from __future__ import annotations

import enum


class _Name(str, enum.Enum):
    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class Strategy(_Name):
    GREEDY = "greedy"
    SAMPLE = "sample"
    BEAM = "beam"
    BEAM_SAMPLE = "beam sample"

    @property
    def is_beam(self) -> bool:
        return self in (Strategy.BEAM, Strategy.BEAM_SAMPLE)

    @property
    def samples(self) -> bool:
        return self in (Strategy.SAMPLE, Strategy.BEAM_SAMPLE)

    @property
    def rule(self) -> Rule:
        """How each step of this strategy picks its token (the `Step.rule` it records)."""
        return {Strategy.GREEDY: Rule.GREEDY, Strategy.SAMPLE: Rule.SAMPLED, Strategy.BEAM: Rule.BEAM,
                Strategy.BEAM_SAMPLE: Rule.BEAM_SAMPLE}[self]


class Rule(_Name):
    GREEDY = "greedy"
    SAMPLED = "sampled"
    BEAM = "beam"
    BEAM_SAMPLE = "beam sample"
    FORCED = "forced"  # generate --force STEP=TOKEN


class View(_Name):
    TEACHER_FORCING = "teacher-forcing"
    GENERATION = "generation"


class PhaseKind(_Name):
    FORWARD = "forward"  # teacher forcing: encoder and decoder in one pass
    ENCODER = "encoder"
    STEP = "step"  # one decoder step of generation


class Mode(_Name):
    """What `budget` counts: generate() or one fine-tuning step."""

    generate = "generate"
    train = "train"


class Optimizer(_Name):
    """Whose state `budget` counts in a fine-tuning step."""

    adamw = "adamw"
    adafactor = "adafactor"
    sgd = "sgd"
