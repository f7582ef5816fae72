"""Kubernetes' Pod QoS classes, spelled in one place.

Kubernetes names them ``Guaranteed``, ``Burstable`` and ``BestEffort`` (a Pod's
``status.qosClass``), which is how the scheduler and its simulator speak of them.
The catalog, the hub and the chart use each one's lower-case form
(``guaranteed``, ``burstable``, ``besteffort``): it ends up in object names such
as the PriorityClass ``beamhub-<qos>``, which must be lower case.  Both
spellings come from :data:`QOS_CLASSES`; convert with :func:`catalog_name` and
:func:`from_catalog`.
"""

from __future__ import annotations

__all__ = ["BEST_EFFORT", "BURSTABLE", "CATALOG_NAMES", "GUARANTEED", "QOS_CLASSES", "catalog_name", "from_catalog"]

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
#: Kubernetes' QoS classes, best served first.
QOS_CLASSES = (GUARANTEED, BURSTABLE, BEST_EFFORT)
#: The same classes as the catalog and the chart write them, in the same order.
CATALOG_NAMES = tuple(q.lower() for q in QOS_CLASSES)


def catalog_name(qos_class: str) -> str:
    """``"BestEffort"`` -> ``"besteffort"``; ValueError for anything but a Kubernetes QoS class."""
    if qos_class not in QOS_CLASSES:
        raise ValueError(f"{qos_class!r} is not a QoS class ({', '.join(QOS_CLASSES)})")
    return qos_class.lower()


def from_catalog(name: str) -> str:
    """``"besteffort"`` -> ``"BestEffort"``; ValueError for anything but a catalog QoS name."""
    if name not in CATALOG_NAMES:
        raise ValueError(f"{name!r} is not one of {', '.join(CATALOG_NAMES)}")
    return QOS_CLASSES[CATALOG_NAMES.index(name)]
