"""Activation patching on one teacher-forced pass: many single-site restorations, batched.

Every row of a batch is the corrupted run (the corrupted source, the clean decoder input) with one site put back
to its value in the clean run. A `Restore` names the rows that restore a site of one module; the hooks that do it
are installed once for the whole batch, so a sweep costs one forward per batch of rows, not one per site.

torch is imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from t5peek.interventions.sites import CROSS_KV, DECODER_KINDS, ENCODER, Sites
from t5peek.probe.hooks import OUTPUT, Hook, hooked, keep


@dataclass(frozen=True)
class Site:
    kind: str  # sites.SITE_KINDS
    layer: int
    position: int | None  # None: every position at once (cross_kv)


def all_sites(sites: Sites, source_length: int, position: int) -> list[Site]:
    """Every site of a sweep, in the order they are listed: encoder blocks by position, then each decoder
    sublayer kind at the decoder positions up to `position`, then each layer's cross-attention keys and values."""
    found = [Site(ENCODER, layer, p) for layer in range(sites.encoder_layers) for p in range(source_length)]
    for kind in DECODER_KINDS:
        found += [Site(kind, layer, p) for layer in range(sites.decoder_layers) for p in range(position + 1)]
    found += [Site(CROSS_KV, layer, None) for layer in range(sites.decoder_layers)]
    return found


def site_modules(sites: Sites, site: Site) -> tuple:
    """The modules whose outputs make up `site` (two for cross_kv: keys and values)."""
    if site.kind == ENCODER:
        return (sites.encoder_blocks[site.layer],)
    if site.kind == CROSS_KV:
        return sites.cross_kv[site.layer]
    return (sites.decoder[site.kind][site.layer],)


def recorded(model, sites: Sites, run: Callable[[], Any]) -> tuple[Any, dict]:
    """`run()` with every site module's output kept: (what run returned, {module: its output [1, ...]})."""
    modules = {module for site_kind in _kinds(sites) for module in site_kind}
    kept: dict[Any, list] = {module: [] for module in modules}
    with hooked(model, [Hook(module, OUTPUT, keep(kept[module])) for module in modules]):
        result = run()
    return result, {module: values[0] for module, values in kept.items() if values}


def _kinds(sites: Sites):
    yield sites.encoder_blocks
    for kind in DECODER_KINDS:
        yield sites.decoder[kind]
    for pair in sites.cross_kv:
        yield pair


def restoring(sites: Sites, rows: list, clean: dict) -> list[Hook]:
    """Hooks that put back, in batch row n, the clean value of the site `rows[n]` (or of every site of a tuple of
    sites: a cut), and change nothing else."""
    import torch

    plan: dict[Any, list[tuple[int, int | None]]] = {}
    for row, restored in enumerate(rows):
        for site in restored if isinstance(restored, tuple) else (restored,):
            for module in site_modules(sites, site):
                plan.setdefault(module, []).append((row, site.position))

    def restore(module, targets):
        whole = [row for row, position in targets if position is None]
        single = [(row, position) for row, position in targets if position is not None]

        def put_back(value, _call):
            value = value.clone()
            source = clean[module][0].to(value.dtype)
            if whole:
                value[torch.tensor(whole)] = source
            if single:
                rows_at = torch.tensor([row for row, _ in single])
                positions = torch.tensor([position for _, position in single])
                value[rows_at, positions] = source[positions]
            return value

        return put_back

    return [Hook(module, OUTPUT, restore(module, targets), "restore") for module, targets in plan.items()]
