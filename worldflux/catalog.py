"""The model catalog, read from the ``conf/model`` tree.

There is no second list of models in Python: a preset is a YAML file
``conf/model/<family>/<variant>.yaml`` with a ``meta`` block (id ``family:variant``); an alias is a
YAML file whose only content is a defaults list pointing at another model node
(``- /model/dreamerv3/size12m@_here_``). Files are read as plain YAML (no Hydra composition, no
torch), so listing the catalog is cheap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from worldflux.errors import UnknownModelError, suggest

MATURITIES = ("reference", "experimental", "skeleton")
SURFACES = ("supported", "public", "all")
#: Which preset surfaces each ``surface=`` filter admits.
_SURFACE_LEVELS = {
    "supported": {"supported"},
    "public": {"supported", "public"},
    "all": {"supported", "public", "all"},
}
#: The info keys every preset's ``meta`` block must define.
INFO_KEYS = ("description", "params", "type", "default_obs", "maturity")


def conf_dir() -> Path:
    """The ``conf`` directory: inside the installed package (wheel) or the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "model").is_dir():
            return candidate
    raise FileNotFoundError(
        "worldflux's config tree was not found: looked for conf/model in "
        f"{here / 'conf'} and {here.parent / 'conf'}"
    )


@dataclass(frozen=True)
class Entry:
    """One catalog entry: a preset (``meta`` set) or an alias (``target`` set)."""

    model_id: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    target: str | None = None

    @property
    def config_path(self) -> str:
        """The Hydra option for ``model=``, e.g. ``dreamerv3/size12m``."""
        return id_to_path(self.model_id)


def id_to_path(model_id: str) -> str:
    """``dreamerv3:size12m`` -> ``dreamerv3/size12m`` (the file under ``conf/model``)."""
    return model_id.replace(":", "/")


def path_to_id(rel: str) -> str:
    """``dreamerv3/size12m`` -> ``dreamerv3:size12m``."""
    return rel.replace("/", ":")


def _alias_target(doc: dict[str, Any]) -> str | None:
    keys = set(doc) - {"defaults"}
    defaults = doc.get("defaults")
    if keys or not isinstance(defaults, list):
        return None
    entries = [d for d in defaults if d != "_self_"]
    if len(entries) != 1 or not isinstance(entries[0], str):
        return None
    ref = entries[0]
    if not ref.startswith("/model/") or not ref.endswith("@_here_"):
        return None
    return path_to_id(ref[len("/model/") : -len("@_here_")])


@functools.lru_cache(maxsize=4)
def _scan(root: str) -> dict[str, Entry]:
    model_root = Path(root) / "model"
    entries: dict[str, Entry] = {}
    for path in sorted(model_root.rglob("*.yaml")):
        rel = path.relative_to(model_root).with_suffix("").as_posix()
        if rel.count("/") > 1:
            continue  # component files live deeper: conf/model/<family>/<slot>/<name>.yaml
        doc = yaml.safe_load(path.read_text()) or {}
        model_id = path_to_id(rel)
        if isinstance(doc.get("meta"), dict):
            entries[model_id] = Entry(model_id, path, meta=dict(doc["meta"]))
        elif (target := _alias_target(doc)) is not None:
            entries[model_id] = Entry(model_id, path, target=target)
    return entries


def entries() -> dict[str, Entry]:
    """All catalog entries (presets and aliases) by id."""
    return _scan(str(conf_dir()))


def presets() -> dict[str, Entry]:
    """Preset entries only."""
    return {k: e for k, e in entries().items() if e.target is None}


def aliases() -> dict[str, str]:
    """Alias -> preset id (chains resolved)."""
    return {k: resolve(k)[0] for k, e in entries().items() if e.target is not None}


def resolve(name: str) -> tuple[str, str | None]:
    """Resolve a preset id or alias to ``(preset_id, alias_or_None)``.

    Raises:
        UnknownModelError: a ``ValueError`` naming the expected ``type:size`` format for names
            without a colon, and listing close matches.
    """
    table = entries()
    seen: list[str] = []
    current = name
    while current in table and table[current].target is not None:
        if current in seen:
            raise UnknownModelError(f"alias cycle: {' -> '.join([*seen, current])}")
        seen.append(current)
        current = table[current].target  # type: ignore[assignment]
    if current in table:
        return current, (name if seen else None)
    hint = suggest(name, table)
    if ":" not in name:
        raise UnknownModelError(
            f"unknown model {name!r}: expected a preset id in 'type:size' format "
            f"(e.g. 'dreamerv3:size12m'), an alias, or a local path.{hint}"
        )
    raise UnknownModelError(f"unknown model {name!r}.{hint} See worldflux.list_models().")


def info(preset_id: str) -> dict[str, Any]:
    """The public info dict of one preset (its ``meta`` block plus ``model_id``)."""
    meta = presets()[preset_id].meta
    out = {k: meta.get(k) for k in INFO_KEYS}
    for extra in ("surface", "source", "official_params", "num_parameters"):
        if extra in meta:
            out[extra] = meta[extra]
    out["model_id"] = preset_id
    return out


def list_models(
    verbose: bool = False, maturity: str | None = None, surface: str = "supported"
) -> list[str] | dict[str, dict[str, Any]]:
    """List the presets in the catalog.

    Args:
        verbose: return ``{id: info}`` instead of a list of ids.
        maturity: keep only ``"reference"``, ``"experimental"`` or ``"skeleton"`` presets.
        surface: ``"supported"`` (default), ``"public"`` (adds advanced presets such as
            ``dreamerv3:official_xl``) or ``"all"``.

    Raises:
        ValueError: for a maturity or surface outside the valid values.
    """
    if maturity is not None and maturity not in MATURITIES:
        raise ValueError(f"maturity must be one of {MATURITIES} or None, got {maturity!r}")
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {SURFACES}, got {surface!r}")
    admitted = _SURFACE_LEVELS[surface]
    ids = [
        pid
        for pid, e in presets().items()
        if e.meta.get("surface", "supported") in admitted
        and (maturity is None or e.meta.get("maturity") == maturity)
    ]
    if verbose:
        return {pid: info(pid) for pid in ids}
    return ids
