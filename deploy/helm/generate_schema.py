"""Write the catalog's schema and the QoS classes into the chart's values.schema.json.

The catalog format is defined once, as :data:`beamhub.hub.catalog.ENVIRONMENT_SCHEMA`, which the
hub's validator reads; the chart carries a copy (catalog.environments.items) so that
``helm install`` refuses a bad entry before the hub ever starts.  The QoS classes are spelled
once, in :mod:`beamhub.qos`: they name the keys of priorityClasses.values (which the
PriorityClass template iterates over) and the choices of priorityClasses.preempting.  Run this
after changing either:

    .venv/bin/python deploy/helm/generate_schema.py           # rewrite the chart's schema
    .venv/bin/python deploy/helm/generate_schema.py --check   # exit 1 if it is out of date

tests/deploy/test_catalog_schema.py fails while the chart's copy differs.  It lives beside the
chart, not in it, so Helm does not package it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from beamhub.atomic import write_atomic
from beamhub.hub.catalog import ENVIRONMENT_SCHEMA, QOS_CLASSES

SCHEMA = Path(__file__).resolve().parent / "beamhub" / "values.schema.json"


def generated(current: str) -> str:
    """``current`` (the text of values.schema.json) with the catalog entry schema and QoS classes put in place."""
    schema = json.loads(current)
    schema["properties"]["catalog"]["properties"]["environments"]["items"] = ENVIRONMENT_SCHEMA
    priorities = schema["properties"]["priorityClasses"]["properties"]
    value = next(iter(priorities["values"]["properties"].values()))  # the same bounds for every class
    priorities["values"]["properties"] = {qos: value for qos in QOS_CLASSES}
    priorities["values"]["required"] = list(QOS_CLASSES)
    priorities["preempting"]["items"]["enum"] = list(QOS_CLASSES)
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether the chart's schema is current")
    args = parser.parse_args(argv)
    current = SCHEMA.read_text()
    wanted = generated(current)
    if args.check:
        if wanted != current:
            print(f"{SCHEMA} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        write_atomic(SCHEMA, wanted)
        print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
