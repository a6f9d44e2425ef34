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


def test_adapt_writes_a_model_for_the_new_surface_and_lists_unusable_files(synth_dir, tmp_path, capsys):
    import shutil

    import numpy as np

    from crackbench.registry import load_model, resolve_model

    site = tmp_path / "site"
    site.mkdir()
    for path in sorted((synth_dir / "Negative").iterdir())[:40]:
        shutil.copy(path, site / path.name)
    (site / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "edges-site.skops"
    assert main(["adapt", str(site), "--out", str(out)]) == 0  # the built-in edges-svm
    captured = capsys.readouterr()
    assert "adapted edges-svm to 40 unlabelled images" in captured.out
    assert "broken.jpg" in captured.err and "1 of 41 files could not be used" in captured.err
    adapted, builtin = load_model(out), load_model(resolve_model(None))
    assert adapted.metadata["adapted_standardization"] == {"n_images": 40}
    images = [str(p) for p in sorted(site.iterdir()) if p.name != "broken.jpg"][:10]
    assert not np.allclose(adapted.predict_proba(images), builtin.predict_proba(images))


def test_adapt_refuses_a_model_with_nothing_to_adapt_before_reading_images(synth_dir, tmp_path, capsys,
                                                                           monkeypatch):
    from crackbench import imageio
    from crackbench.dataset import scan_dataset
    from crackbench.manifest import split_dataset
    from crackbench.pipelines import save_model, train_classical

    forest = train_classical("edges-rf", split_dataset(scan_dataset(synth_dir, progress=False)), progress=False)
    save_model(forest, tmp_path / "rf.skops")
    monkeypatch.setattr(imageio, "read_image", lambda *a, **k: pytest.fail("read an image"))
    args = ["adapt", "--model", str(tmp_path / "rf.skops"), str(synth_dir), "--out", str(tmp_path / "o.skops")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no feature standardisation to adapt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.skops").exists()
