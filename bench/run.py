#!/usr/bin/env python
"""t5peek against what users would use instead: one table, written to docs/benchmarks.md with a plot.

  python bench/run.py            every benchmark (~10 minutes on 2 CPU cores), writes docs/benchmarks.md and
                                 docs/benchmarks-scaling.png
  python bench/run.py --quick    fewer repeats (~5 minutes)
  python bench/run.py --smoke    tiny models, 1 repeat, into a temporary folder: what tests/test_bench_smoke.py
                                 runs so this code cannot rot (not a measurement)

Every checkpoint is built locally under bench/.cache/ (sparse safetensors for the 11B shapes, random weights
for the runnable flan-t5-base shape); nothing is downloaded and every measured process runs offline.
Benchmarks are not tests: a missed target shows as met = no, and the exit status stays 0. The exit status is
1 only when a benchmark could not run because of an error.

Sections (`--only` takes a comma-separated list):
  startup      `t5peek --help` in fresh processes
  params-arch  `t5peek params|arch|budget` on an 11B sparse checkpoint (and smaller shapes), fresh processes
  inproc       trace, generate, attend, lens and `generate --occlusion`, timed in one worker process against plain
               transformers anchors on the same model (bench/inproc.py, bench/inproc_views.py)
  html         the size of the `generate --html --self` report, 256 source x 64 generated tokens, flan-t5-small shape
  load         peak RSS of loading the weights, fresh processes

This process never imports torch: start-up and peak RSS are measured in fresh processes it starts, and the
in-process benchmarks run in a worker process of their own (bench/inproc.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import measure  # noqa: E402
import models  # noqa: E402
import report  # noqa: E402
from measure import GB, MB, ProcessResult, Stat, bench_env, fmt_value, measure_processes  # noqa: E402
from report import Row, Scaling, Series, cell, not_measured, ratio_text, yes_no  # noqa: E402

SECTIONS = ("startup", "params-arch", "inproc", "html", "load")
PLOT_NAME = "benchmarks-scaling.png"


@dataclass
class Profile:
    name: str
    proc_repeats: int  # fresh processes per figure
    startup_repeats: int
    warmup: int  # uncounted rounds first
    scale_proc_repeats: int
    load_repeats: int
    trace_repeats: int
    gen_repeats: int
    beam_repeats: int  # beam search costs ~3× greedy
    scale_repeats: int  # trace scaling rounds
    gen_scale_repeats: int  # generate scaling rounds (one run of the largest count each)
    occlusion_repeats: int  # occlusion costs ~(source tokens + 1) teacher-forced forwards
    sizes: dict = field(default_factory=lambda: models.SIZES)
    runnable: dict = field(default_factory=lambda: models.RUNNABLE)
    scale_sizes: tuple = ("small", "base")  # + the headline size, measured once
    scale_commands: tuple = ("params", "arch")
    length: int = 64
    target_length: int = 64
    new_tokens: int = 32
    beams: int = 4
    trace_lengths: tuple = (16, 32, 64, 128, 256, 512)
    model_label: str = "flan-t5-base shape"
    gen_tokens: tuple = (8, 16, 32, 64, 128)
    html_model: dict = field(default_factory=lambda: models.HTML_MODEL)
    html_label: str = "flan-t5-small shape"
    html_source: int = 256  # source tokens of the HTML report
    html_new_tokens: int = 64


PROFILES = {
    "full": Profile("full", proc_repeats=5, startup_repeats=5, warmup=1, scale_proc_repeats=5, load_repeats=3,
                    trace_repeats=9, gen_repeats=5, beam_repeats=3, scale_repeats=5, gen_scale_repeats=3,
                    occlusion_repeats=3),
    "quick": Profile("quick", proc_repeats=3, startup_repeats=3, warmup=1, scale_proc_repeats=3, load_repeats=2,
                     trace_repeats=3, gen_repeats=3, beam_repeats=2, scale_repeats=2, gen_scale_repeats=1,
                     occlusion_repeats=2),
    "smoke": Profile("smoke", proc_repeats=1, startup_repeats=1, warmup=0, scale_proc_repeats=1, load_repeats=1,
                     trace_repeats=1, gen_repeats=1, beam_repeats=1, scale_repeats=1, gen_scale_repeats=1,
                     occlusion_repeats=1, sizes=models.SMOKE_SIZES,
                     runnable=models.SMOKE_RUNNABLE,
                     scale_sizes=("small",), scale_commands=("params",), length=8, target_length=8,
                     new_tokens=4, beams=4, trace_lengths=(8, 16), gen_tokens=(2, 4),
                     model_label="tiny T5 (smoke run)", html_model=models.SMOKE_HTML_MODEL,
                     html_label="tiny T5 (smoke run)", html_source=16, html_new_tokens=8),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- sections


def section_startup(profile: Profile, env: dict) -> dict:
    commands = {"t5peek": [*measure.t5peek_executable(), "--help"],
                "anchor": [sys.executable, "-c", "import torch, transformers"]}
    results = measure_processes(commands, profile.startup_repeats, profile.warmup, env,
                                lambda m: log(f"start-up: {m}"))
    out = {name: _pr_json(result) for name, result in results.items()}
    out["heavy_imports"] = heavy_imports_of_help(env)
    return out


CHECK_IMPORTS = """
import sys
sys.argv = ["t5peek", "--help"]
from t5peek.cli import main
try:
    main()
except SystemExit:
    pass
print(",".join(m for m in ("torch", "transformers", "huggingface_hub", "safetensors") if m in sys.modules),
      file=sys.stderr)
"""


def heavy_imports_of_help(env: dict) -> list[str]:
    """Which heavy libraries `t5peek --help` imports (the start-up target assumes neither torch nor transformers)."""
    done = subprocess.run([sys.executable, "-c", CHECK_IMPORTS], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return [name for name in last.split(",") if name]


def section_params_arch(profile: Profile, env: dict, cache: Path) -> dict:
    t5peek = measure.t5peek_executable()
    worker = [sys.executable, str(BENCH / "workers.py")]
    out: dict = {"sizes": {}}
    headline = models.HEADLINE_SIZE
    folders = {name: models.sparse_checkpoint(cache, name, profile.sizes[name])
               for name in (*profile.scale_sizes, headline)}
    # the headline (the 11B sharded checkpoint against meta instantiation) and the smaller shapes for scaling,
    # all interleaved in the same rounds so that every size is measured in the same conditions
    commands: dict[str, list[str]] = {}
    repeats: dict[str, int] = {}
    warmup: dict[str, int] = {}
    for command in ("params", "arch", "budget"):
        commands[f"{command} {headline}"] = [*t5peek, command, str(folders[headline])]
    commands[f"budget-train {headline}"] = [*t5peek, "budget", str(folders[headline]), "--mode", "train"]
    commands[f"meta {headline}"] = [*worker, "meta", str(folders[headline])]
    for key in commands:
        repeats[key], warmup[key] = profile.proc_repeats, profile.warmup
    for name in profile.scale_sizes:
        for command in profile.scale_commands:
            key = f"{command} {name}"
            commands[key] = [*t5peek, command, str(folders[name])]
            # no warm-up of their own: the headline's warm-up round filled the page cache and wrote the bytecode
            repeats[key], warmup[key] = profile.scale_proc_repeats, 0
    results = measure_processes(commands, repeats, warmup, env, lambda m: log(f"params/arch: {m}"))
    for name in (*profile.scale_sizes, headline):
        entry = {key.split()[0]: _pr_json(result) for key, result in results.items() if key.split()[1] == name}
        entry["parameters"] = models.parameter_count(profile.sizes[name])
        entry["shards"] = models.SHARDS
        out["sizes"][name] = entry
    return out


def section_load(profile: Profile, env: dict, folder: Path, cache: Path) -> dict:
    models.runnable_checkpoint(cache, profile.runnable, folder.name)  # built by the in-process worker already
    worker = [sys.executable, str(BENCH / "workers.py")]
    commands = {"t5peek": [*worker, "load", str(folder)], "from_pretrained": [*worker, "from-pretrained", str(folder)]}
    # no warm-up round: the libraries are in the page cache, and the in-process worker just read the weights
    results = measure_processes(commands, profile.load_repeats, 0, env, lambda m: log(f"load: {m}"))
    out = {name: _pr_json(r) for name, r in results.items()}
    for name, result in results.items():  # what stayed resident at the end of the last run, by kind
        try:
            out[name]["resident"] = json.loads(result.stdout.strip().splitlines()[-1])["resident"]
        except (ValueError, KeyError, IndexError):
            pass
    out["file_bytes"] = models.weights_size(folder)
    out["parameters"] = models.parameter_count(profile.runnable)
    return out


def section_inproc(profile: Profile, env: dict, folder: Path, work: Path) -> dict:
    out_file = work / f"inproc-{profile.name}.json"
    out_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / "inproc.py"), "--model", str(folder), "--out", str(out_file),
           "--build", json.dumps(profile.runnable),
           "--repeats", str(profile.trace_repeats), "--gen-repeats", str(profile.gen_repeats),
           "--beam-repeats", str(profile.beam_repeats),
           "--scale-repeats", str(profile.scale_repeats), "--gen-scale-repeats", str(profile.gen_scale_repeats),
           "--occlusion-repeats", str(profile.occlusion_repeats),
           "--warmup", str(max(profile.warmup, 0)),
           "--length", str(profile.length), "--target-length", str(profile.target_length),
           "--new-tokens", str(profile.new_tokens), "--beams", str(profile.beams),
           "--trace-lengths", ",".join(map(str, profile.trace_lengths)),
           "--gen-tokens", ",".join(map(str, profile.gen_tokens))]
    log("trace, generate, attend, lens and occlusion (in-process, one worker)")
    completed = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    if not out_file.exists():
        raise RuntimeError(f"the in-process worker wrote no results (exit {completed.returncode})")
    data = json.loads(out_file.read_text())
    if completed.returncode != 0:
        data["worker_exit"] = completed.returncode
    return data


def section_html(profile: Profile, env: dict, cache: Path) -> dict:
    """One fresh `t5peek generate --html FILE --self` process (the file's size does not vary between runs): the
    size of the page, and what it holds, read back from its data block."""
    folder = models.html_checkpoint(cache, profile.html_model, profile.html_new_tokens)
    with tempfile.TemporaryDirectory(prefix="t5peek-bench-html-") as tmp:
        page = Path(tmp) / "report.html"
        cmd = [*measure.t5peek_executable(), "generate", "-m", str(folder), models.prompt_words(profile.html_source),
               "--max-new-tokens", str(profile.html_new_tokens), "--greedy", "--self", "--html", str(page)]
        log(f"html: generate --html --self, {profile.html_source} source x {profile.html_new_tokens} new tokens")
        wall, peak, _ = measure.run_process(cmd, env)
        text = page.read_text(encoding="utf-8")
    data = json.loads(text.split('<script type="application/json" id="t5peek-data">', 1)[1].split("</script>", 1)[0])
    attention = data.get("attention", {})
    return {"bytes": len(text.encode("utf-8")), "source_tokens": len(data["source_ids"]),
            "new_tokens": len(data["steps"]), "maps": [k for k in ("cross", "encoder", "decoder") if attention.get(k)],
            "packed_bytes": sum(len(attention[k]["data"]) for k in ("cross", "encoder", "decoder") if attention.get(k)),
            "parameters": models.parameter_count(profile.html_model),
            "wall": Stat([wall]).to_json(), "rss": Stat([peak], unit="B").to_json()}


def _pr_json(result: ProcessResult) -> dict:
    return {"wall": result.wall.to_json(), "rss": result.rss.to_json()}


def _stat(data: dict | None) -> Stat | None:
    return Stat.from_json(data) if data else None


# ---------------------------------------------------------------------------------------------- rows


def _failed(data) -> str | None:
    """Why a section has no numbers, or None when it has them."""
    if data is None:
        return "not run (--only)"
    if isinstance(data, dict) and "missing" in data:
        return f"t5peek core not available ({data['missing']})"
    if isinstance(data, dict) and "error" in data:
        return f"error: {data['error']}"
    return None


def rows_startup(data) -> list[Row]:
    figure = "start-up: `t5peek --help` vs `python -c \"import torch, transformers\"`"
    reason = _failed(data)
    if reason:
        return [not_measured("start-up", reason, "≤ 0.3 s")]
    mine, anchor = _stat(data["t5peek"]["wall"]), _stat(data["anchor"]["wall"])
    heavy = data.get("heavy_imports")
    if heavy is not None:
        figure += (" (`--help` imports " + ", ".join(heavy) + ")") if heavy else \
            " (`--help` imports neither torch nor transformers)"
    return [Row(figure, cell(mine), cell(anchor), ratio_text(mine.median / anchor.median), "≤ 0.3 s absolute",
                yes_no(mine.median <= 0.3))]


def rows_params_arch(data) -> list[Row]:
    reason = _failed(data)
    targets = [("params: time", "≥ 5× faster"), ("params: time, absolute", "< 1.5 s"),
               ("params: peak RSS", "≤ 200 MB"), ("arch: time", "≤ 1.5×"), ("arch: time, absolute", "< 8 s"),
               ("arch: peak RSS", "≤ 1 GB")]
    if reason:
        return [not_measured(name, reason, target) for name, target in targets]
    head = data["sizes"][models.HEADLINE_SIZE]
    what = f"{_human_count(head['parameters'])}-parameter T5, {head['shards']} sparse shards"
    meta_wall, meta_rss = _stat(head["meta"]["wall"]), _stat(head["meta"]["rss"])
    rows = []
    for command, limit_ratio, limit_abs, limit_rss in (("params", 0.2, 1.5, 200 * MB), ("arch", 1.5, 8.0, GB)):
        wall, rss = _stat(head[command]["wall"]), _stat(head[command]["rss"])
        ratio = wall.median / meta_wall.median
        if command == "params":
            target, met = "≥ 5× faster (ratio ≤ 0.20×)", ratio <= limit_ratio
        else:
            target, met = "≤ 1.5×", ratio <= limit_ratio
        rows.append(Row(f"{command}: time, `t5peek {command}` on {what}", cell(wall),
                        cell(meta_wall, "meta instantiation"), ratio_text(ratio, faster_form=True), target,
                        yes_no(met)))
        rows.append(Row(f"{command}: time, absolute", cell(wall), "—", "—", f"< {limit_abs:g} s",
                        yes_no(wall.median < limit_abs)))
        rows.append(Row(f"{command}: peak RSS", cell(rss), cell(meta_rss, "meta instantiation"),
                        ratio_text(rss.median / meta_rss.median), f"≤ {fmt_value(limit_rss, 'B')}",
                        yes_no(rss.median <= limit_rss)))
    return rows


def rows_budget(data) -> list[Row]:
    """`t5peek budget` (and `--mode train`) on the 11B checkpoint: absolute time and peak RSS of fresh processes,
    meta instantiation beside them for scale."""
    modes = (("budget", "budget", "`t5peek budget`"),
             ("budget-train", "budget --mode train", "`t5peek budget --mode train`"))
    reason = _failed(data)
    head = None if reason else data["sizes"][models.HEADLINE_SIZE]
    if head is not None and not all(mode in head for mode, _, _ in modes):
        reason = "missing from the results"
    if reason:
        return [not_measured(f"{label}: {what}", reason, target) for _, label, _ in modes
                for what, target in (("time", "< 1 s"), ("peak RSS", "< 100 MB"))]
    what = f"{_human_count(head['parameters'])}-parameter T5, {head['shards']} sparse shards"
    meta_wall, meta_rss = _stat(head["meta"]["wall"]), _stat(head["meta"]["rss"])
    rows = []
    for mode, label, command in modes:
        wall, rss = _stat(head[mode]["wall"]), _stat(head[mode]["rss"])
        rows.append(Row(f"{label}: time, {command} on {what} (fresh process)", cell(wall),
                        cell(meta_wall, "meta instantiation"), ratio_text(wall.median / meta_wall.median, True),
                        "< 1 s absolute", yes_no(wall.median < 1.0)))
        rows.append(Row(f"{label}: peak RSS", cell(rss), cell(meta_rss, "meta instantiation"),
                        ratio_text(rss.median / meta_rss.median), "< 100 MB", yes_no(rss.median < 100 * MB)))
    return rows


def rows_trace(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    base = f"{profile.model_label}, {profile.length} source + {profile.target_length} target tokens"
    if reason:
        return [not_measured("trace: block view vs plain forward", reason, "≤ 1.15×"),
                not_measured("trace: block view vs torchinfo.summary", reason, "faster (< 1×)")]
    stats = {name: _stat(s) for name, s in data["stats"].items()}
    info = data.get("info", {})
    mine, forward, info_summary = stats["t5peek"], stats["forward"], stats.get("torchinfo")
    records = info.get("records")
    rows = [Row(f"trace: default block view ({records} modules recorded), {base}, teacher forcing",
                cell(mine, "`trace_forward`"), cell(forward, "plain forward"),
                ratio_text(mine.median / forward.median), "≤ 1.15×", yes_no(mine.median / forward.median <= 1.15))]
    if info_summary:
        ratio = mine.median / info_summary.median
        rows.append(Row("trace: block view vs `torchinfo.summary` (same model and inputs, depth 3)",
                        cell(mine, "`trace_forward`"), cell(info_summary, "torchinfo"),
                        ratio_text(ratio, faster_form=True), "faster (< 1×)", yes_no(ratio < 1)))
    depth2 = stats.get("t5peek depth 2")
    if depth2:
        ratio = depth2.median / forward.median
        rows.append(Row(f"trace: `--depth 2`, blocks only ({info.get('records depth 2')} modules recorded)",
                        cell(depth2, "`trace_forward`"), cell(forward, "plain forward"), ratio_text(ratio),
                        "≤ 1.15×", yes_no(ratio <= 1.15)))
    if info.get("same loss") is False:
        rows[0].figure += " (warning: loss differs from the plain forward)"
    return rows


def rows_generate(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    modes = ["greedy", f"beams={profile.beams}"]
    if reason:
        return [not_measured(f"generate: {mode}", reason, "≤ 1.1× / ≤ 1.3×") for mode in modes]
    rows = []
    for mode in modes:
        entry = data["modes"].get(mode)
        if entry is None:
            rows.append(not_measured(f"generate: {mode}", "missing from the results", "≤ 1.1×"))
            continue
        stats = {name: _stat(s) for name, s in entry["stats"].items()}
        info = entry["info"]
        mine, full, plain = stats["t5peek"], stats["generate+outputs"], stats.get("generate")
        label = "greedy" if mode == "greedy" else f"beam search, {profile.beams} beams"
        same = "" if info.get("same tokens") else ", tokens differ from generate()!"
        tokens = f"{info.get('new tokens t5peek')} new tokens{same}"
        ratio = mine.median / full.median
        rows.append(Row(f"generate: {label}, {tokens}, vs generate(output_scores, output_attentions, "
                        "return_dict_in_generate)", cell(mine, "`steps.decode`"),
                        cell(full, "generate()+outputs"), ratio_text(ratio), "≤ 1.1×", yes_no(ratio <= 1.1)))
        if plain:
            ratio = mine.median / plain.median
            rows.append(Row(f"generate: {label}, vs plain generate()", cell(mine, "`steps.decode`"),
                            cell(plain, "generate()"), ratio_text(ratio), "≤ 1.3×", yes_no(ratio <= 1.3)))
    return rows


def _same(info: dict) -> str:
    return "" if info.get("same tokens") else " (warning: the tokens differ from the anchor's!)"


def rows_attend(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("attend: one head at a decoder step vs the same greedy forward calls", reason, "≤ 1.2×")]
    info, stats = data["info"], {name: _stat(s) for name, s in data["stats"].items()}
    mine, calls, generate = stats["t5peek"], stats["forward calls"], stats["generate"]
    step = info["step"]
    base = (f"{profile.model_label}, {info['source tokens']} source tokens, step {step} "
            f"({info['decoder calls']} decoder calls)")
    ratio = mine.median / calls.median
    return [Row(f"attend: `Model.attend(prompt, step={step})` (layer {info['layer']}, head {info['head']}, "
                f"{info['kind']}), {base}, vs the same greedy run without hooks: encoder once + {step + 1} decoder "
                f"forward calls with KV cache{_same(info)}", cell(mine, "`attend`"), cell(calls, "forward calls"),
                ratio_text(ratio), "≤ 1.2×", yes_no(ratio <= 1.2)),
            Row(f"attend: vs `generate(max_new_tokens={step + 1}, do_sample=False, num_beams=1)` (reference)",
                cell(mine, "`attend`"), cell(generate, "generate()"), ratio_text(mine.median / generate.median),
                "— (reference)", "—")]


def rows_lens(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("lens: greedy vs `Model.generate` with the same settings", reason, "≤ 1.3×")]
    info, stats = data["info"], {name: _stat(s) for name, s in data["stats"].items()}
    mine, run, plain = stats["t5peek"], stats["t5peek generate"], stats["generate"]
    ratio = mine.median / run.median
    return [Row(f"lens: `Model.lens(prompt, max_new_tokens={profile.new_tokens})` ({info['depths']} depths read "
                f"at every step), {profile.model_label}, {profile.length} source tokens, {info['new tokens lens']} "
                f"new tokens, vs `Model.generate(..., sample=False)` with the same settings{_same(info)}",
                cell(mine, "`lens`"), cell(run, "`Model.generate`"), ratio_text(ratio), "≤ 1.3×",
                yes_no(ratio <= 1.3)),
            Row("lens: vs plain `generate(do_sample=False, num_beams=1)` (reference)", cell(mine, "`lens`"),
                cell(plain, "generate()"), ratio_text(mine.median / plain.median), "— (reference)", "—")]


def rows_patch(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("patch: a full sweep vs one plain teacher-forced forward per site", reason, "≤ 1×")]
    info, stats = data["info"], {name: _stat(s) for name, s in data["stats"].items()}
    mine, forward = stats["t5peek"], stats["forward"]
    runs = info["sites"] + 2  # every site, and the clean and corrupted passes
    budget = runs * forward.median
    ratio = mine.median / budget
    return [Row(f"patch: `Model.patch(prompt, noise=(1, 4), position={info['position']})`, a full sweep of "
                f"{info['sites']} sites (batched, 64 to a pass; the clean greedy output included), "
                f"{profile.model_label}, {info['source tokens']} source tokens, vs (sites + 2) × one plain "
                "teacher-forced forward", cell(mine, "`patch`"),
                f"{runs} × {fmt_value(forward.median, 's')} = {fmt_value(budget, 's')} "
                f"({cell(forward, 'one forward')})",
                ratio_text(ratio), "≤ 1×", yes_no(ratio <= 1.0))]


def rows_knockout(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("knockout --sweep: every head alone vs a forward and a generate() per head", reason,
                             "≤ 1×")]
    info, stats = data["info"], {name: _stat(s) for name, s in data["stats"].items()}
    mine, forward, generate = stats["t5peek"], stats["forward"], stats["generate"]
    heads = info["heads"]
    budget = heads * (forward.median + generate.median)
    ratio = mine.median / budget
    return [Row(f"knockout --sweep cross: {heads} heads, each knocked out alone, teacher-forced and decoded freely "
                f"(batched), {profile.model_label}, {info['source tokens']} source tokens, {info['new tokens']} new "
                "tokens, vs per head one plain teacher-forced forward + one greedy `generate()`",
                cell(mine, "`knockout`"),
                f"{heads} × ({fmt_value(forward.median, 's')} + {fmt_value(generate.median, 's')}) = "
                f"{fmt_value(budget, 's')}", ratio_text(ratio), "≤ 1×", yes_no(ratio <= 1.0))]


def rows_occlusion(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("generate --occlusion: the occlusion pass vs (S + 1) teacher-forced forwards", reason,
                             "≤ 1×")]
    info, stats = data["info"], {name: _stat(s) for name, s in data["stats"].items()}
    mine, forward = stats["t5peek"], stats["forward"]
    source = info["source tokens"]
    budget = (source + 1) * forward.median
    ratio = mine.median / budget
    return [Row(f"generate --occlusion: `occlude(...)`, what `--occlusion` adds to a greedy run ({info['copies']} "
                f"copies of the source: the full one and {info['occluded']} with one token padded), "
                f"{profile.model_label}, S = {source} source tokens, {info['new tokens']} new tokens, vs (S + 1) × "
                "one teacher-forced `model(input_ids, attention_mask, labels=output)` forward",
                cell(mine, "`occlude`"), f"{source + 1} × {fmt_value(forward.median, 's')} = "
                f"{fmt_value(budget, 's')} ({cell(forward, 'one forward')})", ratio_text(ratio), "≤ 1× (≤ S + 1 "
                "forwards)", yes_no(ratio <= 1.0))]


def rows_html(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    figure = (f"html: size of the `generate --html FILE --self` report, {profile.html_label}, "
              f"{profile.html_source} source x {profile.html_new_tokens} generated tokens")
    if reason:
        return [not_measured(figure, reason, "≤ 2 MB")]
    size = data["bytes"]
    wall, rss = _stat(data["wall"]), _stat(data["rss"])
    shape = f"{data['source_tokens']} source x {data['new_tokens']} generated tokens"
    figure = (f"html: size of the `generate --html FILE --self` report ({', '.join(data['maps'])} attention, every "
              f"layer and head), {profile.html_label} ({_human_count(data['parameters'])} parameters), {shape}; "
              f"the run: {cell(wall)}, peak RSS {fmt_value(rss.median, 'B')}")
    return [Row(figure, fmt_value(size, "B") + f" ({size:,} bytes; packed maps {fmt_value(data['packed_bytes'], 'B')})",
                "—", "—", "≤ 2 MB", yes_no(size <= 2 * MB))]


def rows_load(data, profile: Profile) -> list[Row]:
    reason = _failed(data)
    if reason:
        return [not_measured("load: peak RSS", reason, "≤ 1.2× the file size")]
    rss, fp_rss = _stat(data["t5peek"]["rss"]), _stat(data["from_pretrained"]["rss"])
    wall, fp_wall = _stat(data["t5peek"]["wall"]), _stat(data["from_pretrained"]["wall"])
    size = data["file_bytes"]
    what = f"{_human_count(data['parameters'])}-parameter {profile.model_label}, float32"
    ratio = rss.median / size
    rows = [
        Row(f"load: peak RSS of `load_model` (weights + tokenizer, fresh process), {what}", cell(rss),
            f"file size: {fmt_value(size, 'B')}", ratio_text(ratio), "≤ 1.2× the file size", yes_no(ratio <= 1.2)),
    ]
    resident = data["t5peek"].get("resident") or {}
    if resident.get("RssAnon") is not None and resident.get("RssFile") is not None:
        fp = data["from_pretrained"].get("resident") or {}
        fp_text = (f"from_pretrained: anonymous {fmt_value(fp['RssAnon'], 'B')}, file-backed "
                   f"{fmt_value(fp['RssFile'], 'B')}") if "RssAnon" in fp and "RssFile" in fp else "—"
        rows.append(Row("load: resident when loading is done, by kind (anonymous = heap and tensors; file-backed = "
                        "mapped libraries and memory-mapped weights, page cache the kernel can drop)",
                        f"anonymous {fmt_value(resident['RssAnon'], 'B')}, file-backed "
                        f"{fmt_value(resident['RssFile'], 'B')}", fp_text,
                        ratio_text(resident["RssAnon"] / size) + " (anonymous ÷ file size)", "— (reference)", "—"))
    rows += [
        Row("load: peak RSS against `from_pretrained` alone (reference)", cell(rss),
            cell(fp_rss, "from_pretrained"), ratio_text(rss.median / fp_rss.median), "— (reference)", "—"),
        Row("load: time against `from_pretrained` alone (reference)", cell(wall), cell(fp_wall, "from_pretrained"),
            ratio_text(wall.median / fp_wall.median), "— (reference)", "—"),
    ]
    return rows


# ---------------------------------------------------------------------------------------------- scaling


def _human_count(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def scalings_size(data, profile: Profile) -> list[Scaling]:
    if _failed(data):
        return []
    names = [n for n in ("small", "base", "xxl") if n in data["sizes"]]
    names.sort(key=lambda n: data["sizes"][n]["parameters"])
    out = []
    for command in ("params", "arch"):
        measured = [n for n in names if command in data["sizes"][n]]
        if len(measured) < 2:
            continue
        x = [data["sizes"][n]["parameters"] for n in measured]
        x_names = [f"{n} {_human_count(c)}" for n, c in zip(measured, x)]
        stats = [_stat(data["sizes"][n][command]["wall"]) for n in measured]
        med = [s.median for s in stats]
        slope = report.loglog_slope(x, med)
        growth = (f"×{med[-1] / med[0]:.2f} time for ×{x[-1] / x[0]:.0f} parameters "
                  f"(log-log slope {slope:.2f})")
        out.append(Scaling(f"`{command}` vs model size", "parameters (sparse checkpoints, 5 shards)", x_names,
                           [Series(f"t5peek {command}", x, stats)], growth, "flat: log-log slope ≤ 0.1",
                           yes_no(slope <= 0.1), log_y=True, panel="model size"))
    return out


def scaling_trace(data) -> list[Scaling]:
    if _failed(data):
        return []
    x = list(data["lengths"])
    mine = [_stat(s) for s in data["t5peek"]]
    forward = [_stat(s) for s in data["forward"]]
    ratios = [a.median / b.median for a, b in zip(mine, forward)]
    slope = report.loglog_slope(x, [s.median for s in mine])
    growth = (f"log-log slope {slope:.2f}; ÷ plain forward: " + ", ".join(f"{r:.2f}×" for r in ratios))
    return [Scaling("`trace` vs input length", f"source tokens (target: {data['target_length']} tokens)",
                    [str(v) for v in x], [Series("t5peek trace (block view)", x, mine),
                                          Series("plain forward", x, forward)],
                    growth, "≤ 1.15× the plain forward at every length", yes_no(max(ratios) <= 1.15),
                    log_x=True, log_y=True, ratio_to="plain forward")]


def scaling_generate(data) -> list[Scaling]:
    if _failed(data):
        return []
    x = list(data["tokens"])
    mine = [_stat(s) for s in data["t5peek"]]
    anchor = [_stat(s) for s in data["generate+outputs"]]
    med = [s.median for s in mine]
    _, per_token, r2 = report.linear_fit(x, med)
    last = report.loglog_slope(x[-2:], med[-2:]) if len(x) >= 2 else 0.0
    ratios = [a.median / b.median for a, b in zip(mine, anchor)]
    growth = (f"{per_token * 1000:.0f} ms per token, linear fit R² {r2:.3f}; {x[-2]}→{x[-1]} tokens: "
              f"×{med[-1] / med[-2]:.2f} time (slope {last:.2f}); ÷ generate()+outputs: "
              + ", ".join(f"{r:.2f}×" for r in ratios))
    return [Scaling("`generate` (greedy) vs new tokens", f"new tokens (source: {data['length']} tokens)",
                    [str(v) for v in x], [Series("t5peek steps.decode", x, mine),
                                          Series("generate()+outputs", x, anchor)],
                    growth, "linear (KV cache): doubling the tokens at most doubles the time (slope ≤ 1.15 "
                    "over the last doubling)", yes_no(last <= 1.15), log_x=False, log_y=False,
                    ratio_to="generate()+outputs")]


# ---------------------------------------------------------------------------------------------- header


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) * 1024 / GB:.0f} GB RAM"
    except OSError:
        pass
    return "RAM unknown"


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "git unknown"
    if not commit:
        return "git unknown"
    return f"git {commit}" + (", with uncommitted changes" if dirty else "")


def machine_info(threads: int) -> dict:
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "memory": _memory(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": {name: _version(name) for name in ("t5peek", "torch", "transformers", "accelerate",
                                                           "torchinfo", "safetensors", "tokenizers", "matplotlib")},
            "git": _git(), "threads": threads, "load_start": os.getloadavg()}


def header_lines(meta: dict, profile: Profile, raw: dict) -> list[str]:
    v = meta["versions"]
    threads = meta["threads"]
    inproc_env = (raw.get("inproc") or {}).get("env", {}) if isinstance(raw.get("inproc"), dict) else {}
    load = ", ".join(f"{a:.1f}" for a in meta["load_start"])
    load_end = ", ".join(f"{a:.1f}" for a in meta.get("load_end", meta["load_start"]))
    minutes = meta.get("seconds", 0) / 60
    return [
        f"Generated by `python bench/run.py{'' if profile.name == 'full' else ' --' + profile.name}` on "
        f"{meta['date']} ({minutes:.1f} min). Do not edit by hand: re-run to update.",
        "",
        f"- **machine**: {meta['cpu']}, {meta['cores']} CPU cores, {meta['memory']}, {meta['system']}. Shared "
        f"with other work: load average (1, 5, 15 min) {load} at the start, {load_end} at the end.",
        f"- **versions**: Python {meta['python']}, torch {v['torch']}, transformers {v['transformers']}, "
        f"accelerate {v['accelerate']}, torchinfo {v['torchinfo']}, safetensors {v['safetensors']}, "
        f"tokenizers {v['tokenizers']}; t5peek {v['t5peek']} ({meta['git']}).",
        f"- **threads**: torch and OpenMP run with {threads} thread(s) in every measured process "
        f"(`--threads`; the in-process worker reported {inproc_env.get('torch_threads', '?')}). On a shared "
        "machine, OpenMP's barriers stall whenever another process holds a core, which made a forward pass "
        "vary by 10× with 2 threads; one thread gives stable numbers.",
        f"- **repeats**: {profile.proc_repeats} fresh processes per figure ({profile.startup_repeats} for "
        f"start-up, {profile.load_repeats} for load: its peak RSS barely varies), {profile.trace_repeats} trace "
        f"rounds, {profile.gen_repeats} greedy and {profile.beam_repeats} beam-search generate rounds, "
        f"{profile.gen_repeats} attend and lens rounds, {profile.occlusion_repeats} occlusion rounds, "
        f"{profile.scale_repeats} per trace scaling point, {profile.gen_scale_repeats} generate scaling runs, "
        f"{profile.scale_proc_repeats} per model size; an uncounted warm-up round first "
        "(for generate, attend, lens, occlusion: the check that both sides produce the same tokens); one "
        "`generate --html` process (its size does not vary); compared variants interleaved, "
        "the order reversed every other round (A B C, C B A, ...).",
        "- **re-run**:",
        "",
        "  ```bash",
        "  . .venv/bin/activate && pip install -e \".[dev]\"   # torchinfo, accelerate (anchors), matplotlib (plot)",
        "  python bench/run.py            # everything, ~10 min; writes docs/benchmarks.md and the PNG",
        "  python bench/run.py --quick    # fewer repeats, ~5 min",
        "  python bench/run.py --smoke --out /tmp/bench   # tiny sizes, what tests/test_bench_smoke.py runs",
        "  ```",
    ]


def method_lines(profile: Profile, raw: dict) -> list[str]:
    load = raw.get("load") if isinstance(raw.get("load"), dict) else {}
    size = f", {fmt_value(load['file_bytes'], 'B')}" if load.get("file_bytes") else ""
    count = models.parameter_count(profile.runnable)
    return [
        "- **Checkpoints** are built locally in `bench/.cache/` (nothing is downloaded; every measured process "
        "runs with `HF_HUB_OFFLINE=1`). `params` and `arch` read sparse checkpoints: `config.json` and real "
        "safetensors headers over holes (`bench/sparse_checkpoint.py`), 5 shards, in the shapes of flan-t5-small, "
        f"flan-t5-base and T5 11B. `trace`, `generate`, `attend`, `lens`, `--occlusion` and `load` use a "
        f"`T5ForConditionalGeneration` "
        f"({profile.model_label}) with random weights ({count:,} parameters, untied head as flan-t5 stores it, "
        f"float32{size}) and a word-level tokenizer built with `tokenizers`.",
        "- **start-up**: wall time of a fresh `t5peek --help` process against a fresh "
        "`python -c \"import torch, transformers\"` (what any tool built on them pays first). Page cache warm.",
        "- **params / arch**: fresh `t5peek params|arch FOLDER` processes (rich output to /dev/null) against a "
        "fresh process doing what `accelerate estimate-memory` does: `AutoConfig.from_pretrained` + "
        "`init_empty_weights()` + `AutoModelForSeq2SeqLM.from_config`, then counting parameters "
        "(`bench/workers.py meta`). Peak RSS is the process's maximum resident set (`/usr/bin/time -f %M`).",
        "- **budget**: fresh `t5peek budget FOLDER` and `t5peek budget FOLDER --mode train` processes on the same "
        "11B sparse checkpoint, in the same interleaved rounds; the targets are absolute (it reads config.json and "
        "the headers only), meta instantiation is shown beside them for scale.",
        "- **trace**: in-process, after warm-up, on one model loaded by t5peek's `load_model` (eager attention, "
        "which `t5peek trace` uses): `trace.trace_forward(model, input_ids, attention_mask, target_ids=labels)` "
        "(teacher forcing: one forward pass of encoder and decoder under hooks, with the loss) against the same "
        "call without hooks, `model(input_ids, attention_mask, decoder_input_ids=shift_right(labels), labels, "
        "use_cache=False)` under `torch.no_grad()`, and against `torchinfo.summary(model, input_data=...)` on the "
        "same inputs. The benchmark checks that the traced and the plain forward compute the same loss.",
        f"- **generate**: in-process, `steps.decode(model, tokenizer, input_ids, settings)` against "
        "`model.generate(**settings.generate_kwargs)` with and without `output_scores=True, "
        "output_attentions=True, return_dict_in_generate=True` (what t5peek shows: scores and cross-attention "
        f"at every step). Settings on both sides: `max_new_tokens = min_new_tokens = {profile.new_tokens}` (the "
        "end-of-sequence token is banned until then, so exactly that many tokens), greedy, then "
        f"`num_beams={profile.beams}`; the benchmark checks both produce the same tokens.",
        f"- **attend**: in-process, on a `t5peek.Model` of the same folder whose session loaded the weights once "
        f"(eager attention, as `t5peek attend` loads them): `Model.attend(prompt, step=T)` with T = "
        f"{profile.new_tokens - 1} (cross-attention, last decoder layer, head 0; an earlier step only when greedy "
        "decoding writes `</s>` before T, which the row shows), against what it runs without hooks: the encoder "
        "once, then T + 1 decoder forward calls with the KV cache feeding each argmax to the next (plain "
        "transformers calls, `bench/inproc_views.py`), and for reference `model.generate(max_new_tokens=T + 1, "
        "do_sample=False, num_beams=1)`. attend's time includes tokenizing, its hooks, recomputing the head and "
        "building the record; the benchmark checks that all three decode the same tokens.",
        f"- **lens**: `Model.lens(prompt, max_new_tokens={profile.new_tokens})` (greedy; every depth of every "
        f"step read through the head) against `Model.generate(prompt, max_new_tokens={profile.new_tokens}, "
        "sample=False)` on the same model (the same greedy settings from the generation config, with its scores "
        "and cross-attention), and plain `model.generate(do_sample=False, num_beams=1)` for reference; same "
        "tokens checked.",
        "- **generate --occlusion**: the occlusion core `generate.occlusion.occlude(model, input_ids, mask, run, "
        "pad, ...)` on a finished greedy run of "
        f"{profile.new_tokens} tokens (what `--occlusion` adds to `generate`: the output re-scored teacher-forced "
        "with the full source and with each non-special source token replaced by the pad token, the copies "
        "batched), against (S + 1) × one teacher-forced `model(input_ids, attention_mask, labels=output)` "
        "forward, S the source length. The benchmark checks that the full-source probabilities equal the "
        "forward's.",
        f"- **html**: one fresh `t5peek generate -m FOLDER PROMPT --max-new-tokens {profile.html_new_tokens} "
        f"--greedy --self --html FILE` process on a {profile.html_label} model with random weights (untied head, "
        "float32, word-level tokenizer; its generation_config sets `min_new_tokens` so that every token asked for "
        f"is written) and a {profile.html_source}-token prompt; the figure is the file's size in bytes (MB = "
        "10^6 bytes), and the row says what its data block holds (tokens, attention maps) as read back.",
        "- **load**: peak RSS of a fresh process running t5peek's `load_model` (weights and tokenizer: what "
        "`trace` and `generate` do before running), against the size of `model.safetensors` on disk, and "
        "against a fresh process running `AutoModelForSeq2SeqLM.from_pretrained` alone.",
        "- **Scaling**: `params`/`arch` against model size (same processes as above, smaller shapes); `trace` "
        f"against source length {', '.join(map(str, profile.trace_lengths))} (target fixed at "
        f"{profile.target_length} tokens); `generate` (greedy) against "
        f"{', '.join(map(str, profile.gen_tokens))} new tokens with a {profile.length}-token source, read off "
        f"one run of {max(profile.gen_tokens)} tokens per repeat: the time from the call until the n-th token is "
        "chosen (`decode(on_step=...)` for t5peek, a stopping criterion that only reads the clock for "
        "generate()), since asking for exactly n tokens runs the same first n steps.",
        "- Timings are wall-clock on a machine shared with other jobs, so they are medians of interleaved runs "
        "and the comparisons are ratios taken in the same conditions; min–max shows the spread.",
    ]


# ---------------------------------------------------------------------------------------------- main


def inproc_part(inproc, key: str):
    """One section of the in-process worker's results, or why there is none."""
    if inproc is None:
        return None
    if "error" in inproc or "missing" in inproc:
        return inproc
    if "load_error" in inproc:
        return inproc["load_error"]
    return inproc.get(key, {"error": "no result"})


def build_results(raw: dict, profile: Profile) -> tuple[list[Row], list[Scaling]]:
    inproc = raw.get("inproc")
    rows = (rows_startup(raw.get("startup")) + rows_params_arch(raw.get("params-arch"))
            + rows_budget(raw.get("params-arch"))
            + rows_trace(inproc_part(inproc, "trace"), profile)
            + rows_generate(inproc_part(inproc, "generate"), profile)
            + rows_attend(inproc_part(inproc, "attend"), profile) + rows_lens(inproc_part(inproc, "lens"), profile)
            + rows_occlusion(inproc_part(inproc, "occlusion"), profile)
            + rows_patch(inproc_part(inproc, "patch"), profile)
            + rows_knockout(inproc_part(inproc, "knockout"), profile)
            + rows_html(raw.get("html"), profile)
            + rows_load(raw.get("load"), profile))
    scalings = (scalings_size(raw.get("params-arch"), profile)
                + scaling_trace(inproc_part(inproc, "trace-scaling"))
                + scaling_generate(inproc_part(inproc, "generate-scaling")))
    return rows, scalings


def errors_in(raw: dict) -> list[str]:
    """Sections that failed with an error (a t5peek core that is not there yet is not an error here)."""
    found = []
    for key in SECTIONS:
        data = raw.get(key)
        if isinstance(data, dict) and "error" in data:
            found.append(f"{key}: {data['error']}")
        if key == "inproc" and isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, dict) and "error" in value and name != "env":
                    found.append(f"inproc {name}: {value['error']}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer repeats")
    mode.add_argument("--smoke", action="store_true", help="tiny models, 1 repeat (for the tests; not a measurement)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for benchmarks.md and the plot (default: docs/; --smoke: a temporary folder)")
    parser.add_argument("--cache", type=Path, default=None, help="where checkpoints are built (default: "
                        "bench/.cache; --smoke: inside --out)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads in measured processes "
                        "(default 1; 0 leaves torch's default)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    parser.add_argument("--render", type=Path, default=None, help="re-render a saved results JSON; measure nothing")
    args = parser.parse_args(argv)

    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="t5peek-bench-smoke-")) if args.smoke else ROOT / "docs"
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or (args.out / "cache" if args.smoke else models.DEFAULT_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    results_file = cache / f"results-{profile.name}.json"

    if args.render:
        raw = json.loads(args.render.read_text())
        profile = PROFILES[raw["meta"]["profile"]]
        results_file = args.render
    else:
        raw = run_all(args, profile, cache)
        results_file.write_text(json.dumps(raw, indent=1))

    rows, scalings = build_results(raw, profile)
    report.print_tables(rows, scalings)
    plot_name = None
    if not args.no_plot:
        plot_name = report.plot(args.out / PLOT_NAME, scalings,
                                f"t5peek benchmarks ({raw['meta']['date']}, {raw['meta']['cpu']}, "
                                f"{raw['meta']['threads']} thread(s))")
        if plot_name is None and scalings:
            log("matplotlib is not installed: no plot (pip install matplotlib)")
    markdown = args.out / "benchmarks.md"
    footer = [f"Raw results: `{_shown_path(results_file)}` (not committed)."]
    report.write_markdown(markdown, header_lines(raw["meta"], profile, raw), rows, scalings,
                          method_lines(profile, raw), plot_name, footer)
    log(f"wrote {markdown}" + (f" and {args.out / plot_name}" if plot_name else ""))
    missed = [r.figure for r in rows if r.met == "no"] + [s.name for s in scalings if s.met == "no"]
    if missed:
        log("targets missed: " + "; ".join(missed))
    failures = errors_in(raw)
    for failure in failures:
        log(f"could not measure: {failure}")
    return 1 if failures else 0


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_all(args, profile: Profile, cache: Path) -> dict:
    started = time.perf_counter()
    threads = args.threads
    extra = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads > 0 else {}
    env = bench_env(extra)
    meta = machine_info(threads if threads > 0 else 0)
    meta["profile"] = profile.name
    cores = os.cpu_count() or 1
    if meta["load_start"][0] > 0.5 * cores:
        log(f"the machine is busy (load average {meta['load_start'][0]:.1f} on {cores} cores): figures will be "
            "noisy")
    raw: dict = {"meta": meta}
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s): {', '.join(sorted(unknown))}")

    runnable = cache / models.runnable_name(profile.runnable)
    # the in-process worker builds the runnable checkpoint (it imports torch anyway), so it runs before `load`
    steps = [("startup", lambda: section_startup(profile, env)),
             ("params-arch", lambda: section_params_arch(profile, env, cache)),
             ("inproc", lambda: section_inproc(profile, env, runnable, cache)),
             ("html", lambda: section_html(profile, env, cache)),
             ("load", lambda: section_load(profile, env, runnable, cache))]
    for key, step in steps:
        if key not in only:
            continue
        try:
            raw[key] = step()
        except Exception as exc:  # noqa: BLE001 - one section failing must not lose the others
            log(f"{key} failed: {type(exc).__name__}: {exc}")
            raw[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    meta["load_end"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - started
    return raw


if __name__ == "__main__":
    sys.exit(main())
