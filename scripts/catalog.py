"""Generate the README's model catalog table from the conf/model tree.

Every preset is built on the meta device (no memory, no weights) at its default spaces and at each
reference setting its ``meta.official_params`` names; the table puts our exact trainable parameter
counts beside the official ones.

Usage:
    python scripts/catalog.py                 # print the table
    python scripts/catalog.py --write README.md   # replace the table between the markers
    python scripts/catalog.py --check README.md   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
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
