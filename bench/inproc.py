"""In-process benchmarks of the cores that run a model: `trace_forward`, `steps.decode`, and (bench/inproc_views.py)
`attend`, `lens` and the occlusion of `generate --occlusion`.

Run by bench/run.py as its own process (so the orchestrator stays small); writes one JSON document:

  python bench/inproc.py --model FOLDER --out results.json [--repeats 5] [--warmup 1] ...

trace and generate run on one model loaded once by t5peek's own `load_model` (float32, eager attention, which both
use); attend, lens and occlusion on a `t5peek.Model` of the same folder whose session loaded its weights once.
Every timing comes after warm-up calls, with calls of the compared variants interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Stat, time_calls  # noqa: E402
from models import prompt_words  # noqa: E402


def log(message: str) -> None:
    print(f"[inproc] {message}", file=sys.stderr, flush=True)


def failure(exc: BaseException) -> dict:
    """A section that could not run: `missing` when a t5peek core is not there yet, `error` otherwise."""
    if isinstance(exc, ImportError) and "t5peek" in str(exc):
        return {"missing": f"{type(exc).__name__}: {exc}"}
    return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "traceback": traceback.format_exc()}


class Inputs:
    def __init__(self, tokenizer, model):
        self.tokenizer = tokenizer
        self.model = model

    def source(self, length: int):
        encoded = self.tokenizer(prompt_words(length), return_tensors="pt")
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        assert ids.shape[-1] == length, (ids.shape, length)
        return ids, mask

    def labels(self, length: int):
        # a different word order from the source, same vocabulary
        text = " ".join(reversed(prompt_words(length).split()))
        ids = self.tokenizer(text_target=text, return_tensors="pt")["input_ids"]
        assert ids.shape[-1] == length, (ids.shape, length)
        return ids


# ---------------------------------------------------------------------------------------------- trace


def trace_calls(model, tokenizer, inputs: Inputs, length: int, target_length: int, with_depth2: bool,
                with_torchinfo: bool, check: bool = True) -> tuple[dict, dict]:
    import torch

    from t5peek.seq2seq import shift_right
    from t5peek.trace import trace_forward

    input_ids, attention_mask = inputs.source(length)
    labels = inputs.labels(target_length)
    decoder_input_ids = shift_right(model, labels)
    info: dict = {}

    def forward():
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                         labels=labels, use_cache=False)

    def traced(depth):
        def call():
            return trace_forward(model, input_ids, attention_mask, depth=depth, target_ids=labels,
                                 tokenizer=tokenizer, model_name="bench", prompt="", target="")
        return call

    calls = {"forward": forward, "t5peek": traced(None)}
    if with_depth2:
        calls["t5peek depth 2"] = traced(2)
    if with_torchinfo:
        import torchinfo

        data = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
                "labels": labels, "use_cache": False}

        def summary():
            return torchinfo.summary(model, input_data=data, depth=3, verbose=0)
        calls["torchinfo"] = summary

    if not check:
        return calls, info
    # what each variant records, and that they all compute the same forward pass
    report = calls["t5peek"]()
    info["records"] = sum(len(phase.records) for phase in report.phases)
    if "t5peek depth 2" in calls:
        info["records depth 2"] = sum(len(phase.records) for phase in calls["t5peek depth 2"]().phases)
    plain = forward()
    info["same loss"] = (report.loss is not None
                         and abs(report.loss - float(plain.loss)) < 1e-4 * max(1.0, abs(report.loss)))
    return calls, info


def bench_trace(model, tokenizer, inputs, args) -> dict:
    calls, info = trace_calls(model, tokenizer, inputs, args.length, args.target_length, True, True)
    log(f"trace: {args.length} source + {args.target_length} target tokens, {args.repeats} rounds")
    stats = time_calls(calls, args.repeats, args.warmup)
    return {"length": args.length, "target_length": args.target_length, "info": info,
            "stats": {name: stat.to_json() for name, stat in stats.items()}}


def bench_trace_scaling(model, tokenizer, inputs, args) -> dict:
    """Every length and both variants interleaved in each round, so that all points share the conditions."""
    calls = {}
    for length in args.trace_lengths:
        per_length, _ = trace_calls(model, tokenizer, inputs, length, args.target_length, False, False, check=False)
        calls.update({(name, length): call for name, call in per_length.items()})
    log(f"trace scaling: {', '.join(map(str, args.trace_lengths))} tokens, {args.scale_repeats} rounds")
    stats = time_calls(calls, args.scale_repeats, 0)  # warm already: the headline ran the same code
    return {"lengths": args.trace_lengths, "target_length": args.target_length,
            "t5peek": [stats[("t5peek", n)].to_json() for n in args.trace_lengths],
            "forward": [stats[("forward", n)].to_json() for n in args.trace_lengths]}


# ---------------------------------------------------------------------------------------------- generate


def generate_calls(model, tokenizer, inputs: Inputs, length: int, new_tokens: int, beams: int,
                   with_plain: bool) -> tuple[dict, dict]:
    from t5peek.generate import DecodeSettings, decode

    input_ids, attention_mask = inputs.source(length)
    # exactly `new_tokens` tokens on both sides: end-of-sequence is banned until then, and the limit stops it
    requested = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "num_beams": beams,
                 "do_sample": False}
    settings = DecodeSettings(requested=requested)
    kwargs = settings.generate_kwargs

    def t5peek():
        return decode(model, tokenizer, input_ids, settings, attention_mask=attention_mask)

    def generate_outputs():
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, output_scores=True,
                              output_attentions=True, return_dict_in_generate=True, **kwargs)

    def generate_plain():
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    calls = {"t5peek": t5peek, "generate+outputs": generate_outputs}
    if with_plain:
        calls["generate"] = generate_plain
    run = t5peek()
    reference = generate_outputs()
    ids = list(run.output_ids)
    ref = reference.sequences[0].tolist()
    info = {"new tokens t5peek": len(ids) - 1, "new tokens generate": len(ref) - 1, "same tokens": ids == ref,
            "kwargs": {k: v for k, v in kwargs.items()}}
    return calls, info


def bench_generate(model, tokenizer, inputs, args) -> dict:
    out = {"length": args.length, "new_tokens": args.new_tokens, "modes": {}}
    for label, beams, repeats in (("greedy", 1, args.gen_repeats), (f"beams={args.beams}", args.beams,
                                                                    args.beam_repeats)):
        calls, info = generate_calls(model, tokenizer, inputs, args.length, args.new_tokens, beams, True)
        log(f"generate {label}: {args.new_tokens} new tokens, {repeats} rounds")
        # no extra warm-up round: the check above already ran decode() and generate() once
        stats = time_calls(calls, repeats, 0)
        out["modes"][label] = {"info": info, "stats": {name: stat.to_json() for name, stat in stats.items()}}
    return out


class _StepClock:
    """A stopping criterion that stops nothing and notes when each step of generate() finished."""

    def __init__(self, stamps: list):
        self.stamps = stamps

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def bench_generate_scaling(model, tokenizer, inputs, args) -> dict:
    """Cost against new tokens, from one run of the largest count per repeat: the time from the call until the
    n-th token was chosen is the cost of n tokens (the same settings ask for exactly n, so the steps up to n are
    the same work). t5peek is timed with `decode(on_step=...)`, generate() with a stopping criterion that only
    reads the clock; both run after each step's token is chosen."""
    import gc

    from transformers import StoppingCriteriaList

    from t5peek.generate import DecodeSettings, decode

    largest = max(args.gen_tokens)
    input_ids, attention_mask = inputs.source(args.length)
    settings = DecodeSettings(requested={"max_new_tokens": largest, "min_new_tokens": largest, "num_beams": 1,
                                         "do_sample": False})
    kwargs = settings.generate_kwargs
    samples: dict[str, list[list[float]]] = {"t5peek": [], "generate+outputs": []}
    log(f"generate scaling: up to {largest} new tokens, {args.gen_scale_repeats} rounds")
    for round_index in range(args.gen_scale_repeats):
        for name in (list(samples) if round_index % 2 == 0 else list(reversed(samples))):
            stamps: list[float] = []
            gc.collect()
            start = time.perf_counter()
            if name == "t5peek":
                decode(model, tokenizer, input_ids, settings, attention_mask=attention_mask,
                       on_step=lambda record: stamps.append(time.perf_counter()))
            else:
                model.generate(input_ids=input_ids, attention_mask=attention_mask, output_scores=True,
                               output_attentions=True, return_dict_in_generate=True,
                               stopping_criteria=StoppingCriteriaList([_StepClock(stamps)]), **kwargs)
            if len(stamps) < largest:
                raise RuntimeError(f"{name} reported {len(stamps)} steps of {largest}")
            samples[name].append([stamps[n - 1] - start for n in args.gen_tokens])
    out = {"tokens": args.gen_tokens, "length": args.length, "method": "per-step clock in one run"}
    for name, runs in samples.items():
        out[name] = [Stat([run[i] for run in runs]).to_json() for i in range(len(args.gen_tokens))]
    return out


# ---------------------------------------------------------------------------------------------- views


def view_section(name: str, views: dict, args) -> dict:
    """attend, lens or occlusion (bench/inproc_views.py), on a t5peek.Model opened once for all three."""
    import inproc_views

    if "peek" not in views:
        import gc

        log("opening the model through t5peek.Model for attend, lens and occlusion")
        views["peek"] = inproc_views.open_model(args.model)
        gc.collect()
        gc.freeze()
    return inproc_views.SECTIONS[name](views["peek"], args)


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--build", default=None, help="JSON config: build the model folder first when it is "
                        "missing or stale (random weights; cached)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gen-repeats", type=int, default=5)
    parser.add_argument("--beam-repeats", type=int, default=3)
    parser.add_argument("--scale-repeats", type=int, default=5, help="trace scaling rounds")
    parser.add_argument("--gen-scale-repeats", type=int, default=3, help="generate scaling rounds")
    parser.add_argument("--occlusion-repeats", type=int, default=3, help="occlusion rounds (attend and lens: "
                        "--gen-repeats)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--target-length", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--trace-lengths", type=lambda s: [int(x) for x in s.split(",")],
                        default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--gen-tokens", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32, 64, 128])
    parser.add_argument("--sections", default="trace,generate,trace-scaling,generate-scaling,attend,lens,occlusion,"
                        "patch,knockout")
    args = parser.parse_args(argv)

    result: dict = {}
    started = time.perf_counter()
    try:
        import torch

        from t5peek import loading

        if args.build:
            import models

            folder = Path(args.model)
            log("building the runnable checkpoint (cached)")
            models.runnable_checkpoint(folder.parent, json.loads(args.build), folder.name, in_process=True)
        loading.quiet_libraries()
        loaded = loading.load_model(loading.resolve_model(args.model), eager_attention=True)
        model, tokenizer = loaded.model, loaded.tokenizer
        result["env"] = {"torch_threads": torch.get_num_threads(), "dtype": str(loaded.dtype),
                         "attention": model.config._attn_implementation,
                         "parameters": model.num_parameters()}
    except Exception as exc:  # noqa: BLE001
        result["load_error"] = failure(exc)
        Path(args.out).write_text(json.dumps(result, indent=1))
        return 0
    import gc

    gc.collect()
    gc.freeze()  # the libraries' objects stay out of later collections: gc.collect() before each call is quick
    inputs = Inputs(tokenizer, model)
    sections = {"trace": bench_trace, "generate": bench_generate, "trace-scaling": bench_trace_scaling,
                "generate-scaling": bench_generate_scaling}
    views: dict = {}  # the t5peek.Model of the view sections, opened when the first one runs
    for name in args.sections.split(","):
        try:
            if name in sections:
                result[name] = sections[name](model, tokenizer, inputs, args)
            else:
                result[name] = view_section(name, views, args)
        except Exception as exc:  # noqa: BLE001 - recorded, the other sections still run
            log(f"{name} failed: {type(exc).__name__}: {exc}")
            result[name] = failure(exc)
        Path(args.out).write_text(json.dumps(result, indent=1))
    result["seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
