"""Package cost (docs/hardware-model.md [A]).

``organic`` (ISCA-era): one die on an organic substrate of ``package_area_ratio`` x die area at
``package_substrate_usd_per_mm2``; assembly yields ``package_bond_yield`` per chip, so a packaged
good die costs (die + substrate) / bond_yield. The package cost reported is that total minus the
die: substrate / y + die x (1 / y - 1).
``linear`` (v1 [A1]): package = 0.103 x die cost + $1.185.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import ServerParams


def package_cost_usd(
    die_area_mm2: ArrayLike,
    die_cost_usd: ArrayLike,
    server: ServerParams,
    model: str = "organic",
    chips_per_package: ArrayLike = 1,
) -> np.ndarray:
    """Package cost in USD on top of the dies it carries (``chips_per_package`` dies)."""
    a = np.asarray(die_area_mm2, float) * np.asarray(chips_per_package, float)
    d = np.asarray(die_cost_usd, float) * np.asarray(chips_per_package, float)
    if model == "organic":
        y = server.package_bond_yield ** np.asarray(chips_per_package, float)
        substrate = server.package_area_ratio * a * server.package_substrate_usd_per_mm2
        return substrate / y + d * (1.0 / y - 1.0)
    if model == "linear":
        return server.package_cost_die_fraction * d + server.package_fixed_usd
    from chipletcloud.errors import InputError

    raise InputError("package_cost_model", model, "organic, linear")
