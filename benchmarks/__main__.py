"""``python -m benchmarks``: run the hot-path benchmark."""

from __future__ import annotations

from .hot_path import main

if __name__ == "__main__":
    raise SystemExit(main())
