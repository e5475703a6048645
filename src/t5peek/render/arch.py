"""Render ArchReport as a rich Tree."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from t5peek import anatomy
from t5peek.arch import ArchReport, ModuleNode
from t5peek.render.format import human_count
from t5peek.render.table import fit_shown, say, shown, widest_part

ROLE_STYLES = {"embedding": "cyan", "position": "cyan", "self-attention": "green", "cross-attention": "magenta",
               "feed-forward": "yellow", "experts": "yellow", "router": "yellow", "norm": "dim", "lm_head": "blue"}


def render_arch(report: ArchReport, console: Console, show_shapes: bool = True) -> None:
    labels = [(level, _label(node, show_shapes, is_root=level == 0)) for level, node in _walk(report.root, 0)]
    guide = _guide_width(labels, console)
    fitted = iter(Text("\n").join(fit_shown(label, console, max(console.width - guide * level, 1)))
                  for level, label in labels)
    root = _Tree(next(fitted), guide_style="dim")
    root.guides(guide)
    _add_children(root, report.root, fitted)
    console.print(root)
    say(console, Text(f"total: {report.total:,} parameters ({human_count(report.total)}), tied weights "
                      "counted once", style="bold"))
    if _has_ties(report.root):
        say(console, Text("a tied weight counts once, under the name that holds it: take out the 'tied to' "
                          "counts and the children add up to their parent", style="dim"))
    for note in report.notes:
        say(console, Text(f"note: {note}", style="yellow"))


class _Tree(Tree):
    """rich's Tree, with guides of 4 cells (rich's), or 3 or 2 where a name would not fit beside 4-cell guides."""

    def guides(self, width: int) -> None:
        if not hasattr(Tree, "ASCII_GUIDES"):  # rich before 13.8 keeps its guides inside the drawing code
            return
        self.ASCII_GUIDES = tuple(guide[:width - 1] + guide[-1] if width < 4 else guide
                                  for guide in Tree.ASCII_GUIDES)
        self.TREE_GUIDES = [tuple(guide[:width - 1] + guide[-1] if width < 4 else guide for guide in guides)
                            for guides in Tree.TREE_GUIDES]


def _guide_width(labels: list[tuple[int, Text]], console: Console) -> int:
    """The widest guides (4 cells, 3 or 2) beside which every label's words fit whole."""
    need = [(level, widest_part(shown(label, console))) for level, label in labels]
    return next((guide for guide in (4, 3) if all(part <= console.width - guide * level for level, part in need)), 2)


def _walk(node: ModuleNode, level: int):
    yield level, node
    for child in node.children:
        yield from _walk(child, level + 1)


def _add_children(branch: Tree, node: ModuleNode, fitted) -> None:
    for child in node.children:
        _add_children(branch.add(next(fitted)), child, fitted)


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
