"""Fetch the training sources that come from Debian's archive into .cache/debian/ and check them
against their pinned sha256 (``make sources``; no root: apt-get download and dpkg-deb -x).

    python src/fetch_sources.py            # all of them
    python src/fetch_sources.py freedoom

A source whose checked copy is already in the cache costs only re-hashing its files.  See
vidscore/training/debian.py and docs/corpus_freedoom.md.
"""
from __future__ import annotations

import argparse
import time

from vidscore import cli
from vidscore import paths
from vidscore.training import debian
from vidscore.training.sources import DEBIAN_PINS


def main() -> int:
    ap = argparse.ArgumentParser(description="Fetch and check the Debian-archive training sources.")
    ap.add_argument("sources", nargs="*", metavar="SOURCE",
                    help=f"which ({', '.join(sorted(DEBIAN_PINS))}; default all)")
    args = ap.parse_args()
    unknown = [s for s in args.sources if s not in DEBIAN_PINS]
    if unknown:
        raise cli.UserError(f"unknown source {unknown[0]!r}: choose from {', '.join(sorted(DEBIAN_PINS))}")
    for name in dict.fromkeys(args.sources or sorted(DEBIAN_PINS)):
        pin = DEBIAN_PINS[name]
        t0 = time.perf_counter()
        root = debian.fetch(pin)
        print(f"{name}: {pin.package} {pin.version}, {len(pin.files)} pinned files checked, in "
              f"{root.relative_to(paths.REPO) if root.is_relative_to(paths.REPO) else root} "
              f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main)
