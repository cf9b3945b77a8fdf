"""Progress that speaks (issue 17): plain lines on stderr when it is not a terminal, naming each
step when it is done with a count and the time; nothing with --quiet or --json."""

from __future__ import annotations

import re

from chipletcloud.cli import main


def test_progress_lines_off_a_terminal(tmp_path, small_space, capsys):
    assert main(["hardware", "--space", str(small_space), "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().err.splitlines()
    steps = [re.match(r"phase 1: (\w+) done \((\d)/(\d), \d+ s", ln) for ln in lines]
    assert all(steps), lines
    # every part of phase 1 named once it is done, in order, counted to the total
    assert [(m[1], m[2]) for m in steps] == [
        ("enumerate", "1"),
        ("evaluate", "2"),
        ("check", "3"),
        ("write", "4"),
    ]
    assert {m[3] for m in steps} == {"4"}


def test_quiet_and_json_print_no_progress(tmp_path, small_space, capsys):
    argv = ["hardware", "--space", str(small_space)]
    assert main(["--quiet", *argv, "--out", str(tmp_path / "q")]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--out", str(tmp_path / "j"), "--json"]) == 0
    assert capsys.readouterr().err == ""
    # the option resets with each invocation: progress again without it
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "phase 1: write done" in capsys.readouterr().err
