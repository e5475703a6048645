"""Render a lens run: a depth × step grid of what the stream points to, where each chosen token settles, how
much of its logit each kind of sublayer wrote, and (one step in detail) every depth with its top-k.

Without colour the grid marks the chosen token with '*'; tokens are Text, never markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.lens import LensRun, LensStep
from t5peek.render.format import Column, flow, grid, probability, show_token, words

# sublayer → (its column in the pushes table and its name in depth labels, its name where space is short)
NAMES = {"embedding": ("embedding", "embedding"), "self-attention": ("self-attn", "self"),
         "cross-attention": ("cross-attn", "cross"), "feed-forward": ("feed-fwd", "ff")}
CHOSEN_MARK = "*"


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
               Column("push", right=True), Column(f"top {run.top_k} at this depth")]
    rows = []
    for d in s.depths:
        top = Text()
        for n, candidate in enumerate(d.top_k):
            hit = candidate.token_id == s.token_id
            top.append(("  " if n else "") + show_token(candidate.token) + (CHOSEN_MARK if hit else ""),
                       style="bold" if hit else "")
            top.append(f" {probability(candidate.probability)}", style="dim")
        rows.append([depth_name(run, d.depth), str(d.rank), probability(d.probability), _signed(d.contribution),
                     top])
    _print(console, grid(columns, rows, width))
    total = sum(d.contribution for d in s.depths)
    summary = words(f"rank, prob: of '{show_token(s.token)}' at each depth; push: what that depth wrote into its "
                    f"logit ({total:.2f} in all + constant {s.constant:.2f} = {s.logit:.2f})", "dim", first="  ")
    _print(console, flow(summary, width))


def _footer(run: LensRun, console: Console, width: int, step: int | None) -> None:
    console.print()
    for label, text in (("lens", run.lens_method), ("push", run.method)):
        _print(console, flow([Text(f"{label}:", style="bold")] + words(text, "dim"), width))
    check = (f"check: the last depth equals the model's own logits (largest difference {run.lens_error:.1e}); the "
             f"pushes and the constant sum to the logit (largest difference {run.attribution_error:.1e})")
    _print(console, flow(words(check, "dim", first=""), width))
    for note in run.notes:
        _print(console, flow([Text("note:", style="bold")] + words(note, "dim"), width))
    if step is None and run.steps:
        console.print(Text(f"--step N shows every depth of one step with its top {run.top_k}", style="dim"))
