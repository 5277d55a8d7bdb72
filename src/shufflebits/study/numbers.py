"""How every figure is written, in the report, the terminal summary and the CLI alike.

One function so a rank-1 reads ``0.013`` everywhere (never ``1.30%`` in one
place and ``0.013`` in another), and so a small chance level such as random
ranking's 1/400 reads ``0.0025`` instead of rounding to ``0.000``.
"""

from __future__ import annotations

import math

import numpy as np

MISSING = "–"  # no figure (not measured, not finite)


def figure(value, digits: int = 3) -> str:
    """``value`` as text: ``digits`` decimals, two significant digits below 10**-(digits-1), ints with commas.

    Below 0.01 (at 3 decimals) a fraction keeps two significant digits, so a
    chance level of 0.0025 never prints as 0.000 or rounds up to look like 0.003.
    """
    if value is None:
        return MISSING
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(figure(item, digits) for item in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return MISSING
        if value != 0 and abs(value) < 10.0 ** -(digits - 1):
            return np.format_float_positional(value, precision=2, unique=False, fractional=False, trim="-")
        return f"{value:,.{digits}f}"
    return str(value)
