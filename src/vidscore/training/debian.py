"""Debian packages as training-data sources, fetched without root and checked by checksum.

``fetch(pin)`` returns the root of the package's extracted tree, ``.cache/debian/<package>/``
(so ``fetch(pin) / "usr/share/..."`` is a file the package installs).  The first call runs
``apt-get download <package>=<version>`` in a temporary folder (no root needed), checks the
``.deb``'s sha256 when it is pinned, unpacks it with ``dpkg-deb -x`` into a temporary folder
beside the cache, checks the sha256 of every file the pin names and only then renames the
folder into place, so a cache is either complete and checked or absent.  Later calls only
re-hash the pinned files (no download, no unpacking).

Offline or on a release whose archive lacks the pinned version: put the ``.deb``
(``<package>_<version>_<arch>.deb``, e.g. from https://packages.debian.org) in
``.cache/debian/`` and it is used instead of downloading.  Every failure is a one-line
``cli.UserError`` that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vidscore import cli, paths

STAMP = ".vidscore-pin.json"     # written into an extracted tree once its files are checked


@dataclass(frozen=True)
class Pin:
    """What a source expects of a Debian package: its version, optionally the .deb's sha256,
    and the sha256 of the files inside it that the source reads (paths relative to ``/``)."""
    package: str
    version: str
    files: dict[str, str] = field(default_factory=dict)
    deb_sha256: str | None = None

    def stamp(self) -> dict:
        return {"package": self.package, "version": self.version, "deb_sha256": self.deb_sha256,
                "files": dict(sorted(self.files.items()))}


def cache_dir() -> Path:
    """Where extracted packages (and .deb files dropped in by hand) live."""
    return paths.CACHE / "debian"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_files(root: Path, pin: Pin, what: str) -> None:
    """UserError naming the first pinned file under ``root`` that is missing or whose sha256
    differs from the pin."""
    for rel, want in sorted(pin.files.items()):
        p = root / rel
        if not p.is_file():
            raise cli.UserError(f"{what} has no {rel}: the package's layout differs from the pinned "
                                f"{pin.package} {pin.version}; check the pin in the source's module")
        got = sha256_file(p)
        if got != want:
            raise cli.UserError(f"{what}: {rel} has sha256 {got[:16]}..., pinned {want[:16]}...: the file "
                                f"is not the checked {pin.package} {pin.version}; delete it and fetch again, "
                                "or check the package and update the pin")


def _is_fetched(root: Path, pin: Pin) -> bool:
    """True when ``root`` is an extracted tree of this pin whose pinned files still match."""
    try:
        if json.loads((root / STAMP).read_text(encoding="utf-8")) != pin.stamp():
            return False
        check_files(root, pin, str(root))
        return True
    except (OSError, ValueError, cli.UserError):
        return False


def _apt_hint(pin: Pin, stderr: str) -> str:
    """One line that says why ``apt-get download`` failed and what to do."""
    drop = (f"or put {pin.package}_{pin.version}_<arch>.deb (from https://packages.debian.org/{pin.package}) "
            f"in {cache_dir()}/")
    err = " ".join(stderr.split())
    if "Unable to locate package" in err or "404" in err:
        return (f"apt-get download {pin.package}: the package is not in this machine's apt lists or they are "
                f"stale; run `sudo apt-get update` and try again, {drop}")
    if "was not found" in err:
        return (f"apt-get download {pin.package}={pin.version}: this version is not in the apt lists (run "
                f"`sudo apt-get update`; a release without it needs the .deb by hand), {drop}")
    if "resolv" in err.lower() or "connect" in err.lower():
        return f"apt-get download {pin.package}: the Debian archive cannot be reached ({err[-120:]}); {drop}"
    return f"apt-get download {pin.package}={pin.version} failed ({err[-160:] or 'no message'}); {drop}"


def _download(pin: Pin, into: Path) -> Path:
    """The package's .deb: one dropped in the cache folder by hand, else ``apt-get download``'s."""
    dropped = sorted(cache_dir().glob(f"{pin.package}_{pin.version.replace(':', '%3a')}_*.deb"))
    if dropped:
        return dropped[0]
    try:
        run = subprocess.run(["apt-get", "download", "-q", f"{pin.package}={pin.version}"], cwd=into,
                             capture_output=True, text=True)
    except FileNotFoundError:
        raise cli.UserError(f"apt-get is not installed (not a Debian/Ubuntu system): put "
                            f"{pin.package}_{pin.version}_<arch>.deb in {cache_dir()}/") from None
    debs = sorted(into.glob("*.deb"))
    if run.returncode != 0 or not debs:
        raise cli.UserError(_apt_hint(pin, run.stderr))
    return debs[0]


def fetch(pin: Pin) -> Path:
    """The root of the checked, extracted tree of ``pin``'s package (see the module's doc)."""
    root = cache_dir() / pin.package
    if _is_fetched(root, pin):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{pin.package}.{os.getpid()}-", suffix=".part",
                                     dir=root.parent) as tmp:
        tmp = Path(tmp)
        (tmp / "deb").mkdir()
        deb = _download(pin, tmp / "deb")
        if pin.deb_sha256 and (got := sha256_file(deb)) != pin.deb_sha256:
            raise cli.UserError(f"{deb.name} has sha256 {got[:16]}..., pinned {pin.deb_sha256[:16]}...: it is "
                                f"not the checked {pin.package} {pin.version}; delete it and fetch again, or "
                                "check the package and update the pin")
        tree = tmp / "tree"
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise cli.UserError("dpkg-deb is not installed: install dpkg (it unpacks the Debian package "
                                f"{pin.package})") from None
        except subprocess.CalledProcessError as e:
            msg = " ".join(e.stderr.split())[-160:]
            raise cli.UserError(f"dpkg-deb -x {deb.name} failed ({msg}): the .deb is damaged; delete it and "
                                "fetch again") from None
        check_files(tree, pin, deb.name)
        (tree / STAMP).write_text(json.dumps(pin.stamp(), indent=1) + "\n", encoding="utf-8")
        if root.exists():                     # an old version's or a damaged tree: replaced
            shutil.rmtree(root)
        try:
            os.replace(tree, root)
        except OSError:                       # another run put its checked tree there meanwhile
            if not _is_fetched(root, pin):
                raise
    return root
