"""An unusable ``--out`` (an existing file, a read-only directory) is one line and exit code 2
before any work, not a traceback after the whole search (report/outdir.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chipletcloud.cli import main
from chipletcloud.errors import InputError
from chipletcloud.report import outdir
from chipletcloud.report.outdir import check_out_dir


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (root writes in a 0o555 directory)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory with mode 0o555. Where the process writes there all the same (root), file
    creation in it fails as it would for anyone else: EACCES from ``mkstemp``."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    if _writable(d):
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kw):
            if dir is not None and Path(dir) == d:
                raise PermissionError(13, "Permission denied", str(d))
            return real(*args, dir=dir, **kw)

        monkeypatch.setattr(outdir.tempfile, "mkstemp", mkstemp)
    yield d
    d.chmod(0o755)


def test_a_new_directory_under_a_writable_one_passes_and_nothing_is_created(tmp_path):
    target = tmp_path / "a" / "b" / "run"
    assert check_out_dir(target) == target
    assert list(tmp_path.iterdir()) == []  # neither the directory nor the probe file is left
    (tmp_path / "run").mkdir()
    assert check_out_dir(tmp_path / "run") == tmp_path / "run"
    assert list((tmp_path / "run").iterdir()) == []


def test_an_existing_file_is_refused(tmp_path):
    f = tmp_path / "results"
    f.write_text("not a directory")
    with pytest.raises(InputError) as exc:
        check_out_dir(f)
    assert exc.value.field == "out" and exc.value.value == str(f)
    assert str(exc.value).endswith("; this is an existing file")
    with pytest.raises(InputError, match=r"is a file$"):  # a folder under a file
        check_out_dir(f / "sub", field="hardware")
    assert f.read_text() == "not a directory"


def test_a_link_to_nothing_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    with pytest.raises(InputError, match="a link to nothing"):
        check_out_dir(tmp_path / "link")


def test_a_read_only_directory_is_refused(read_only_dir):
    for target in (read_only_dir, read_only_dir / "new" / "run"):
        with pytest.raises(InputError) as exc:
            check_out_dir(target)
        assert exc.value.field == "out"
        assert f"cannot write in {read_only_dir}: Permission denied" in str(exc.value)


def test_a_really_read_only_directory_without_simulation(tmp_path):
    """The 0o555 directory as it is, for a user that is not root (skipped where the write probe
    succeeds, i.e. as root)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        if _writable(d):
            pytest.skip("this process writes in a 0o555 directory (root)")
        with pytest.raises(InputError, match="Permission denied"):
            check_out_dir(d / "run")
    finally:
        d.chmod(0o755)


def _cli_args(command: str, out: Path, tmp_path: Path) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text("die_area_mm2: [100]\nmac_ratio: [0.1]\noperational_intensity: [4]\n")
    return {
        "hardware": ["hardware", "--out", str(out), "--space", str(space)],
        "reproduce": ["reproduce", "--quick", "--out", str(out)],
        "evaluate": ["evaluate", "--model", "gpt2", "--hardware", str(tmp_path), "--out", str(out)],
        "calibrate": ["calibrate", "--out", str(out)],
    }[command]


@pytest.mark.parametrize("command", ["hardware", "reproduce", "evaluate", "calibrate"])
@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_cli_refuses_an_unusable_out_before_any_work(
    command, kind, tmp_path, read_only_dir, capsys
):
    if kind == "file":
        out = tmp_path / "results.txt"
        out.write_text("x")
    else:
        out = read_only_dir / "results"
    t0 = time.perf_counter()
    code = main(_cli_args(command, out, tmp_path))
    elapsed = time.perf_counter() - t0
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: out: got '")  # the path (cut to 80 characters)
    assert "; allowed: a writable directory (or a new one under a writable directory); " in lines[0]
    assert lines[0].endswith("this is an existing file" if kind == "file" else "Permission denied")
    assert "Traceback" not in captured.err and captured.out == ""
    assert elapsed < 15.0  # imports only: reproduce --quick alone takes a minute or more
    assert list(tmp_path.rglob("*.parquet")) == [] and list(tmp_path.rglob("*.json")) == []


def test_cli_process_prints_one_line_and_exits_2(tmp_path):
    """The installed entry point, in its own process: one line on stderr, exit code 2."""
    out = tmp_path / "results"
    out.write_text("x")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from chipletcloud.cli import main; sys.exit(main())",
         "reproduce", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: out: got '")
    assert lines[0].endswith("allowed: a writable directory (or a new one under a writable "
                             "directory); this is an existing file")  # fmt: skip
    assert time.perf_counter() - t0 < 30  # an import and a check, not a reproduce run
    assert list(tmp_path.rglob("*.parquet")) == []
