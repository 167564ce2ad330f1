"""Model families. Each family is a subpackage with ``config.py`` (typed config, no torch) and
``module.py`` (the LightningModule).

``FAMILIES`` maps a family name (the ``family`` field of its YAML base) to its config class, as an
import path so that looking a family up imports no torch.
"""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "dreamerv3": "worldflux.models.dreamerv3.config.DreamerV3Config",
    "tdmpc2": "worldflux.models.tdmpc2.config.TDMPC2Config",
    "phasedemo": "worldflux.models.phasedemo.config.PhaseDemoConfig",
}
