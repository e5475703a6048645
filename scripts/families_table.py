#!/usr/bin/env python3
"""The README's table of encoder-decoder families and the commands that work on each, made from tests/families.py.

    python scripts/families_table.py                    print the table (markdown)
    python scripts/families_table.py --write README.md  replace the text between the markers in README.md

The markers are `<!-- families:start -->` and `<!-- families:end -->`. tests/test_families.py checks that the README's
table is this script's output, so the table cannot drift from the families the tests run. Neither torch nor
transformers is imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- families:start -->"
END = "<!-- families:end -->"
YES, NO = "✓", "–"


def load_families():
    """tests/families.py as a module (it imports nothing heavy until a checkpoint is built)."""
    spec = importlib.util.spec_from_file_location("t5peek_test_families", ROOT / "tests" / "families.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def table() -> str:
    """The markdown table, one row per family, ending with a newline."""
    families = load_families()
    header = ["family", "model_type", "for example"] + [f"`{command}`" for command in families.COMMANDS] + ["notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for family in families.FAMILIES:
        cells = [family.name, f"`{family.model_type}`", f"`{family.example}`"]
        cells += [YES if family.supports(command) else NO for command in families.COMMANDS]
        notes = [family.note] if family.note else []
        notes += [f"`{command}` not yet: {reason}" for command, reason in family.unsupported.items()]
        cells.append("; ".join(notes))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    lines.append(f"{YES} works, tested on a tiny random checkpoint of the family (`tests/test_families.py`: "
                 "`params` and `arch` totals equal `num_parameters()`, `generate` gives `model.generate()`'s tokens "
                 f"with the model's own settings, `trace` shows self- and cross-attention apart); {NO} the command "
                 "says in one line (exit 2) that it does not support the family yet.")
    return "\n".join(lines) + "\n"


def replace_table(text: str, new_table: str) -> str:
    """`text` with everything between the markers replaced by `new_table` (the markers stay)."""
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"no {START} ... {END} markers, in that order")
    return text[:start + len(START)] + "\n" + new_table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="FILE", type=Path,
                        help="replace the table between the markers in FILE (e.g. README.md) instead of printing it")
    args = parser.parse_args(argv)
    new_table = table()
    if args.write is None:
        sys.stdout.write(new_table)
        return 0
    try:
        text = args.write.read_text(encoding="utf-8")
        updated = replace_table(text, new_table)
    except (OSError, ValueError) as exc:
        print(f"error: {args.write}: {exc}", file=sys.stderr)
        return 1
    if updated != text:
        args.write.write_text(updated, encoding="utf-8")
        print(f"updated the families table in {args.write}", file=sys.stderr)
    else:
        print(f"the families table in {args.write} is up to date", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
