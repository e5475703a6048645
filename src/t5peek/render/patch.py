"""Render a patch run: the two sources, the scores, one map of the restored fraction per kind of site, the
strongest sites and what they mean. Tokens are Text, never markup."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.interventions.records import PatchedSite, PatchRun
from t5peek.render.format import Column, flow, grid, print_lines, probability, show_token, source_name, words
from t5peek.render.heatmap import shade_lines

KIND_TITLES = {"encoder": "encoder block outputs (layer × source position)",
               "self_attention": "decoder self-attention outputs (layer × decoder position)",
               "cross_attention": "decoder cross-attention outputs (layer × decoder position)",
               "feed_forward": "decoder feed-forward outputs (layer × decoder position)",
               "cross_kv": "cross-attention keys and values (per decoder layer, every source position at once)"}
KIND_NAMES = {"encoder": "encoder block", "self_attention": "self-attention", "cross_attention": "cross-attention",
              "feed_forward": "feed-forward", "cross_kv": "cross-attention K/V"}
METRIC_NAMES = {"logit": "the logit of {token}", "prob": "the probability of {token}",
                "logit-diff": "logit({token}) - logit({other})"}
STRONGEST = 8


def render_patch(run: PatchRun, console: Console) -> None:
    width = console.width or 100
    _header(run, console, width)
    for kind in KIND_TITLES:
        sites = [site for site in run.sites if site.kind == kind]
        if sites:
            console.print()
            print_lines(console, flow(words(KIND_TITLES[kind], style="bold", first=""), width))
            print_lines(console, _map(run, kind, sites, width))
    console.print()
    _strongest(run, console, width)
    for note in run.notes:
        print_lines(console, flow(words("note: " + note, first=""), width))


def _header(run: PatchRun, console: Console, width: int) -> None:
    token, other = f"'{show_token(run.token)}'", f"'{show_token(run.corrupted_token)}'"
    title = [Text(f"{run.model}  ", style="bold"), Text("activation patching", style="bold cyan")]
    title += words(f"·  decoder position {run.position}  ·  {run.metric}", first="  ")
    print_lines(console, flow(title, width))
    print_lines(console, flow([Text("clean:", style="bold")] + [Text(" " + show_token(t)) for t in run.source_tokens],
                              width))
    if run.noise is not None:
        low, high = run.noise
        names = " ".join(show_token(t) for t in run.source_tokens[low:high])
        what = (f"the clean source with Gaussian noise (std {run.noise_std:.3g}: 3 × the embedding's, seed {run.seed}) "
                f"added to the embedding{'s of tokens' if high - low > 1 else ' of token'} {low}"
                f"{f' to {high - 1}' if high - low > 1 else ''} ({names})")
        print_lines(console, flow([Text("corrupted:", style="bold")] + words(what), width))
    else:
        pieces = [Text("corrupted:", style="bold")]
        for clean, corrupted in zip(run.source_tokens, run.corrupted_tokens):
            pieces.append(Text(" " + show_token(corrupted), style="bold" if clean != corrupted else ""))
        print_lines(console, flow(pieces, width))
    read = " ".join(show_token(t) for t in run.output_tokens[:run.position + 1])
    print_lines(console, flow(words(f"both runs read the clean output up to position {run.position} ({read}); the "
                                    f"clean run then predicts {token} (id {run.token_id}), the corrupted one "
                                    f"{other}.", first=""), width))
    score = METRIC_NAMES[run.metric].format(token=token, other=other)
    print_lines(console, flow(words(f"score = {score}: clean {_number(run.clean, run.metric)}, corrupted "
                                    f"{_number(run.corrupted, run.metric)}. Each site is restored alone from the "
                                    "clean run into "
                                    "the corrupted one; restored = (patched - corrupted) / (clean - corrupted): "
                                    "1 brings the clean score back, 0 changes nothing.", first=""), width))


def _number(value: float, metric: str = "logit") -> str:
    return probability(value) if metric == "prob" else f"{value:.2f}"


def _map(run: PatchRun, kind: str, sites: list[PatchedSite], width: int) -> list[Text]:
    layers = sorted({site.layer for site in sites})
    if kind == "cross_kv":
        columns = [Column("layer", right=True), Column("score", right=True), Column("restored", right=True)]
        rows = [[str(site.layer), _number(site.logit, run.metric), _fraction(site.restored)] for site in sites]
        return grid(columns, rows, width, indent=2)
    if kind == "encoder":
        names = [show_token(t) for t in run.source_tokens]
    else:
        names = [show_token(t) for t in run.output_tokens[:run.position + 1]]
    values = {(site.layer, site.position): site.restored for site in sites}
    rows = [[_or_zero(values.get((layer, p))) for p in range(len(names))] for layer in layers]
    return shade_lines(rows, [f"layer {layer}" for layer in layers], names, width,
                       "source tokens" if kind == "encoder" else "decoder positions", (1.0, "full restoration"))


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _strongest(run: PatchRun, console: Console, width: int) -> None:
    ranked = sorted((s for s in run.sites if s.restored is not None), key=lambda s: -s.restored)[:STRONGEST]
    if not ranked:
        return
    console.print(Text("strongest sites", style="bold"))
    columns = [Column("site"), Column("layer", right=True), Column("position"), Column("score", right=True),
               Column("restored", right=True)]
    rows = [[KIND_NAMES[s.kind], str(s.layer), _position(run, s), _number(s.logit, run.metric), _fraction(s.restored)]
            for s in ranked]
    print_lines(console, grid(columns, rows, width, indent=2))
    print_lines(console, flow(words(meaning(run, ranked[0]), first=""), width))


def _position(run: PatchRun, site: PatchedSite) -> str:
    if site.position is None:
        return "all"
    if site.kind == "encoder":
        return f"{site.position} {source_name(run.source_tokens, site.position)}"
    return f"{site.position} {show_token(run.output_tokens[site.position])}"


def meaning(run: PatchRun, best: PatchedSite) -> str:
    """One sentence: where the information the corruption took away is carried."""
    share = f"{100 * best.restored:.0f}%"
    token = f"'{show_token(run.token)}'"
    if best.kind == "encoder":
        where = (f"the output of encoder block {best.layer} at source position {best.position} "
                 f"('{show_token(run.source_tokens[best.position])}')")
    elif best.kind == "cross_kv":
        where = f"the cross-attention keys and values of decoder layer {best.layer}"
    else:
        where = (f"the {KIND_NAMES[best.kind]} output of decoder layer {best.layer} at decoder position "
                 f"{best.position}")
    return (f"meaning: restoring {where} alone brings back {share} of the way from the corrupted score to the clean "
            f"one: the information the model needs to say {token} there passes through it.")
