import argparse
import json
import subprocess
import sys

import pytest

from crackbench.cli import build_parser, main


def _all_commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _all_commands(sub, (*prefix, name))


def test_every_command_has_help(capsys):
    commands = list(_all_commands(build_parser()))
    assert ("data", "audit") in commands and ("data", "split") in commands and ("data", "synth") in commands
    for cmd in commands:
        with pytest.raises(SystemExit) as exit_:
            main([*cmd, "--help"])
        assert exit_.value.code == 0
        assert "usage: crackbench" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "crackbench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("crackbench ")


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "split"])
    assert exit_.value.code == 2


def test_bad_data_is_one_line_error(tmp_path, capsys):
    assert main(["data", "audit", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("crackbench: error:") and "\n" not in err


def test_audit_json_and_strict(bad_corpus, capsys):
    root, expected = bad_corpus
    assert main(["data", "audit", str(root), "--json", "--jobs", "1"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["used"] == sum(s == "used" for s, _ in expected.values())
    assert {d["path"]: (d["status"], d["reason"]) for d in payload["not_used"]} == {
        k: v for k, v in expected.items() if v[0] != "used"}
    assert payload["label_conflicts"] == 1
    assert main(["data", "audit", str(root), "--strict", "--jobs", "1"]) == 1
    assert "huge.png" in capsys.readouterr().err


def test_split_writes_manifest_and_skipped_list(bad_corpus, tmp_path, capsys):
    root, expected = bad_corpus
    out = tmp_path / "m.csv"
    assert main(["data", "split", str(root), "--out", str(out), "--jobs", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert out.is_file() and payload["not_used"] == sum(s != "used" for s, _ in expected.values())
    skipped = (tmp_path / "m.skipped.csv").read_text().splitlines()
    assert skipped[0] == "path,status,reason,detail" and len(skipped) == 1 + payload["not_used"]


def test_synth_command(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "s"), "--n", "4", "--seed", "1"]) == 0
    assert len(list((tmp_path / "s").rglob("*.jpg"))) == 4
