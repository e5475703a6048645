"""Render ArchReport as a rich Tree."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from t5peek import anatomy
from t5peek.arch import ArchReport, ModuleNode
from t5peek.render.format import human_count
from t5peek.render.table import fit_shown, say

ROLE_STYLES = {"embedding": "cyan", "position": "cyan", "self-attention": "green", "cross-attention": "magenta",
               "feed-forward": "yellow", "experts": "yellow", "router": "yellow", "norm": "dim", "lm_head": "blue"}


_GUIDE = 4  # cells of tree guide in front of a label, per level


def render_arch(report: ArchReport, console: Console, show_shapes: bool = True) -> None:
    root = Tree(_fitted(_label(report.root, show_shapes, is_root=True), console, 0), guide_style="dim")
    _add_children(root, report.root, show_shapes, console, 1)
    console.print(root)
    say(console, Text(f"total: {report.total:,} parameters ({human_count(report.total)}), tied weights "
                      "counted once", style="bold"))
    if _has_ties(report.root):
        say(console, Text("a tied weight counts once, under the name that holds it: take out the 'tied to' "
                          "counts and the children add up to their parent", style="dim"))
    for note in report.notes:
        say(console, Text(f"note: {note}", style="yellow"))


def _add_children(branch: Tree, node: ModuleNode, show_shapes: bool, console: Console, level: int) -> None:
    for child in node.children:
        sub = branch.add(_fitted(_label(child, show_shapes), console, level))
        _add_children(sub, child, show_shapes, console, level + 1)


def _fitted(label: Text, console: Console, level: int) -> Text:
    """The label broken where rich would break it beside the guides of its level, but never inside a word: a long
    dotted name breaks after a dot, and a number never breaks."""
    return Text("\n").join(fit_shown(label, console, max(console.width - _GUIDE * level, 1)))


def _label(node: ModuleNode, show_shapes: bool, is_root: bool = False) -> Text:
    text = Text()
    if is_root:
        text.append(node.cls, style="bold")
    else:
        text.append(f"({node.name}): ", style="bold")
        if node.repeat > 1:
            text.append(f"{node.repeat} × ", style="bold")
        # a summary is the module's own repr with its sizes (`Embedding(719, 128)`): one more shape
        text.append((node.summary if show_shapes else None) or node.cls, style=ROLE_STYLES.get(node.role, ""))
        if node.role == anatomy.CROSS_ATTENTION and not _says_cross(node):
            text.append("  cross-attention", style=ROLE_STYLES.get(node.role, ""))
    if node.params:
        count = f"{human_count(node.params)}" + (f" each, {human_count(node.total_params)} in all"
                                                 if node.repeat > 1 else "")
        text.append(f"  {count}", style="dim")
    _add_ties(text, node)
    if show_shapes and node.shapes and not node.summary:
        shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in node.shapes.items())
        text.append(f"  [{shapes}]", style="dim")
    if node.hidden_children:
        text.append(f"  … {node.hidden_children} children", style="dim")
    if node.differs:
        text.append(f"\n  ↳ {node.differs}", style="yellow")
    return text


def _says_cross(node: ModuleNode) -> bool:
    """Whether the module's own names say it is cross-attention (T5's EncDecAttention), unlike BART's
    `encoder_attn: BartAttention`."""
    named = f"{node.name} {node.cls}".lower()
    return "cross" in named or "encdec" in named


def _add_ties(text: Text, node: ModuleNode) -> None:
    """Where a subtree's tied parameters are counted: `tied to shared.weight`, or `incl. 92K tied to ...`."""
    sources = ", ".join(node.tied_sources)
    if node.tied_params and node.tied_params == node.params:
        text.append(f"  tied to {sources}", style="blue")
    elif node.tied_params:
        text.append(f"  incl. {human_count(node.tied_params)} tied to {sources}", style="blue")
    inside = sorted(set(node.tied_to.values()) - set(node.tied_sources))
    if inside:
        text.append("  tied to " + ", ".join(inside), style="blue")


def _has_ties(node: ModuleNode) -> bool:
    return bool(node.tied_params) or any(_has_ties(child) for child in node.children)
