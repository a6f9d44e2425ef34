import numpy as np
import pytest
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


def test_synthetic_photos_are_reproducible_and_their_masks_mark_the_dark_cracks(tmp_path):
    import cv2

    from crackbench.cli import main
    from crackbench.synthetic import synthetic_photo

    photo, mask = synthetic_photo(3, 640, 480)
    again, mask_again = synthetic_photo(3, 640, 480)
    assert photo.shape == (480, 640, 3) and photo.dtype == np.uint8 and mask.shape == (480, 640)
    assert np.array_equal(photo, again) and np.array_equal(mask, mask_again)
    assert not np.array_equal(photo, synthetic_photo(4, 640, 480)[0])
    assert 0.0005 < mask.mean() < 0.05  # thin cracks: a small share of the pixels
    grey = photo.mean(axis=2)
    assert grey[mask].mean() < grey[~mask].mean() - 20  # the mask is where the photo is dark
    assert synthetic_photo(0, 640, 480, cracks=0)[1].sum() == 0
    with pytest.raises(ValueError, match="at least 16x16"):
        synthetic_photo(0, 8, 480)

    assert main(["data", "synth", str(tmp_path / "p"), "--photos", "--n", "2", "--size", "300x200"]) == 0
    images = sorted((tmp_path / "p" / "images").iterdir())
    masks = sorted((tmp_path / "p" / "masks").iterdir())
    assert [p.name for p in images] == ["photo-000.jpg", "photo-001.jpg"]
    assert [p.name for p in masks] == ["photo-000.png", "photo-001.png"]
    assert read_image(images[0]).shape == (200, 300, 3)
    written = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255} and written.any()
    assert main(["data", "synth", str(tmp_path / "q"), "--size", "30x40"]) == 1  # patches are square
