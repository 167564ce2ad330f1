"""Generate the README's model catalog table and the presets' parameter counts.

Every preset is built on the meta device (no memory, no weights) at its default spaces and at each
reference setting its ``meta.official_params`` names; the table puts our exact trainable parameter
counts beside the official ones. The count at the default spaces is also stored in each preset's
``meta.num_parameters``, where ``get_model_info`` reads it without importing torch
(``tests/test_presets.py`` checks that every stored count equals a real build).

Usage:
    python scripts/catalog.py                 # print the table
    python scripts/catalog.py --write README.md   # replace the table between the markers
    python scripts/catalog.py --check README.md   # exit 1 if README.md is out of date
    python scripts/catalog.py --write-params      # store meta.num_parameters in every preset
    python scripts/catalog.py --check-params      # exit 1 if a stored count is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

START, END = "<!-- catalog:start -->", "<!-- catalog:end -->"


def count(model_id: str, overrides: dict) -> int:
    """Trainable parameters of ``model_id`` with config ``overrides``, built on the meta device."""
    import torch

    from worldflux.config import get_config
    from worldflux.factory import build

    with torch.device("meta"):
        return int(build(get_config(model_id, **overrides), device="meta").num_parameters())


def table() -> str:
    """The catalog as a Markdown table."""
    from worldflux import catalog
    from worldflux.config import config_class, get_config

    aliases: dict[str, list[str]] = {}
    for alias, target in catalog.aliases().items():
        aliases.setdefault(target, []).append(f"`{alias}`")
    rows = [
        "| preset | aliases | type | maturity | surface | params (default spaces) | official count (setting): official / ours / diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for pid, entry in catalog.presets().items():
        meta = entry.meta
        settings = config_class(get_config(pid).family).REFERENCE_SETTINGS
        cells = []
        for name, official in (meta.get("official_params") or {}).items():
            ours = count(pid, settings[name])
            cells.append(
                f"{name}: {official:,} / {ours:,} / {100 * (ours - official) / official:+.2f}%"
            )
        rows.append(
            f"| `{pid}` | {', '.join(sorted(aliases.get(pid, []))) or '-'} | {meta.get('type')} | "
            f"{meta.get('maturity')} | {meta.get('surface', 'supported')} | {count(pid, {}):,} | "
            f"{'<br>'.join(cells) or '-'} |"
        )
    return "\n".join(rows)


def with_num_parameters(text: str, value: int) -> str:
    """A preset file's text with ``meta.num_parameters`` set to ``value`` (comments kept)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "meta:"), None)
    if start is None:
        raise SystemExit("preset has no top-level 'meta:' block")
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # blank lines after the block are not part of it
    pattern = re.compile(r"^(\s+num_parameters:\s*)\d+(.*)$", re.DOTALL)
    for i in range(start + 1, end):
        if match := pattern.match(lines[i]):
            lines[i] = f"{match.group(1)}{value}{match.group(2)}"
            return "".join(lines)
    indent = re.match(r"\s+", lines[start + 1]).group(0) if end > start + 1 else "  "
    lines.insert(end, f"{indent}num_parameters: {value}\n")
    return "".join(lines)


def stale_params(write: bool) -> list[str]:
    """Presets whose ``meta.num_parameters`` differs from a build (rewritten when ``write``)."""
    from worldflux import catalog

    stale = []
    for pid, entry in catalog.presets().items():
        value = count(pid, {})
        if entry.meta.get("num_parameters") == value:
            continue
        stale.append(f"{pid}: stored {entry.meta.get('num_parameters')}, built {value:,}")
        if write:
            entry.path.write_text(with_num_parameters(entry.path.read_text(), value))
    return stale


def splice(text: str, body: str) -> str:
    """Replace the block between the catalog markers of ``text`` with ``body``."""
    if START not in text or END not in text:
        raise SystemExit(f"markers {START} ... {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, help="file whose catalog block to rewrite")
    group.add_argument("--check", type=Path, help="file whose catalog block must be current")
    group.add_argument("--write-params", action="store_true", help="store meta.num_parameters")
    group.add_argument("--check-params", action="store_true", help="check meta.num_parameters")
    args = parser.parse_args()
    if args.write_params or args.check_params:
        stale = stale_params(write=args.write_params)
        for line in stale:
            print(("updated " if args.write_params else "out of date: ") + line)
        return 1 if stale and args.check_params else 0
    body = table()
    if args.write:
        args.write.write_text(splice(args.write.read_text(), body))
    elif args.check:
        current = args.check.read_text()
        if splice(current, body) != current:
            print(
                f"{args.check} catalog is out of date; run: python scripts/catalog.py --write {args.check}"
            )
            return 1
    else:
        print(body)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
