"""An output directory checked before any work: a run that cannot write its results says so in
one line at the start, not in a traceback after the whole search."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from chipletcloud.errors import InputError


def check_out_dir(path: str | Path, field: str = "out") -> Path:
    """``path`` if a run can write there, else :class:`~chipletcloud.errors.InputError` naming
    ``field``. It must not be an existing file (nor a dangling link), and it, or when it does not
    exist yet its nearest existing parent, must be a directory in which a file can be created:
    a temporary file is created and removed there (``os.access`` says yes to root on a read-only
    mount). Nothing else is created: the run makes the directory when it writes."""
    path = Path(path)
    allowed = "a writable directory (or a new one under a writable directory)"
    probe = path
    try:
        if path.is_symlink() and not path.exists():
            raise InputError(field, str(path), f"{allowed}; this is a link to nothing")
        if path.exists() and not path.is_dir():
            raise InputError(field, str(path), f"{allowed}; this is an existing file")
        probe = path.absolute()
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise InputError(field, str(path), f"{allowed}; {probe} is a file")
        fd, name = tempfile.mkstemp(prefix=".chipletcloud-probe-", dir=probe)
    except OSError as exc:  # also a parent that cannot be searched
        reason = exc.strerror or type(exc).__name__
        raise InputError(field, str(path), f"{allowed}; cannot write in {probe}: {reason}") from exc
    os.close(fd)
    os.unlink(name)
    return path
