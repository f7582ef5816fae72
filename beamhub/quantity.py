"""Kubernetes resource quantities ("500m", "4Gi", "1.5", "2e3") as plain floats: the one parser.

The catalog (CPU and memory of an environment), the scheduler (Pod and Node objects) and the
chart's values schema (:data:`QUANTITY_PATTERN`) all read quantities with this grammar, so a
value one accepts the others accept too.
"""

from __future__ import annotations

import re

__all__ = ["NON_NEGATIVE_QUANTITY_PATTERN", "QUANTITY_PATTERN", "parse_quantity"]

_SUFFIX = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
# Same grammar as k8s.io/apimachinery resource.Quantity: a signed decimal, then either a
# binary/decimal SI suffix or a decimal exponent.
_NUMBER = r"(?:\d+\.?\d*|\.\d+)"
_SCALE = r"(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$"
#: The grammar as a regular expression (JSON Schema's ``pattern`` dialect too).
QUANTITY_PATTERN = rf"^([+-]?{_NUMBER}){_SCALE}"
#: The same without a minus sign: what a resource request or limit may be.
NON_NEGATIVE_QUANTITY_PATTERN = rf"^(\+?{_NUMBER}){_SCALE}"
_QUANTITY = re.compile(QUANTITY_PATTERN)


def parse_quantity(value: object) -> float:
    """Convert a Kubernetes quantity to a float in base units.

    Parameters
    ----------
    value : str or int or float
        A quantity as it appears in a Pod or Node object: ``"500m"`` (0.5 cores),
        ``"4Gi"`` (bytes), ``"2"``, ``"1e3"``; JSON numbers are accepted too.

    Returns
    -------
    float
        The value in base units (cores, bytes, devices).

    Raises
    ------
    ValueError
        If ``value`` is not a quantity; the message quotes it.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a resource quantity: {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _QUANTITY.match(value.strip())
        if match is None:
            raise ValueError(f"not a resource quantity: {value!r}")
        digits, suffix, exponent = match.groups()
        try:
            scale = _SUFFIX[suffix or ""] if exponent is None else 10.0 ** int(exponent)
        except OverflowError:
            raise ValueError(f"resource quantity out of range: {value!r}") from None
        number = float(digits) * scale
    else:
        raise ValueError(f"not a resource quantity: {value!r}")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite resource quantity: {value!r}")
    return number
