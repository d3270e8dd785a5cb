"""Conventions every script follows: one-line user errors, atomic outputs, progress bars.

A script wraps its ``main`` with :func:`run`.  Anything the user can fix (a missing
file, a bad flag combination, a file that is not a video) is raised as
:class:`UserError`; ``run`` prints it as one line on stderr and exits with status 2,
without a traceback.  Outputs are written through :func:`atomic_path` so an
interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator


class UserError(Exception):
    """An error the user can fix; its message is one line saying what and how."""


def run(main: Callable[[], object]) -> None:
    """Run a script's main function with the project's error conventions."""
    try:
        rc = main()
    except UserError as e:
        prog = os.path.basename(sys.argv[0]) or "error"
        msg = " ".join(str(e).split())  # always one line
        print(f"{prog}: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
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
        Path(tmp).write_text(text)


def progress(iterable=None, **kwargs):
    """tqdm with the project's defaults; CMT_NO_PROGRESS=1 silences every bar."""
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = bool(kwargs.get("disable")) or os.environ.get("CMT_NO_PROGRESS") == "1"
    return tqdm(iterable, **kwargs)
