import pandas as pd
import pytest

from crackbench.dataset import DataError, scan_dataset


def test_every_file_accounted_for_with_reason(bad_corpus):
    root, expected = bad_corpus
    ds = scan_dataset(root, progress=False)
    outcomes = {r.rel: (r.status, r.reason) for r in ds.records}
    assert outcomes == expected
    assert ds.classes == ["Empty", "Negative", "Positive"]
    assert ds.summary()["classes"] == {"Empty": 0, "Negative": 4, "Positive": 2}
    hidden_dir = next(r for r in ds.records if r.rel == "Negative/.ipynb_checkpoints/")
    assert "1 files inside" in hidden_dir.detail


def test_used_records_carry_size_hash_and_label(bad_corpus):
    root, _ = bad_corpus
    ds = scan_dataset(root, progress=False)
    tiny = next(r for r in ds.used if r.rel == "Negative/tiny.png")
    assert (tiny.height, tiny.width, tiny.label) == (1, 1, "Negative")
    assert all(len(r.sha256) == 64 for r in ds.used)
    nested = next(r for r in ds.used if r.rel == "Negative/junk/copy.jpg")
    assert nested.label == "Negative"


def test_label_conflict_reported(bad_corpus):
    root, _ = bad_corpus
    ds = scan_dataset(root, progress=False)
    (group,) = ds.duplicate_groups()
    assert {r.rel for r in group} == {"Positive/good.jpg", "Negative/junk/copy.jpg"}
    assert ds.label_conflicts() == [group]


def test_strict_fails_naming_the_file(bad_corpus):
    root, _ = bad_corpus
    with pytest.raises(DataError) as err:
        scan_dataset(root, strict=True, progress=False)
    assert "huge.png" in str(err.value) and "too-large" in str(err.value)


def test_parallel_scan_gives_same_records(bad_corpus):
    root, _ = bad_corpus
    assert scan_dataset(root, n_jobs=2, progress=False).records == scan_dataset(root, progress=False).records


def test_single_class_folder(tmp_path, bad_corpus):
    root, _ = bad_corpus
    only = tmp_path / "only"
    (only / "Positive").mkdir(parents=True)
    (only / "Positive" / "a.jpg").write_bytes((root / "Positive" / "good.jpg").read_bytes())
    ds = scan_dataset(only, progress=False)
    assert ds.classes == ["Positive"] and len(ds.used) == 1


def test_csv_source(tmp_path, bad_corpus):
    root, _ = bad_corpus
    table = pd.DataFrame({"path": ["Positive/good.jpg", "Positive/zero.jpg", "Positive/good.jpg",
                                   str(root / "Negative" / "gray.jpg")],
                          "label": ["crack", "crack", "crack", "clean"]})
    csv = root / "list.csv"
    table.to_csv(csv, index=False)
    ds = scan_dataset(csv, progress=False)
    assert ds.source == "csv" and ds.classes == ["clean", "crack"]
    assert sorted((r.status, r.reason) for r in ds.records) == [
        ("ignored", "duplicate-row"), ("skipped", "empty-file"), ("used", ""), ("used", "")]


def test_csv_without_columns_is_a_clear_error(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("file,class\na.jpg,x\n")
    with pytest.raises(DataError, match="expected columns 'path,label'"):
        scan_dataset(csv, progress=False)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="one sub-folder per class"):
        scan_dataset(tmp_path / "absent", progress=False)
