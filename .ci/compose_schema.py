"""Validate docker-compose.yml against the Compose Specification's JSON Schema.

There is no Docker engine on CI machines; this is the check that the file is a valid
Compose file. The schema is the one docker-compose 1.29.2 ships (compose/config/
compose_spec.json), fetched from PyPI without installing it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jsonschema
import yaml

WHEEL = "docker-compose==1.29.2"
SCHEMA = "compose/config/compose_spec.json"


def main(compose_file: Path) -> int:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", folder, WHEEL],
            check=True,
        )
        [wheel] = Path(folder).glob("*.whl")
        schema = json.loads(zipfile.ZipFile(wheel).read(SCHEMA))
    document = yaml.safe_load(compose_file.read_text())
    errors = list(jsonschema.Draft201909Validator(schema).iter_errors(document))
    for error in errors:
        print(f"{compose_file}: {error.json_path}: {error.message}", file=sys.stderr)
    if not errors:
        print(f"{compose_file}: valid against the Compose Specification schema")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml")))
