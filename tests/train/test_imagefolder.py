"""Image folders: layouts, carving, the decode cache, and every bad folder as one line naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

import sandbox.train.data
import sandbox.train.imagefolder
from sandbox.cli import main
from sandbox.errors import SandboxError, SpecError
from sandbox.export.source import resolve
from sandbox.spec.load import load_spec
from sandbox.spec.recipe import DataConfig
from sandbox.train.data import fetch, load
from sandbox.train.imagefolder import read_folder
from sandbox.train.images import load_image
from sandbox.train.loop import train_run
from tests.deadline import deadline
from tests.images import png_header, write_image_folder
from tests.tiny_spec import tiny_spec

CLASSES = {"daisy": 12, "rose": 12, "tulip": 12}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def folder_config(root: Path, **keys: float) -> DataConfig:
    return DataConfig("image-folder", root, **keys)  # type: ignore[arg-type]


def test_one_folder_per_class_carves_val_and_test_and_says_so(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "flowers", CLASSES, size=(20, 12))
    data = load(folder_config(root, val_fraction=0.25, test_fraction=0.25), "cpu", channels=3, size=16)
    assert data.classes == ("daisy", "rose", "tulip")
    assert (len(data.train), len(data.val), len(data.test)) == (18, 9, 9)
    assert data.train.images.shape[1:] == (3, 16, 16) and data.train.images.dtype == torch.uint8
    assert any(n.startswith("no test/ folder: 9 images (25%) of train/ carved as the test split") for n in data.notes)
    assert any(n.startswith("9 images (25%) of the training images carved as the validation split") for n in data.notes)
    for split in (data.val, data.test):  # stratified: 12 images a class, 3 of each in each carved split
        assert split.labels.bincount().tolist() == [3, 3, 3]
    assert any(n.startswith("36 non-square images padded to a square with their border colour") for n in data.notes)
    assert any(n.startswith("36 images resized to 16x16 (input.size)") for n in data.notes)
    # Each class keeps its brightness: the labels travel with their images.
    means = data.train.images.float().mean((1, 2, 3))
    assert all(means[data.train.labels == c].std().nan_to_num() < 10 for c in range(3))


def test_split_folders_are_used_as_given(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f" / "train", CLASSES)
    write_image_folder(tmp_path / "f" / "val", {"daisy": 2, "rose": 3, "tulip": 1})
    write_image_folder(tmp_path / "f" / "test", {"daisy": 4, "tulip": 4})  # a split may lack a class
    data = load(folder_config(tmp_path / "f"), "cpu", channels=1, size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 6, 8)
    assert data.test.labels.tolist() == [0] * 4 + [2] * 4
    assert not any("carved" in note for note in data.notes)
    assert any(n.startswith("50 RGB images converted to grayscale") for n in data.notes)


def test_train_and_val_only_carves_the_test_split(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f" / "train", CLASSES)
    write_image_folder(tmp_path / "f" / "val", {"daisy": 2})
    data = load(folder_config(tmp_path / "f"), "cpu", channels=3, size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (32, 2, 4)


def test_the_second_read_comes_from_the_cache_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    root = write_image_folder(tmp_path / "f", CLASSES)
    first = read_folder(root, 3, 16)
    assert any(note.startswith("cached in") for note in first.notes)
    assert len(list((private_cache / "image-folder").glob("*.pt"))) == 1

    def refuse(*args: object) -> object:
        raise AssertionError("decoded again")

    monkeypatch.setattr(sandbox.train.imagefolder, "_decode", refuse)
    second = read_folder(root, 3, 16)
    assert any(note.startswith("read from the cache") for note in second.notes)
    for split in first.splits:
        assert all(torch.equal(a, b) for a, b in zip(first.splits[split], second.splits[split], strict=True))
    monkeypatch.undo()
    monkeypatch.setenv("SANDBOX_CACHE", str(private_cache))
    touched = root / "rose" / "000.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    assert not any("read from the cache" in note for note in read_folder(root, 3, 16).notes)
    assert not any("read from the cache" in note for note in read_folder(root, 3, 24).notes)  # another size


def test_a_corrupt_image_is_skipped_and_counted(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", CLASSES)
    (root / "rose" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "tulip" / "empty.jpg").write_bytes(b"")
    folder = read_folder(root, 3, 8)
    assert len(folder.splits["train"][1]) == 36
    skipped = next(note for note in folder.notes if note.startswith("skipped"))
    assert skipped.startswith(f"skipped 2 unreadable images (first: {root / 'rose' / 'broken.png'}: ")


def test_a_link_loop_is_not_followed_and_each_file_counts_once(tmp_path: Path) -> None:
    """`a/up -> ..` made 24 images 984, gave b's images a's label and put copies in the test split."""
    root = write_image_folder(tmp_path / "f", {"a": 12, "b": 12})
    (root / "a" / "up").symlink_to("..")
    (root / "b" / "again.png").symlink_to(root / "b" / "000.png")  # a second path to one file
    folder = read_folder(root, 3, 8)
    images, labels = folder.splits["train"]
    assert labels.tolist() == [0] * 12 + [1] * 12  # each real file once, with its own class
    assert f"directory links not followed: 1 (first: {root / 'a' / 'up'})" in folder.notes
    repeated = "repeated files counted once (links or paths to a file already found)"
    assert f"{repeated}: 1 (first: {root / 'b' / 'again.png'})" in folder.notes
    data = load(folder_config(root, val_fraction=0.25, test_fraction=0.25), "cpu", channels=3, size=8)
    splits = [data.train.images, data.val.images, data.test.images]
    rows = {tuple(image.flatten().tolist()) for split in splits for image in split}
    assert sum(len(split) for split in splits) == len(rows) == 24  # no image in two splits


def test_dangling_links_and_fifos_named_as_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", CLASSES)
    (root / "rose" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(root / "tulip" / "pipe.png")
    with deadline(30):  # a FIFO opened for reading waits for a writer forever
        folder = read_folder(root, 3, 8)
    assert len(folder.splits["train"][1]) == 36
    assert f"dangling links skipped: 1 (first: {root / 'rose' / 'gone.png'})" in folder.notes
    assert (
        f"non-regular files skipped (FIFOs, devices, sockets): 1 (first: {root / 'tulip' / 'pipe.png'})" in folder.notes
    )


def test_images_over_pillows_limit_are_skipped_in_every_decoder_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the error limit (2x) Image.open raised outside the try; between the limits the
    process-wide warnings filter raced across threads, so some passed and some failed."""
    root = write_image_folder(tmp_path / "f", {"a": 4, "b": 4})
    for index in range(16):
        (root / "ab"[index % 2] / f"big{index:02d}.png").write_bytes(
            png_header(10_000, 10_000 + 10_000 * (index % 3 == 0))
        )
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)  # the decoder pool's size
    folder = read_folder(root, 1, 8)
    assert len(folder.splits["train"][1]) == 8
    skipped = next(note for note in folder.notes if note.startswith("skipped"))
    assert skipped.startswith(f"skipped 16 unreadable images (first: {root / 'a' / 'big00.png'}: ")


def test_bmp_and_gray_images_are_read_and_converted(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 3}, mode="L", suffix=".bmp")
    write_image_folder(root, {"b": 3}, mode="RGBA", seed=1)
    folder = read_folder(root, 3, 8)
    assert folder.splits["train"][0].shape == (6, 3, 8, 8)
    assert any(note.startswith("3 grayscale images repeated to RGB") for note in folder.notes)
    gray = folder.splits["train"][0][:3]
    assert torch.equal(gray[:, 0], gray[:, 1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "image folder {root} does not exist"),
        (lambda root: root.mkdir(), "image folder {root} has no class folders"),
        (lambda root: (root / "a").mkdir(parents=True), "{root}/a: no image files (expected .jpg"),
        (lambda root: (root / "train" / "a").mkdir(parents=True), "{root}/train/a: no image files"),
    ],
)
def test_missing_and_empty_folders_are_named(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "f"
    make(root)
    with pytest.raises(SandboxError) as err:
        fetch(folder_config(root))
    assert str(err.value).startswith(message.format(root=root)) and "\n" not in str(err.value)


def test_a_class_with_no_readable_image_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 2, "b": 2})
    for file in (root / "b").iterdir():
        file.write_bytes(b"garbage")
    with pytest.raises(SandboxError) as err:
        read_folder(root, 3, 8)
    assert str(err.value).startswith(f"{root / 'b'}: no readable image (2 unreadable: {root / 'b' / '000.png'}")


def test_a_split_folder_with_a_class_train_lacks_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f" / "train", {"a": 2})
    write_image_folder(tmp_path / "f" / "val", {"a": 1, "zebra": 1})
    with pytest.raises(SandboxError, match=r"/f/val has class folders that train/ lacks: zebra$"):
        fetch(folder_config(tmp_path / "f"))


def test_an_image_folder_needs_a_root() -> None:
    with pytest.raises(SpecError) as err:
        fetch(DataConfig("image-folder"))
    assert err.value.path == "data.root"


def test_folder_class_names_reach_metrics_evaluate_export_and_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_image_folder(tmp_path / "flowers", CLASSES, size=(24, 24))
    spec = load_spec(tiny_spec({"dataset": "image-folder", "root": str(root)}, channels=3, size=16, classes=3))
    metrics = train_run(spec, device="cpu", progress=False, out_dir=tmp_path / "run")
    assert metrics["dataset"]["class_names"] == ["daisy", "rose", "tulip"]
    assert metrics["dataset"]["input"] == [3, 16, 16]
    assert resolve(tmp_path / "run").classes == ("daisy", "rose", "tulip")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in CLASSES)
    assert main(["predict", str(tmp_path / "run"), str(root / "rose" / "000.png"), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in CLASSES) and "inverted" not in printed
    (root / "tulip").rename(root / "zinnia")  # another dataset now: evaluate would score it against wrong names
    sandbox.train.data._load.cache_clear()  # as a new process would read it
    assert main(["evaluate", str(tmp_path / "run"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the data: lines of the load
    assert error.startswith("error: ") and error.endswith("not the dataset it was trained on")


def test_a_spec_whose_classes_differ_from_the_folders_is_named_by_classes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", CLASSES)
    raw = tiny_spec({"dataset": "image-folder", "root": str(root)}, channels=3, size=8, classes=10)
    with pytest.raises(SpecError) as err:
        train_run(load_spec(raw), device="cpu", progress=False)
    assert err.value.path == "classes" and "image-folder has 3 classes (daisy, rose, tulip)" in str(err.value)


def test_images_are_converted_as_predict_converts_them(tmp_path: Path) -> None:
    """Transparency onto white, padded to a square, resized: the very tensor `predict` would feed."""
    (tmp_path / "f" / "a").mkdir(parents=True)
    Image.new("RGBA", (4, 4), (200, 10, 10, 0)).save(tmp_path / "f" / "a" / "clear.png")
    write_image_folder(tmp_path / "f", {"a": 1}, size=(30, 17), seed=3)
    images = read_folder(tmp_path / "f", 3, 12).splits["train"][0]
    assert images[1, :, 0, 0].tolist() == [255, 255, 255]  # clear.png sorts after 000.png
    expected, _ = load_image(tmp_path / "f" / "a" / "000.png", 3, 12, invert="never")
    assert torch.equal(images[0], (expected * 255).round().to(torch.uint8))


def test_an_unset_normalize_is_the_folders_own_measured_on_the_training_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_image_folder(tmp_path / "flowers", CLASSES, size=(16, 16))
    spec = load_spec(tiny_spec({"dataset": "image-folder", "root": str(root)}, channels=3, size=16, classes=3))
    metrics = train_run(spec, device="cpu", progress=False, out_dir=tmp_path / "run")
    data = load(spec.data, "cpu", channels=3, size=16)
    pixels = data.train.images.double().div(255)
    expected = [round(float(v), 4) for v in pixels.mean((0, 2, 3))]
    assert metrics["normalize"]["mean"] == expected and metrics["normalize"]["mean"] != [0.286] * 3
    assert metrics["normalize"]["source"] == f"measured on the {len(data.train)} training images"
    assert "normalize: unset in a spec means this dataset's own" in capsys.readouterr().err
    trained = resolve(tmp_path / "run").spec  # spec.yaml states them: evaluate, predict and the export agree
    assert list(trained.mean) == expected and list(trained.std) == metrics["normalize"]["std"]
