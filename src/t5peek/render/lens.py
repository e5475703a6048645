"""Render a lens run: a depth × step grid of what the stream points to, where each chosen token settles, how
much of its logit each kind of sublayer wrote, and (one step in detail) every depth with its top-k.

Without colour the grid marks the chosen token with '*'; tokens are Text, never markup.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.text import Text

from t5peek.lens import LensRun, LensStep
from t5peek.lens.records import DepthReading
from t5peek.render.format import Column, flow, grid, probability, show_token, words

# sublayer → (its column in the pushes table and its name in depth labels, its name where space is short)
NAMES = {"embedding": ("embedding", "embedding"), "self-attention": ("self-attn", "self"),
         "cross-attention": ("cross-attn", "cross"), "feed-forward": ("feed-fwd", "ff")}
CHOSEN_MARK = "*"
STRONGEST_HEADS = 8  # rows of the --heads table of one step
KEYS_SHOWN = 3  # keys per head in that table


def render_lens(run: LensRun, console: Console, step: int | None = None) -> None:
    width = console.width or 100
    _header(run, console, width)
    if step is None:
        _overview(run, console, width)
    else:
        _detail(run, run.steps[step], console, width)
    _footer(run, console, width, step)


def _print(console: Console, lines) -> None:
    for line in lines:
        console.print(line, soft_wrap=True)  # laid out already: no wrapping, no cropping


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def depth_name(run: LensRun, depth: int, short: bool = False) -> str:
    """'1 cross-attn' (or '1 cross' when `short`) for the depth after layer 1's cross-attention."""
    layer, _, sublayer = run.depth_labels[depth].rpartition(" ")
    names = NAMES.get(sublayer, (sublayer, sublayer))
    return f"{layer} {names[1] if short else names[0]}".strip()


def _header(run: LensRun, console: Console, width: int) -> None:
    count = len(run.steps)
    view = (f"teacher forcing, {count} target token{'s' * (count != 1)}" if run.target is not None
            else f"greedy, {count} step{'s' * (count != 1)}")
    title = [Text(f"{run.model}  ", style="bold"), Text("logit lens", style="bold cyan")]
    title += words(f"·  {view}  ·  {run.model_type}, {run.norm_placement}, {run.decoder_layers} decoder layers",
                   first="  ")
    _print(console, flow(title, width))
    source = [Text(f"source ({len(run.source_ids)} tokens):", style="bold")]
    _print(console, flow(source + [Text(" " + show_token(t)) for t in run.source_tokens], width))
    what = "target" if run.target is not None else "output"
    _print(console, flow([Text(f"{what}:", style="bold")] + [Text(" " + show_token(s.token)) for s in run.steps],
                         width))
    if run.encoder_layer is not None:
        _print(console, flow([Text("decoder reads:", style="bold")] + words(run.encoder_read), width))
    console.print()


def _overview(run: LensRun, console: Console, width: int) -> None:
    console.print(Text(f"top-1 token at each depth  ({CHOSEN_MARK} = the token chosen at that step)", style="bold"))
    columns = [Column("depth", key=True)] + [Column(f"step {s.step}") for s in run.steps]
    rows = []
    for depth in range(len(run.depth_labels)):
        cells = [depth_name(run, depth)]
        for s in run.steps:
            top = s.depths[depth].top_k[0]
            hit = top.token_id == s.token_id
            cells.append(Text(show_token(top.token) + (CHOSEN_MARK if hit else ""), style="bold" if hit else "dim"))
        rows.append(cells)
    rows.append([Text("chosen", style="bold")] + [Text(show_token(s.token), style="bold") for s in run.steps])
    rows.append([Text("settles at", style="bold")] + [_settled(run, s, short=True) for s in run.steps])
    _print(console, grid(columns, rows, width))
    if any(s.watch for s in run.steps):
        _watch_overview(run, console, width)
    console.print()
    console.print(Text("pushes: how much each kind of sublayer wrote into the chosen token's logit", style="bold"))
    columns = [Column("step", right=True, key=True), Column("token"), Column("logit", right=True)] + \
        [Column(names[1], right=True) for names in NAMES.values()] + [Column("largest push")]
    rows = []
    for s in run.steps:
        sums = {kind: sum(d.contribution for d in s.depths if d.sublayer == kind) for kind in NAMES}
        largest = max(s.depths, key=lambda d: d.contribution)
        rows.append([str(s.step), Text(show_token(s.token)), f"{s.logit:.2f}", *(_signed(sums[k]) for k in NAMES),
                     f"{depth_name(run, largest.depth, short=True)} {_signed(largest.contribution)}"])
    _print(console, grid(columns, rows, width))
    if any(abs(s.constant) > 0 for s in run.steps):
        console.print(Text("  the logit also holds the head's constant (bias terms); --json has it per step",
                           style="dim"))
    if run.heads_method is not None:
        _sources_overview(run, console, width)


def _watch_overview(run: LensRun, console: Console, width: int) -> None:
    console.print()
    _print(console, flow(words("watched tokens: their best rank over the depths (at the first depth where it is "
                               "best), and their rank and probability at the last depth", "bold", first=""), width))
    tokens = run.steps[0].watch
    columns = [Column("step", right=True, key=True), Column("chosen")] + \
        [Column(f"'{show_token(w.token)}'") for w in tokens]
    rows = []
    for s in run.steps:
        cells = [str(s.step), Text(show_token(s.token))]
        for w in s.watch:
            best = min(w.ranks)
            where = depth_name(run, w.ranks.index(best), short=True)
            cells.append(f"{best} at {where}, last {w.ranks[-1]} {probability(w.probabilities[-1])}")
        rows.append(cells)
    _print(console, grid(columns, rows, width))


def _sources_overview(run: LensRun, console: Console, width: int) -> None:
    console.print()
    _print(console, flow(words("source or prefix: what cross-attention (reading the source) and self-attention "
                               "(reading the decoder's own prefix) pushed, and the source's share of what they "
                               "pushed up", "bold", first=""), width))
    columns = [Column("step", right=True, key=True), Column("token"), Column("source", right=True),
               Column("prefix", right=True), Column("share", right=True), Column("strongest head")]
    rows = []
    for s in run.steps:
        share = "-" if s.source_share is None else f"{s.source_share:.0%}"
        strongest = _strongest_heads(s, 1)
        head = f"{depth_name(run, strongest[0][0].depth, short=True)} h{strongest[0][1].head} " \
            f"{_signed(strongest[0][1].contribution)}" if strongest else "-"
        rows.append([str(s.step), Text(show_token(s.token)), _signed(s.source_push), _signed(s.prefix_push), share,
                     head])
    _print(console, grid(columns, rows, width))
    _print(console, flow(words("share: max(source, 0) / (max(source, 0) + max(prefix, 0)); a low share: the token "
                               "came from the decoder's own prefix more than from the source", "dim", first="  "),
                         width))


def _strongest_heads(s: LensStep, count: int) -> list:
    """(depth, head) pairs of one step, the largest |push| first."""
    pairs = [(d, h) for d in s.depths if d.heads for h in d.heads]
    return sorted(pairs, key=lambda pair: -abs(pair[1].contribution))[:count]


def _settled(run: LensRun, s: LensStep, short: bool = False) -> Text:
    if s.settled_depth is None:
        return Text("never", style="dim")
    return Text(depth_name(run, s.settled_depth, short))


def _detail(run: LensRun, s: LensStep, console: Console, width: int) -> None:
    how = "the target token" if run.target is not None else "greedy"
    line = [Text(f"step {s.step}", style="bold")] + words("the decoder read", first="  ") + \
        [Text(f" '{show_token(s.input_token)}'")] + words("and chose") + \
        [Text(f" '{show_token(s.token)}'", style="bold")]
    line += words(f"({how}): logit {s.logit:.2f}, probability {probability(s.probability)}")
    _print(console, flow(line, width))
    settled = ("never top-1" if s.settled_depth is None
               else f"top-1 from {depth_name(run, s.settled_depth)} on")
    _print(console, flow(words(f"'{show_token(s.token)}' is {settled}", "dim", first="  "), width))
    console.print()
    columns = [Column("depth", key=True), Column("rank", right=True), Column("prob", right=True),
               Column("push", right=True)] + [Column(f"'{show_token(w.token)}'", right=True) for w in s.watch] + \
        [Column(f"top {run.top_k} at this depth")]
    rows = []
    for d in s.depths:
        top = Text()
        for n, candidate in enumerate(d.top_k):
            hit = candidate.token_id == s.token_id
            top.append(("  " if n else "") + show_token(candidate.token) + (CHOSEN_MARK if hit else ""),
                       style="bold" if hit else "")
            top.append(f" {probability(candidate.probability)}", style="dim")
        watched = [f"{w.ranks[d.depth]} {probability(w.probabilities[d.depth])}" for w in s.watch]
        rows.append([depth_name(run, d.depth), str(d.rank), probability(d.probability), _signed(d.contribution),
                     *watched, top])
    _print(console, grid(columns, rows, width))
    total = sum(d.contribution for d in s.depths)
    summary = words(f"rank, prob: of '{show_token(s.token)}' at each depth; push: what that depth wrote into its "
                    f"logit ({total:.2f} in all + constant {s.constant:.2f} = {s.logit:.2f})", "dim", first="  ")
    _print(console, flow(summary, width))
    if s.watch:
        _print(console, flow(words("each watched token: its rank and probability at that depth", "dim", first="  "),
                             width))
    if run.heads_method is not None:
        _heads_detail(run, s, console, width)


def _heads_detail(run: LensRun, s: LensStep, console: Console, width: int) -> None:
    console.print()
    share = "" if s.source_share is None else f": {s.source_share:.0%} of what they pushed up came from the source"
    _print(console, flow(words(f"source (cross-attention) {_signed(s.source_push)}, prefix (self-attention) "
                               f"{_signed(s.prefix_push)}{share}", first=""), width))
    pairs = _strongest_heads(s, STRONGEST_HEADS)
    count = sum(len(d.heads) for d in s.depths if d.heads)
    console.print(Text(f"the {len(pairs)} strongest of {count} heads at this step", style="bold"))
    columns = [Column("depth", key=True), Column("head", right=True), Column("push", right=True),
               Column(f"the {KEYS_SHOWN} keys that gave most")]
    rows = []
    for d, h in pairs:
        keys = sorted(range(len(h.sources)), key=lambda k: -abs(h.sources[k]))[:KEYS_SHOWN]
        cell = Text()
        for n, k in enumerate(keys):
            cell.append(("  " if n else "") + show_token(_key_name(run, d, k)))
            cell.append(f" {_signed(h.sources[k])}", style="dim")
        if h.value_bias:
            cell.append(f"  bias {_signed(h.value_bias)}", style="dim")
        rows.append([depth_name(run, d.depth), f"h{h.head}", _signed(h.contribution), cell])
    _print(console, grid(columns, rows, width))
    post = ", + what the sublayer's LayerNorm made of its stream" if run.norm_placement == "post-norm" else ""
    _print(console, flow(words("a depth's push = Σ its heads + the output projection's bias" + post + "; a head's "
                               "= Σ its keys (weight × value) + its value bias; --json has every head and key",
                               "dim", first="  "), width))


def _key_name(run: LensRun, d: DepthReading, key: int) -> str:
    """The token a key is: a source token (cross-attention), or what the decoder read at that position."""
    if d.sublayer == "cross-attention":
        return run.source_tokens[key]
    return run.steps[key].input_token


def _footer(run: LensRun, console: Console, width: int, step: int | None) -> None:
    console.print()
    methods = (("lens", run.lens_method), ("push", run.method)) + \
        ((("heads", run.heads_method),) if run.heads_method is not None else ())
    for label, text in methods:
        _print(console, flow([Text(f"{label}:", style="bold")] + words(text, "dim"), width))
    _print(console, flow(words(_check(run), "dim", first=""), width))
    for note in run.notes:
        _print(console, flow([Text("note:", style="bold")] + words(note, "dim"), width))
    if step is None and run.steps:
        console.print(Text(f"--step N shows every depth of one step with its top {run.top_k}", style="dim"))


def _check(run: LensRun) -> str:
    """The two self-checks, over the steps whose logits are finite (the note says from which step they are not)."""
    if run.nonfinite_from is not None and math.isnan(run.lens_error) and math.isnan(run.attribution_error):
        return "check: not possible: the model's own logits are not finite at any step (see the note)"
    over = "" if run.nonfinite_from is None else ", over the steps whose logits are finite"
    heads = "" if run.heads_error is None else (
        f"; the heads (and biases) sum to their depth's push, and each head's keys (and value bias) to the head "
        f"(largest difference {run.heads_error:.1e})")
    return (f"check: the last depth equals the model's own logits (largest difference {run.lens_error:.1e}); the "
            f"pushes and the constant sum to the logit (largest difference {run.attribution_error:.1e}){heads}{over}")
