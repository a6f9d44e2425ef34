import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from crackbench.dataset import scan_dataset
from crackbench.imageio import read_image
from crackbench.synthetic import make_synthetic_dataset


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", 6, seed=5, progress=False)
    b = make_synthetic_dataset(tmp_path / "b", 6, seed=5, progress=False)
    c = make_synthetic_dataset(tmp_path / "c", 6, seed=6, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files) == 6
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_layout_size_and_all_files_usable(synth_dir):
    ds = scan_dataset(synth_dir, progress=False)
    assert ds.summary()["classes"] == {"Negative": 300, "Positive": 300}
    assert ds.summary()["sizes"] == {"227x227": 600}
    assert not ds.by_status("skipped") and not ds.by_status("ignored")


def test_mean_intensity_alone_does_not_separate_classes(synth_dir):
    ds = scan_dataset(synth_dir, progress=False)
    x = np.array([[read_image(r.path, mode="gray").mean()] for r in ds.used])
    y = np.array([r.label == "Positive" for r in ds.used])
    acc = cross_val_score(LogisticRegression(), x, y, cv=5).mean()
    assert acc < 0.65, acc
