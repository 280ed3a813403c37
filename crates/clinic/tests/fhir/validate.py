"""Validates exported FHIR bundles against an independent implementation's models.

Usage: python validate.py FILE.json...

Each file (a Bundle, or one resource such as the CapabilityStatement) is parsed with the
R4B models of the PyPI package fhir.resources (pydantic models generated from the FHIR
specification: types, cardinalities, required elements, choice types, no unknown
elements): a Bundle whole first and then every entry's resource and every contained
resource by its own class, any other resource by its own class. Prints one line per
problem and a closing line "validated N resources in M files: E errors"; exits 1 when
E > 0.
"""

import json
import sys

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle


def check(kind, obj, where, errors):
    try:
        get_fhir_model_class(kind).parse_obj(obj)
        return 1
    except Exception as e:  # pydantic's ValidationError lists every problem
        errors.append(f"{where}: {e}")
        return 0


def main(paths):
    errors = []
    resources = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("resourceType") != "Bundle":
            where = f"{path}: {doc.get('resourceType')}"
            resources += check(doc.get("resourceType"), doc, where, errors)
            continue
        try:
            Bundle.parse_obj(doc)
        except Exception as e:
            errors.append(f"{path}: Bundle: {e}")
        for i, entry in enumerate(doc.get("entry", [])):
            res = entry.get("resource", {})
            where = f"{path}: entry[{i}] {res.get('resourceType')}/{res.get('id')}"
            resources += check(res.get("resourceType"), res, where, errors)
            for j, c in enumerate(res.get("contained", [])):
                check(c.get("resourceType"), c, f"{where} contained[{j}]", errors)
    for e in errors:
        print(e)
    print(f"validated {resources} resources in {len(paths)} files: {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
