"""Conventions every script follows: one-line user errors, atomic outputs, progress bars.

A script wraps its ``main`` with :func:`run`.  Anything the user can fix (a missing
file, a bad flag combination, a file that is not a video) is raised as
:class:`UserError`; ``run`` prints it as one line on stderr and exits with status 2,
without a traceback.  Outputs are written through :func:`atomic_path` so an
interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator


class UserError(Exception):
    """An error the user can fix; its message is one line saying what and how."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, a cluster's pre-emption), raised where the script is
    so that it stops as on Ctrl-C: temporary files removed, one line, no traceback."""


def _terminate(signum, frame):
    raise Terminated()


def run(main: Callable[[], object]) -> None:
    """Run a script's main function with the project's error conventions."""
    with contextlib.suppress(ValueError):      # (only the main thread can set a handler)
        signal.signal(signal.SIGTERM, _terminate)
    try:
        rc = main()
    except Terminated:
        print("terminated", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except UserError as e:
        prog = os.path.basename(sys.argv[0]) or "error"
        msg = " ".join(str(e).split())  # always one line
        print(f"{prog}: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:
        if e.filename is None:      # not about a path the user gave (e.g. a closed pipe): a real fault
            raise
        prog = os.path.basename(sys.argv[0]) or "error"
        where = printable(e.filename) + (f" -> {printable(e.filename2)}" if e.filename2 else "")
        print(f"{prog}: error: {where}: {e.strerror or type(e).__name__}; check the path, its permissions "
              "and the free disk space", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


def printable(text) -> str:
    """``text`` (a file name or path) as a str that can be printed and written anywhere: the bytes
    of a name that are not UTF-8, which Python keeps as lone surrogates, become ``\\xNN``."""
    return os.fsencode(str(text)).decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the file's suffix, so libraries that pick a format
    from the extension (np.savez, ffmpeg, matplotlib) behave as for the final
    name.  On any exception the temporary file is removed and ``path`` is left
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's PID is in the name, so a later run can tell a dead run's leftover from a live one's;
    # the stem is cut so that a name near the file system's limit still has a temporary name
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:40]}.{os.getpid()}-", suffix=f".part{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def finite_json(obj):
    """``obj`` with every NaN or infinite float replaced by None, so it serialises as valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:   # numpy scalars
        return finite_json(obj.item())
    return obj


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
    """Write ``obj`` as strict JSON (NaN and infinities become null) atomically."""
    import json
    write_text_atomic(path, json.dumps(finite_json(obj), indent=indent, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------- paths
def check_outputs(inputs: Iterable, outputs: Iterable, hint: str = "choose another output path") -> None:
    """Refuse (UserError) before anything runs when an output path is one of the input paths
    (the same file by any spelling or link), or when two outputs are the same file.  Inputs are
    never overwritten; call this with every input and every output a run will write."""
    def key(p):
        p = Path(p)
        try:
            return p.resolve()
        except OSError:
            return p.absolute()
    ins = {}
    for p in inputs:
        if p is not None:
            ins.setdefault(key(p), Path(p))
    seen = {}
    for o in outputs:
        if o is None:
            continue
        k = key(o)
        if k in ins:
            raise UserError(f"output {o} would overwrite an input ({ins[k]}); {hint}")
        if k in seen and seen[k] != Path(o):
            raise UserError(f"outputs {seen[k]} and {o} are the same file; {hint}")
        if k in seen:
            raise UserError(f"two outputs would be written to {o}; {hint}")
        seen[k] = Path(o)
        try:
            if Path(o).is_dir():
                raise UserError(f"output {o} is a folder; give a file name")
        except OSError:
            pass
    folders = {}
    for o in seen.values():
        folders.setdefault(o.parent, o)
    for folder, o in folders.items():
        check_out_dir(folder, name=f"the folder of output {o} ({folder})")


def check_name_lengths(outputs: Iterable, what: str) -> None:
    """UserError when an output's file name is longer than its file system allows (255 bytes on
    most), before anything is written; ``what`` names the input to rename."""
    for o in outputs:
        o = Path(o)
        try:
            limit = os.pathconf(next(p for p in (o.parent, *o.parent.parents) if p.is_dir()), "PC_NAME_MAX")
        except (OSError, ValueError, StopIteration):
            limit = 255
        size = len(os.fsencode(o.name))
        if size > limit:
            raise UserError(f"{what}: its output {printable(o.name)[:60]}... would have a {size}-byte name, over "
                            f"the file system's {limit}; rename it shorter by {size - limit} bytes or more")


def check_out_dir(path: str | os.PathLike, flag: str = "--out_dir", name: str | None = None) -> Path:
    """Make sure ``path`` is a writable folder, or can be made one, before any work is done;
    returns it.  Refuses an existing file (or a file where a parent folder should be) and a
    read-only place.  Creates nothing: a refused run leaves no empty folder behind.  The
    messages call the folder ``name`` (default: the flag and the path)."""
    path = Path(path)
    name = name or f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise UserError(f"{name} is a file, not a folder; give a folder for the outputs")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{name}: {probe} is a file, so no folder can be made there")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".write-test."):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise UserError(f"{name} cannot be written ({probe}: {why}); choose a folder you can write to") from None
    return path


_PART = re.compile(r"^\..*\.(\d+)-[A-Za-z0-9_]+\.part(\.[^.]*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_parts(folder: str | os.PathLike, max_age_s: float = 3600.0, recursive: bool = True) -> int:
    """Remove the temporary ``.part`` files that :func:`atomic_path` left behind when a run was
    killed (kill -9, power loss).  A part file is stale when the process named in it is gone,
    or, for a name without a process id, when it is older than ``max_age_s``; the part files
    of a run still going are left alone.  Returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    now = time.time()
    candidates = folder.rglob(".*.part*") if recursive else folder.glob(".*.part*")
    for p in candidates:
        try:
            if not p.is_file() or ".part" not in p.name:
                continue
            m = _PART.match(p.name)
            if m and int(m.group(1)) != os.getpid():
                stale = not _pid_alive(int(m.group(1)))
            elif m:
                stale = False
            else:
                stale = now - p.stat().st_mtime > max_age_s
            if stale:
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def progress(iterable=None, **kwargs):
    """tqdm with the project's defaults; CMT_NO_PROGRESS=1 silences every bar."""
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = bool(kwargs.get("disable")) or os.environ.get("CMT_NO_PROGRESS") == "1"
    return tqdm(iterable, **kwargs)
