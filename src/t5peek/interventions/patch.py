"""`patch`: activation patching (causal tracing) of one decoder position.

The clean run is the prompt and its greedy output. The corrupted run reads another source (same number of tokens),
or the prompt with Gaussian noise on some source token embeddings, and is teacher-forced on the clean output. Each
site is then restored alone from the clean run into the corrupted one, and the score of the clean token at the
explained position says how much of the clean behaviour that one site brings back.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import seq2seq
from t5peek.errors import UsageError
from t5peek.interventions import common, patching
from t5peek.interventions.records import PatchedSite, PatchRun
from t5peek.interventions.sites import check_family, find_sites
from t5peek.probe.hooks import OUTPUT, Hook
from t5peek.session import RunShape, Session

METRICS = ("logit", "prob", "logit-diff")
NOISE_SCALE = 3.0  # × the embedding's standard deviation, as in causal tracing (Meng et al., 2022)
DEFAULT_SEED = 0
EQUAL_NOTE = ("the clean and corrupted scores are equal, so no site can restore anything: the corruption did not "
              "change this position (restored is null).")
RUNNER_UP_NOTE = ("the corrupted run also picks '{token}' at position {position}, so logit-diff compares it with the "
                  "corrupted run's runner-up '{other}'.")


@dataclass(frozen=True)
class PatchRequest:
    prompt: str
    corrupt: str | None = None  # the corrupted source text
    noise: tuple[int, int] | None = None  # corrupt source tokens [I, J) with Gaussian noise instead
    position: int = 0
    metric: str = "logit"
    seed: int | None = None  # the noise's seed; None: DEFAULT_SEED
    max_new_tokens: int | None = None  # the clean greedy output; None: common.DEFAULT_NEW_TOKENS

    def __post_init__(self) -> None:
        seq2seq.check_text(self.prompt, "PROMPT")
        seq2seq.check_text(self.corrupt, "--corrupt")
        if not self.prompt.strip():
            raise UsageError('PROMPT is empty; give the clean source text, e.g. t5peek patch -m demo "translate '
                             'English to Spanish: the red house" --corrupt "translate English to Spanish: the blue '
                             'house".')
        if (self.corrupt is None) == (self.noise is None):
            raise UsageError("give the corrupted run one way: --corrupt TEXT (another source with as many tokens) "
                             "or --noise I:J (Gaussian noise on source tokens I to J-1), not both or neither.")
        if self.corrupt is not None and not self.corrupt.strip():
            raise UsageError("--corrupt is empty; give the corrupted source text, or use --noise I:J.")
        if self.noise is not None and not 0 <= self.noise[0] < self.noise[1]:
            raise UsageError(f"--noise {self.noise[0]}:{self.noise[1]} is empty or negative: give I:J with "
                             "0 <= I < J, the source tokens I to J-1.")
        if self.metric not in METRICS:
            raise UsageError(f"--metric {self.metric!r} is not one of {', '.join(METRICS)}.")
        seq2seq.check_bounded(self.position, "--position", 0, seq2seq.MAX_NEW_TOKENS - 1)
        seq2seq.check_bounded(self.max_new_tokens, "--max-new-tokens", 1, seq2seq.MAX_NEW_TOKENS)
        if self.seed is not None and self.noise is None:
            raise UsageError("--seed seeds the noise of --noise; with --corrupt nothing is random.")


def parse_noise(text: str | None) -> tuple[int, int] | None:
    """`--noise I:J` as (I, J)."""
    if text is None:
        return None
    low, colon, high = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise UsageError(f"--noise {text!r} is not I:J, e.g. --noise 5:7 for source tokens 5 and 6.") from None


def run_patch(session: Session, request: PatchRequest) -> PatchRun:
    session.require("patch")
    check_family(session.model_type, session.name, "patch")
    new_tokens = max(request.max_new_tokens or common.DEFAULT_NEW_TOKENS, request.position + 1)
    input_ids, attention_mask, _ = seq2seq.encode(session, request.prompt, None, new_tokens, "--max-new-tokens")
    corrupted_ids = _corrupted_ids(session, request, input_ids)
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], new_tokens))
    model, device = loaded.model, loaded.device
    sites = find_sites(model, session.model_type, session.name, "patch")
    input_ids, attention_mask, corrupted_ids = (t.to(device) for t in (input_ids, attention_mask, corrupted_ids))
    tokens = seq2seq.TokenNames(session.tokenizer)
    with session.progress("Patching every site from the clean run into the corrupted one…"), \
            common.inside(model.get_encoder()) as encoding:
        output_ids = common.greedy_ids(session, model, input_ids, attention_mask, new_tokens)
        position = request.position
        decoder_input, token_id = common.explained(output_ids, position, device)
        clean_logits, clean = patching.recorded(
            model, sites, lambda: common.forward_logits(model, input_ids, attention_mask, decoder_input))
        noise = _noise_hook(sites, request, input_ids.shape[-1], device, encoding)
        corrupted_logits = common.forward_logits(model, corrupted_ids, attention_mask, decoder_input, noise)
        other_id, notes = _other_token(corrupted_logits[0, position], token_id, position, tokens)
        score = _scorer(request.metric, position, token_id, other_id)
        clean_score, corrupted_score = float(score(clean_logits)[0]), float(score(corrupted_logits)[0])
        every = patching.all_sites(sites, input_ids.shape[-1], position)
        scores: list[float] = []
        for rows in common.chunks(every):
            hooks = noise + patching.restoring(sites, rows, clean)
            logits = common.forward_logits(model, corrupted_ids, attention_mask,
                                           decoder_input.expand(len(rows), -1), hooks)
            scores += score(logits).tolist()
    span = clean_score - corrupted_score
    equal = abs(span) <= 1e-6 * max(1.0, abs(clean_score))
    if equal:
        notes.append(EQUAL_NOTE)
    patched = tuple(PatchedSite(site.kind, site.layer, site.position, value,
                                None if equal else (value - corrupted_score) / span)
                    for site, value in zip(every, scores))
    return PatchRun(
        model=session.name, prompt=request.prompt, corrupt=request.corrupt, noise=request.noise,
        noise_std=None if request.noise is None else float(noise[0].fn.std),
        seed=None if request.noise is None else _seed(request),
        source_tokens=tokens(input_ids[0].tolist()), corrupted_tokens=tokens(corrupted_ids[0].tolist()),
        output_ids=output_ids, output_tokens=tokens(output_ids), position=position, token_id=token_id,
        token=tokens.one(token_id), corrupted_token_id=other_id, corrupted_token=tokens.one(other_id),
        metric=request.metric, clean=clean_score, corrupted=corrupted_score, encoder_layers=sites.encoder_layers,
        decoder_layers=sites.decoder_layers, sites=patched, notes=tuple(notes))


def _seed(request: PatchRequest) -> int:
    return DEFAULT_SEED if request.seed is None else request.seed


def _corrupted_ids(session: Session, request: PatchRequest, input_ids):
    length = input_ids.shape[-1]
    if request.noise is not None:
        if request.noise[1] > length:
            raise UsageError(f"--noise {request.noise[0]}:{request.noise[1]} goes past the source: PROMPT has "
                             f"{length} tokens (0 to {length - 1}).")
        return input_ids
    corrupted = session.tokenizer(request.corrupt, return_tensors="pt")["input_ids"]
    if corrupted.shape[-1] != length:
        raise UsageError(f"--corrupt has {corrupted.shape[-1]} tokens and PROMPT has {length}: patching restores "
                         "one position at a time, so both must have as many; reword it, or corrupt PROMPT itself "
                         "with --noise I:J.")
    seq2seq.check_unknown(session.name, request.corrupt, corrupted[0].tolist(), session.tokenizer, session.warn,
                          "--corrupt")
    return corrupted


class _Noise:
    """Adds fixed Gaussian noise to the encoder's token embeddings at source positions [I, J)."""

    def __init__(self, noise, std: float, state: dict):
        self.noise, self.std, self.state = noise, std, state

    def __call__(self, value, _call):
        if not self.state["now"]:  # T5 shares the embedding with the decoder: only the encoder's call is noised
            return None
        return value + self.noise.to(value.dtype)


def _noise_hook(sites, request: PatchRequest, length: int, device, encoding: dict) -> list[Hook]:
    """The hook that corrupts the source with noise (none with --corrupt); `encoding` says when the encoder runs."""
    if request.noise is None:
        return []
    import torch

    weight = sites.embedding.weight.detach().float()
    std = float(weight.std()) * float(getattr(sites.embedding, "embed_scale", 1.0) or 1.0) * NOISE_SCALE
    generator = torch.Generator().manual_seed(_seed(request))
    low, high = request.noise
    noise = torch.zeros(length, weight.shape[1])
    noise[low:high] = torch.randn(high - low, weight.shape[1], generator=generator) * std
    return [Hook(sites.embedding, OUTPUT, _Noise(noise.to(device), std, encoding), "noise")]


def _other_token(logits, token_id: int, position: int, tokens) -> tuple[int, list[str]]:
    top = logits.topk(2).indices.tolist()
    if top[0] != token_id:
        return top[0], []
    return top[1], [RUNNER_UP_NOTE.format(token=tokens.one(token_id), position=position, other=tokens.one(top[1]))]


def _scorer(metric: str, position: int, token_id: int, other_id: int):
    """The score of each batch row's logits at `position`: [batch, positions, vocab] → [batch]."""

    def score(logits):
        row = logits[:, position]
        if metric == "prob":
            return row.softmax(-1)[:, token_id]
        if metric == "logit-diff":
            return row[:, token_id] - row[:, other_id]
        return row[:, token_id]

    return score
