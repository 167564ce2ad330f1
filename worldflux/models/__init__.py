"""Model families. Each family is a subpackage ``worldflux/models/<family>/`` with ``config.py``
(typed config, no torch) and ``module.py`` (the LightningModule).

``FAMILIES`` maps a family name (the ``family`` field of its YAML base, which is also the name of
its subpackage) to the module holding its config class. It is read from the package directory,
so adding a family edits no shared list, and looking a family up imports no torch.
"""

from __future__ import annotations

import pkgutil

FAMILIES: dict[str, str] = {
    info.name: f"{__name__}.{info.name}.config"
    for info in pkgutil.iter_modules(__path__)
    if info.ispkg and not info.name.startswith("_")
}
