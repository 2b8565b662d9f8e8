"""The limits a newcomer relies on: no file in services/ over 500 lines, and no function of
complexity grade D or worse anywhere (xenon, over radon's grades). Exit 1 naming each breach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
CHECKED = ["alongside", "bench", "contracts", "runtime", "services"]


def long_files() -> list[str]:
    found = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            found.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_LINES})")
    return found


def complex_functions() -> int:
    # Grade C at most for any block; xenon prints each one above it.
    command = [sys.executable, "-m", "xenon", "--max-absolute", "C", *CHECKED]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main() -> int:
    breaches = long_files()
    for breach in breaches:
        print(breach)
    failed = bool(breaches)
    if complex_functions() != 0:
        print("some functions are of complexity grade D or worse (listed above)")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
