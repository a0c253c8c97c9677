#!/usr/bin/env python3
"""The JUnit oracle of FormatTests: validate a JUnit XML file and describe what a CI test reporter would see.

    junit_oracle.py FILE

1. `xmllint --noout --schema Tests/Fixtures/junit/junit.xsd FILE` (libxml2's XSD validator).
2. Python's own XML parser (xml.etree.ElementTree) reads it, and the counts are checked the way reporters compute
   them: a suite's tests/failures/errors/skipped equal its testcases and their outcomes; <testsuites> sums them.
3. Prints one JSON object: {"suites": [{name, tests, failures, errors, skipped, time, timestamp, properties}],
   "cases": [{classname, name, time, outcome (passed|failure|error|skipped), message, type, text, out}]}.

Exits 0 when valid, 1 (with the reasons on stderr) when not.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

XSD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Fixtures", "junit", "junit.xsd")


def main(path):
    problems = []
    lint = subprocess.run(["xmllint", "--noout", "--schema", XSD, path], capture_output=True, text=True)
    if lint.returncode != 0:
        problems.append("xmllint: " + lint.stderr.strip())
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print(f"not well-formed XML: {e}", file=sys.stderr)
        return 1
    suites, cases = [], []
    totals = {"tests": 0, "failures": 0, "errors": 0}
    if root.tag != "testsuites":
        problems.append(f"root element is <{root.tag}>, not <testsuites>")
    for suite in root.iter("testsuite"):
        outcomes = {"passed": 0, "failure": 0, "error": 0, "skipped": 0}
        for case in suite.findall("testcase"):
            outcome, node = "passed", None
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    outcome, node = kind, found
            outcomes[outcome] += 1
            out = case.find("system-out")
            cases.append({
                "classname": case.get("classname"), "name": case.get("name"), "time": float(case.get("time", "nan")),
                "outcome": outcome, "message": node.get("message") if node is not None else None,
                "type": node.get("type") if node is not None else None,
                "text": (node.text or "") if node is not None else None,
                "out": (out.text or "") if out is not None else None,
            })
        expect = {"tests": sum(outcomes.values()), "failures": outcomes["failure"], "errors": outcomes["error"],
                  "skipped": outcomes["skipped"]}
        for attr, want in expect.items():
            if suite.get(attr) != str(want):
                problems.append(f"testsuite {suite.get('name')!r}: {attr}={suite.get(attr)!r}, its testcases say {want}")
        for attr in totals:
            totals[attr] += int(suite.get(attr, "0"))
        suites.append({
            "name": suite.get("name"), "tests": int(suite.get("tests", "-1")), "failures": int(suite.get("failures", "-1")),
            "errors": int(suite.get("errors", "-1")), "skipped": int(suite.get("skipped", "-1")),
            "time": float(suite.get("time", "nan")), "timestamp": suite.get("timestamp"),
            "properties": {p.get("name"): p.get("value") for p in suite.iter("property")},
        })
    for attr, total in totals.items():
        if root.get(attr) != str(total):
            problems.append(f"testsuites: {attr}={root.get(attr)!r}, its testsuites add up to {total}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    json.dump({"suites": suites, "cases": cases}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
