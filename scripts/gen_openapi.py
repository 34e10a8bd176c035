"""Write openapi.yaml (repo root) from the bridge app, or check that it is current.

.venv/bin/python scripts/gen_openapi.py          # regenerate
.venv/bin/python scripts/gen_openapi.py --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import sys

from connectors.ingress.openapi import OPENAPI_FILE, current_yaml


def main(argv: list[str]) -> int:
    """Regenerate (or with --check, compare) the committed OpenAPI document."""
    text = current_yaml()
    if "--check" in argv:
        current = OPENAPI_FILE.read_text("utf-8") if OPENAPI_FILE.exists() else ""
        if current != text:
            print(
                f"{OPENAPI_FILE} is stale: run .venv/bin/python scripts/gen_openapi.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OPENAPI_FILE.write_text(text, "utf-8")
    print(f"wrote {OPENAPI_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
