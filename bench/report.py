"""The results as one table (terminal and markdown), a scaling table, and a PNG plot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from measure import Stat, fmt_stat, fmt_value

COLUMNS = ("figure", "t5peek", "anchor", "ratio", "target", "met")


@dataclass
class Row:
    figure: str
    t5peek: str
    anchor: str
    ratio: str
    target: str
    met: str  # yes / no / — (no target: a reference) / not measured: <reason>

    def cells(self) -> tuple[str, ...]:
        return (self.figure, self.t5peek, self.anchor, self.ratio, self.target, self.met)


@dataclass
class Series:
    """One curve: cost against work."""

    label: str
    x: list[float]
    stats: list[Stat]


@dataclass
class Scaling:
    """One scaling question: how a cost grows with work, answered in a row and a plot panel."""

    name: str  # "params vs model size"
    x_label: str  # "parameters"
    x_names: list[str]  # how each point is named in the table
    series: list[Series]  # the first is t5peek's, the others are for reference
    growth: str
    expectation: str
    met: str
    log_x: bool = True
    log_y: bool = False
    ratio_to: str | None = None  # the reference series whose ratio is plotted
    notes: list[str] = field(default_factory=list)
    panel: str = ""  # scalings with the same panel share one plot (default: their name)

    def row(self) -> tuple[str, ...]:
        main = self.series[0]
        points = " · ".join(f"{name}: {fmt_value(stat.median, stat.unit)}" for name, stat in
                            zip(self.x_names, main.stats))
        return (self.name, points, self.growth, self.expectation, self.met)


def ratio_text(ratio: float, faster_form: bool = False) -> str:
    text = f"{ratio:.2f}×"
    if faster_form and 0 < ratio < 1:
        text += f" ({1 / ratio:.1f}× faster)"
    return text


def yes_no(ok: bool) -> str:
    return "yes" if ok else "no"


def not_measured(figure: str, reason: str, target: str = "") -> Row:
    return Row(figure, "—", "—", "—", target, f"not measured: {reason}")


def cell(stat: Stat | None, what: str = "") -> str:
    if stat is None or not stat:
        return "—"
    return f"{what}: {fmt_stat(stat)}" if what else fmt_stat(stat)


# ---------------------------------------------------------------------------------------------- growth


def loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 0 flat, 1 linear, 2 quadratic."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else 0.0


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """y = a + b x: (a, b, R²)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    b = sum((a - mx) * (c - my) for a, c in zip(x, y)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((c - my) ** 2 for c in y)
    ss_res = sum((c - (a + b * v)) ** 2 for v, c in zip(x, y))
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


# ---------------------------------------------------------------------------------------------- text


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_escape(c) for c in row) + " |")
    return "\n".join(lines)


SCALING_COLUMNS = ("scaling", "t5peek: work → median", "growth", "expected", "met")


def print_tables(rows: list[Row], scalings: list[Scaling]) -> None:
    """The table on the terminal (rich when it is there, plain text otherwise)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a t5peek dependency
        print(markdown_table(COLUMNS, [r.cells() for r in rows]))
        print()
        print(markdown_table(SCALING_COLUMNS, [s.row() for s in scalings]))
        return
    console = Console(width=max(160, Console().width))
    table = Table(title="t5peek against what users would use instead", show_lines=False)
    for name in COLUMNS:
        table.add_column(name, overflow="fold")
    for row in rows:
        style = "red" if row.met == "no" else ("yellow" if row.met.startswith("not") else None)
        table.add_row(*row.cells(), style=style)
    console.print(table)
    if scalings:
        table = Table(title="how cost grows with work")
        for name in SCALING_COLUMNS:
            table.add_column(name, overflow="fold")
        for scaling in scalings:
            table.add_row(*scaling.row(), style="red" if scaling.met == "no" else None)
        console.print(table)


def write_markdown(path: Path, header_lines: list[str], rows: list[Row], scalings: list[Scaling],
                   method: list[str], plot_name: str | None, footer: list[str]) -> None:
    parts = ["# Benchmarks", ""]
    parts += header_lines
    parts += ["", "## Results", "",
              "Each cell: median (min–max, n = runs). ratio = t5peek's median ÷ the anchor's median "
              "(below 1: t5peek is cheaper). met = the target in the same row is reached by the median.", ""]
    parts.append(markdown_table(COLUMNS, [r.cells() for r in rows]))
    if scalings:
        parts += ["", "## Scaling", "",
                  "How each cost grows with the work it is given (the plot shows min–max as error bars).", ""]
        parts.append(markdown_table(SCALING_COLUMNS, [s.row() for s in scalings]))
        notes = [f"- {s.name}: {note}" for s in scalings for note in s.notes]
        if notes:
            parts += [""] + notes
    if plot_name:
        parts += ["", f"![how cost grows with work]({plot_name})"]
    parts += ["", "## Method", ""] + method
    if footer:
        parts += [""] + footer
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- plot


def plot(path: Path, scalings: list[Scaling], title: str) -> str | None:
    """One PNG: a panel per scaling question (those sharing `panel` together), and one of t5peek ÷ anchor
    against relative work. None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter, NullLocator
    except ImportError:
        return None
    if not scalings:
        return None
    import textwrap

    groups: dict[str, list[Scaling]] = {}
    for scaling in scalings:
        groups.setdefault(scaling.panel or scaling.name, []).append(scaling)
    ratio_scalings = [s for s in scalings if s.ratio_to]
    panels = len(groups) + (1 if ratio_scalings else 0)
    cols = 2
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.6 * rows), squeeze=False)
    flat = [ax for line in axes for ax in line]
    for ax, (panel, members) in zip(flat, groups.items()):
        first = members[0]
        for scaling in members:
            for series in scaling.series:
                med = [s.median for s in series.stats]
                low = [s.median - s.min for s in series.stats]
                high = [s.max - s.median for s in series.stats]
                ax.errorbar(series.x, med, yerr=[low, high], marker="o", capsize=3, label=series.label)
        if first.log_x:
            ax.set_xscale("log")
        if first.log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xticks(first.series[0].x)
        ax.set_xticklabels(first.x_names, fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        if first.log_y:  # plain numbers on a log axis: 0.4, 0.6, 1, 2 ...
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel(first.x_label, fontsize=9)
        ax.set_ylabel("seconds (median, bars: min–max)", fontsize=9)
        subtitle = "\n".join(textwrap.fill(f"{s.name.replace('`', '')}: {s.growth}", 80) for s in members)
        ax.set_title(subtitle, fontsize=7.5)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if ratio_scalings:
        ax = flat[len(groups)]
        for scaling in ratio_scalings:
            main = scaling.series[0]
            ref = next(s for s in scaling.series if s.label == scaling.ratio_to)
            ratios = [a.median / b.median for a, b in zip(main.stats, ref.stats)]
            relative = [x / main.x[0] for x in main.x]
            ax.plot(relative, ratios, marker="o", label=f"{scaling.name.replace('`', '')} "
                    f"({', '.join(scaling.x_names)}): ÷ {scaling.ratio_to}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("work relative to the smallest point (×)", fontsize=9)
        ax.set_ylabel("t5peek ÷ anchor (medians)", fontsize=9)
        ax.set_title("t5peek's cost relative to its anchor as work grows", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
