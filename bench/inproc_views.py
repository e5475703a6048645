"""In-process benchmarks of the views that run a model beside trace and generate: `attend`, `lens` and
`generate --occlusion`. bench/inproc.py runs them (sections attend, lens, occlusion) on one `t5peek.Model` whose
weights its session loads once (float32, eager attention, as the commands load them); every anchor runs on that
same model object, after the check that both sides produce the same tokens.

- attend: `Model.attend(prompt, step=T)` (cross-attention of the last decoder layer, head 0) against what it runs
  without hooks: the encoder once, then T + 1 greedy decoder forward calls with the KV cache (argmax of the raw
  logits); and, for reference, `model.generate(max_new_tokens=T + 1, do_sample=False, num_beams=1)`.
- lens: `Model.lens(prompt, max_new_tokens=N)` against `Model.generate(prompt, max_new_tokens=N, sample=False)`
  (the same greedy run, recording scores and cross-attention), and plain `model.generate()` for reference.
- occlusion: the core `generate.occlusion.occlude(...)` on a finished greedy run (what `--occlusion` adds to
  `generate`) against one teacher-forced `model(input_ids, attention_mask, labels=the output)` forward, times
  (source tokens + 1): one forward per occluded copy plus the full source, had each been run on its own.
- patch and knockout: a full `patch` sweep and a `knockout --sweep cross`, against the plain forwards (and, for
  knockout, the greedy generate() calls) they replace, had each site or head been run on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import time_calls  # noqa: E402
from models import prompt_words  # noqa: E402


def log(message: str) -> None:
    print(f"[inproc] {message}", file=sys.stderr, flush=True)


def open_model(folder: str):
    """A `t5peek.Model` with its weights loaded (eager attention, what attend, lens and generate load)."""
    import t5peek

    peek = t5peek.Model(folder)
    peek.session.weights(eager_attention=True)
    return peek


def _loaded(peek):
    return peek.session.weights(eager_attention=True)


def _encode(peek, prompt: str):
    encoded = peek.session.tokenizer(prompt, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def _eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


def greedy_forward_calls(model, input_ids, attention_mask, calls: int) -> list[int]:
    """The anchor of attend: the encoder once, then `calls` decoder forward calls with the KV cache, each feeding
    the argmax of the previous one (no hooks, no attention weights returned). The tokens chosen, in order."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        fed = torch.tensor([[model.config.decoder_start_token_id]])
        chosen: list[int] = []
        for _ in range(calls):
            output = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=fed,
                           past_key_values=cache, use_cache=True, return_dict=True)
            cache = output.past_key_values
            chosen.append(int(output.logits[0, -1].argmax()))
            fed = torch.tensor([[chosen[-1]]])
    return chosen


def bench_attend(peek, args) -> dict:
    """attend at step new_tokens - 1 (so new_tokens decoder calls, as the generate rows), or at the step of the
    first end-of-sequence token when greedy decoding writes one sooner (attend refuses a step past it)."""
    model = _loaded(peek).model
    prompt = prompt_words(args.length)
    input_ids, attention_mask = _encode(peek, prompt)
    wanted = args.new_tokens - 1
    greedy = greedy_forward_calls(model, input_ids, attention_mask, wanted + 1)
    eos = _eos_ids(model)
    step = next((i for i, token in enumerate(greedy) if token in eos and i < wanted), wanted)

    def t5peek():
        return peek.attend(prompt, step=step)

    def forward_calls():
        return greedy_forward_calls(model, input_ids, attention_mask, step + 1)

    def generate():
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=step + 1,
                              do_sample=False, num_beams=1)

    report = t5peek()
    expected = [model.config.decoder_start_token_id, *greedy[:step + 1]]
    generated = generate()[0].tolist()
    info = {"step": step, "decoder calls": step + 1, "source tokens": int(input_ids.shape[-1]),
            "layer": report.layer, "head": report.head, "kind": str(report.kind.value),
            "same tokens": [*report.decoder_ids, report.next_id] == expected == generated[:step + 2],
            "weights max |diff|": report.check.weights_max_abs_diff}
    calls = {"t5peek": t5peek, "forward calls": forward_calls, "generate": generate}
    log(f"attend: step {step} ({step + 1} decoder calls), {args.gen_repeats} rounds")
    stats = time_calls(calls, args.gen_repeats, 0)  # warm: the check above ran every variant once
    return {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}


def bench_lens(peek, args) -> dict:
    model = _loaded(peek).model
    prompt = prompt_words(args.length)
    input_ids, attention_mask = _encode(peek, prompt)
    new_tokens = args.new_tokens

    def t5peek():
        return peek.lens(prompt, max_new_tokens=new_tokens)

    def t5peek_generate():
        return peek.generate(prompt, max_new_tokens=new_tokens, sample=False)

    def generate():
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens,
                              do_sample=False, num_beams=1)

    lens, run, plain = t5peek(), t5peek_generate(), generate()[0].tolist()
    info = {"new tokens lens": len(lens.output_ids) - 1, "new tokens generate": len(run.output_ids) - 1,
            "same tokens": list(lens.output_ids) == list(run.output_ids) == plain,
            "depths": len(lens.depth_labels), "lens error": lens.lens_error,
            "attribution error": lens.attribution_error}
    calls = {"t5peek": t5peek, "t5peek generate": t5peek_generate, "generate": generate}
    log(f"lens: {new_tokens} new tokens, {len(lens.depth_labels)} depths, {args.gen_repeats} rounds")
    stats = time_calls(calls, args.gen_repeats, 0)  # warm: the check above ran every variant once
    return {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}


def bench_occlusion(peek, args) -> dict:
    import torch

    from t5peek import seq2seq
    from t5peek.generate.occlusion import occlude
    from t5peek.generate.run import occlusion_pad

    loaded = _loaded(peek)
    model, tokenizer = loaded.model, peek.session.tokenizer
    prompt = prompt_words(args.length)
    input_ids, attention_mask = _encode(peek, prompt)
    run = peek.generate(prompt, max_new_tokens=args.new_tokens, sample=False)
    pad = occlusion_pad(peek.session)
    pad_token = seq2seq.token_strings(tokenizer, [pad])[0]
    special = set(getattr(tokenizer, "all_special_ids", ()))
    labels = torch.tensor([list(run.output_ids[1:])])

    def t5peek():
        return occlude(model, input_ids, attention_mask, run, pad, pad_token, special)

    def forward():
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=True)

    occlusion = t5peek()
    plain = forward()
    probabilities = torch.softmax(plain.logits[0].float(), dim=-1).gather(1, labels[0].view(-1, 1)).squeeze(1)
    difference = max(abs(row.probability - float(p)) for row, p in zip(occlusion.rows, probabilities))
    info = {"source tokens": int(input_ids.shape[-1]), "new tokens": len(run.output_ids) - 1,
            "occluded": sum(occlusion.occluded), "copies": 1 + sum(occlusion.occluded),
            "full-source probability max |diff| vs the forward": difference}
    calls = {"t5peek": t5peek, "forward": forward}
    log(f"occlusion: {info['source tokens']} source tokens, {info['new tokens']} new tokens, "
        f"{args.occlusion_repeats} rounds")
    stats = time_calls(calls, args.occlusion_repeats, 0)  # warm: the check above ran both once
    return {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}


PATCH_POSITION = 3  # the decoder position explained: sites at decoder positions 0..3
SWEEP_NEW_TOKENS = 8


def bench_patch(peek, args) -> dict:
    """`Model.patch` (a full sweep: the clean greedy output, the clean and corrupted passes, every site restored
    alone, 64 sites to a batched pass) against (sites + 2) plain teacher-forced forwards of the same length."""
    import torch

    prompt = prompt_words(args.length)
    input_ids, attention_mask = _encode(peek, prompt)
    run = peek.patch(prompt, noise=(1, 4), position=PATCH_POSITION, max_new_tokens=PATCH_POSITION + 1)
    model = _loaded(peek).model
    decoder_input = torch.tensor([list(run.output_ids[:PATCH_POSITION + 1])])

    def t5peek():
        return peek.patch(prompt, noise=(1, 4), position=PATCH_POSITION, max_new_tokens=PATCH_POSITION + 1)

    def forward():
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input,
                         use_cache=False, return_dict=True)

    clean = float(forward().logits[0, PATCH_POSITION, run.token_id])
    info = {"source tokens": int(input_ids.shape[-1]), "position": PATCH_POSITION, "sites": len(run.sites),
            "clean score |diff| vs the forward": abs(clean - run.clean)}
    log(f"patch: {info['sites']} sites, {args.occlusion_repeats} rounds")
    stats = time_calls({"t5peek": t5peek, "forward": forward}, args.occlusion_repeats, 0)
    return {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}


def bench_knockout(peek, args) -> dict:
    """`Model.knockout(sweep="cross")` (every cross-attention head alone: teacher-forced and decoded freely, batched)
    against, per head, one plain teacher-forced forward and one plain greedy `generate()`."""
    import torch

    prompt = prompt_words(args.length)
    input_ids, attention_mask = _encode(peek, prompt)
    model = _loaded(peek).model

    def t5peek():
        return peek.knockout(prompt, sweep="cross", max_new_tokens=SWEEP_NEW_TOKENS)

    run = t5peek()
    decoder_input = torch.tensor([list(run.original_ids[:-1])])

    def forward():
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input,
                         use_cache=False, return_dict=True)

    def generate():
        with torch.no_grad():
            return model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, num_beams=1,
                                  max_new_tokens=SWEEP_NEW_TOKENS)

    same = tuple(generate()[0].tolist()) == run.original_ids
    info = {"source tokens": int(input_ids.shape[-1]), "heads": len(run.sweep), "new tokens": SWEEP_NEW_TOKENS,
            "same tokens as generate()": same}
    log(f"knockout --sweep: {info['heads']} heads, {args.occlusion_repeats} rounds")
    stats = time_calls({"t5peek": t5peek, "forward": forward, "generate": generate}, args.occlusion_repeats, 0)
    return {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}


SECTIONS = {"attend": bench_attend, "lens": bench_lens, "occlusion": bench_occlusion, "patch": bench_patch,
            "knockout": bench_knockout}
