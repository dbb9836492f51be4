"""Print one closing line for ``make test``: the tests counted in the JUnit reports of this run."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(report_dir: str) -> int:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    reports = sorted(Path(report_dir).glob("*.xml"))
    for report in reports:
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
        print("  %-28s %s" % (report.stem, ", ".join("%s=%s" % (k, suites[0].get(k)) for k in totals)))
    failed = totals["failures"] + totals["errors"]
    passed = totals["tests"] - failed - totals["skipped"]
    print("make test: %d passed, %d failed, %d skipped" % (passed, failed, totals["skipped"]))
    return 1 if failed or not reports else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
