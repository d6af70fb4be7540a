"""The demo generator, the datasets builder, the Hub layout and load_listings, on real files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pytest
import yaml
from PIL import Image

from hf_spamguard.cards import render_dataset_card
from hf_spamguard.data import (
    LISTING_FEATURES,
    DataValidationError,
    build_dataset,
    generate_demo_listings,
    load_listings,
    save_dataset,
    write_demo,
)
from hf_spamguard.data.builder import ListingsBuilder, ListingsConfig

HEADER = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_demo_is_deterministic_and_realistic(demo_dir: Path, tmp_path: Path) -> None:
    again = write_demo(tmp_path / "again")
    assert _digest(again) == _digest(demo_dir)
    assert generate_demo_listings(50, seed=1) != generate_demo_listings(50, seed=2)
    listings = generate_demo_listings()
    assert len(listings) == 300 and len({x["product_id"] for x in listings}) == 300
    spam = [x for x in listings if x["label"] == 1]
    assert 0.4 <= len(spam) / 300 <= 0.6
    missing = sum(not x["has_image"] for x in listings)
    assert 15 <= missing <= 50
    split_votes = [x for x in listings if x["yes_count"] and x["no_count"]]
    assert len(split_votes) >= 20
    assert any(x["yes_count"] + x["no_count"] > 3 for x in listings)
    for x in listings:  # labels follow the strict vote majority
        assert x["label"] == int(x["yes_count"] > x["no_count"])
    markers = ("tags:", "ignore:", "#", "search:", "ignore tags")
    assert all(any(m in x["description"].lower() for m in markers) for x in spam if x["yes_count"] == 3)
    images = sorted((demo_dir / "images").iterdir())
    assert len(images) == 300 - missing
    with Image.open(images[0]) as img:
        assert img.format == "JPEG" and 128 <= img.width <= 256
    lines = (demo_dir / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER.rstrip("\n") and len(lines) == 211


def test_build_save_load_roundtrip(demo_dir: Path, tmp_path: Path) -> None:
    dd = build_dataset(
        train=demo_dir / "train.tsv",
        validation=demo_dir / "validation.tsv",
        test=demo_dir / "test.tsv",
        image_dir=demo_dir / "images",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    assert list(dd) == ["train", "validation", "test"]
    assert [len(dd[s]) for s in dd] == [210, 45, 45]
    for split in dd:
        assert dd[split].features == LISTING_FEATURES
    with_image = [r for r in dd["train"] if r["image"] is not None]
    without = [r for r in dd["train"] if r["image"] is None]
    assert with_image and without
    assert all((demo_dir / "images" / f"{r['product_id']}.jpg").is_file() for r in with_image)
    assert not any((demo_dir / "images" / f"{r['product_id']}.jpg").exists() for r in without)
    row = dd["train"][0]
    assert row["label_confidence"] == pytest.approx(
        abs(row["yes_count"] - row["no_count"]) / (row["yes_count"] + row["no_count"])
    )
    report = dd.build_report
    assert report.n_disagreements == 0 and len(report.image_status) == 300
    assert report.n_images == 300 - len([s for s in report.image_status if not s["ok"]])

    out = save_dataset(dd, tmp_path / "hub")
    parquet = sorted(p.name for p in (out / "data").iterdir())
    assert parquet == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    assert datasets.Features._from_yaml_list(meta["dataset_info"]["features"]) == LISTING_FEATURES
    status = (out / "image_status.csv").read_text(encoding="utf-8").splitlines()
    assert status[0] == "split,product_id,image_url,source,ok,error" and len(status) == 301
    # The card is the model_card/dataset_card.md template's (the one `publish` and the demo render),
    # with the build report's facts; rendering it again from the folder, as publish does, changes nothing.
    assert "## Splits" in card and "## Build report" in card and "| `train.tsv` | 210 | 0 | 0 |" in card
    assert f"{report.n_images} of 300 listings got their photo (local: {report.n_images})" in card
    assert "`image_status.csv` has one row per listing" in card
    render_dataset_card(out)
    assert (out / "README.md").read_text(encoding="utf-8") == card

    loaded = datasets.load_dataset(str(out))
    assert list(loaded) == list(dd)
    for split in dd:
        assert loaded[split].features == dd[split].features
        assert loaded[split].with_format("arrow")[:].equals(dd[split].with_format("arrow")[:])
    img = loaded["train"].filter(lambda r: r["image"] is not None)[0]["image"]
    assert isinstance(img, Image.Image) and img.size == (160, 160)
    # load_listings gives the same for the folder, and a single split on request.
    assert list(load_listings(out, split="test")["product_id"]) == list(dd["test"]["product_id"])


def test_cache_key_follows_inputs(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    rows = "".join(f"{i}\t{i}\t\tjeans {i}\t{i % 2 * 3}\t{(1 - i % 2) * 3}\t{i % 2}\n" for i in range(20))
    tsv.write_text(HEADER + rows, encoding="utf-8")
    first = build_dataset(tsv, cache_dir=tmp_path / "cache", progress=False)
    cached = build_dataset(tsv, cache_dir=tmp_path / "cache", progress=False)
    assert cached["train"].cache_files == first["train"].cache_files  # same inputs: read from cache
    assert len(cached.build_report.image_status) == 20  # the report survives a cached rebuild
    tsv.write_text(HEADER + rows.replace("jeans 3", "skirt 3"), encoding="utf-8")
    changed = build_dataset(tsv, cache_dir=tmp_path / "cache", progress=False)
    assert changed["train"].cache_files != first["train"].cache_files
    all_rows = list(changed["train"]["description"]) + list(changed["validation"]["description"])
    assert "skirt 3" in all_rows
    other_seed = build_dataset(tsv, cache_dir=tmp_path / "cache", seed=7, progress=False)
    assert other_seed["train"].cache_files != changed["train"].cache_files


def test_carved_validation_is_stratified_and_seeded(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    labels = [1] * 30 + [0] * 70
    rows = "".join(f"{i}\tp{i}\t\ttext {i}\t{3 * y}\t{3 * (1 - y)}\t{y}\n" for i, y in enumerate(labels))
    tsv.write_text(HEADER + rows, encoding="utf-8")
    dd = build_dataset(tsv, validation_size=0.2, seed=3, cache_dir=tmp_path / "c", progress=False)
    assert list(dd) == ["train", "validation"] and len(dd["validation"]) == 20
    assert sum(dd["validation"]["label"]) == 6  # 20% of each class
    assert not set(dd["train"]["product_id"]) & set(dd["validation"]["product_id"])
    same = build_dataset(tsv, validation_size=0.2, seed=3, cache_dir=tmp_path / "c2", progress=False)
    assert list(same["validation"]["product_id"]) == list(dd["validation"]["product_id"])
    other = build_dataset(tsv, validation_size=0.2, seed=4, cache_dir=tmp_path / "c3", progress=False)
    assert list(other["validation"]["product_id"]) != list(dd["validation"]["product_id"])
    no_val = build_dataset(tsv, validation_size=0, cache_dir=tmp_path / "c4", progress=False)
    assert list(no_val) == ["train"] and len(no_val["train"]) == 100


def test_duplicate_across_splits_and_bad_input_propagate(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    test = tmp_path / "test.tsv"
    train.write_text(
        HEADER + "0\t1\t\ta\t0\t3\t0\n1\t2\t\tb\t3\t0\t1\n2\t3\t\tc\t0\t3\t0\n", encoding="utf-8"
    )
    test.write_text(HEADER + "0\t9\t\tx\t0\t3\t0\n1\t2\t\ty\t3\t0\t1\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"test.tsv, line 3, field 'product_id'.*train.tsv, line 3"):
        build_dataset(train, test=test, validation_size=0, cache_dir=tmp_path / "c", progress=False)
    test.write_text(HEADER + "0\t9\t\tx\t0\tlots\t0\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"test.tsv, line 2, field 'no_count'"):
        build_dataset(train, test=test, validation_size=0, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(FileNotFoundError, match="image folder"):
        build_dataset(
            train, image_dir=tmp_path / "nope", validation_size=0, cache_dir=tmp_path / "c", progress=False
        )


def test_disagreements_reach_the_card(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text(HEADER + "0\ta\t\tx\t3\t0\t0\n1\tb\t\ty\t0\t3\t0\n2\tc\t\tz\t3\t0\t1\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="1 label"):
        dd = build_dataset(tsv, validation_size=0, cache_dir=tmp_path / "c", progress=False)
    assert dd.build_report.disagreement_ids == ["a"]
    out = save_dataset(dd, tmp_path / "out")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert (
        "1 listing(s) have a `label` that disagrees" in card
        and "their ids are in `build_report.json`" in card
    )
    assert "| `train.tsv` | 3 | 1 | 0 |" in card
    assert json.loads((out / "build_report.json").read_text())["label_reports"][0]["disagreements"] == ["a"]


def test_builder_config_is_a_dataclass_with_help() -> None:
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(ListingsConfig)}
    for name in ("train", "validation", "test", "image_dir", "fetch_images", "validation_size", "seed"):
        assert fields[name].metadata.get("help")
    assert issubclass(ListingsBuilder, datasets.GeneratorBasedBuilder)


def test_load_listings_sources(demo_dir: Path, tmp_path: Path) -> None:
    raw = load_listings(demo_dir, cache_dir=tmp_path / "c")  # a folder of TSVs + images/
    assert list(raw) == ["train", "validation", "test"] and raw["train"][0]["image"] is not None
    single = load_listings(demo_dir / "train.tsv", cache_dir=tmp_path / "c")  # carved validation
    assert list(single) == ["train", "validation"] and len(single["train"]) + len(single["validation"]) == 210
    whole = load_listings(demo_dir / "test.tsv", split="test", cache_dir=tmp_path / "c")
    assert isinstance(whole, datasets.Dataset) and len(whole) == 45
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_listings(demo_dir, split="dev", cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_listings(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a listings source"):
        load_listings(tmp_path / "empty")


def test_fixture_dataset_dir_loads(demo_dataset_dir: Path) -> None:
    dd = load_listings(demo_dataset_dir)
    assert {s: len(dd[s]) for s in dd} == {"train": 210, "validation": 45, "test": 45}
    assert dd["train"].features == LISTING_FEATURES


# ===================================================================================== rebuilding a folder
def _tiny(tmp_path: Path, n: int = 20, name: str = "train.tsv") -> Path:
    tsv = tmp_path / name
    rows = "".join(f"{i}\tq{i}\t\tjeans {i}\t{i % 2 * 3}\t{(1 - i % 2) * 3}\t{i % 2}\n" for i in range(n))
    tsv.write_text(HEADER + rows, encoding="utf-8")
    return tsv


def _rows(folder: Path) -> dict[str, list[str]]:
    dd = datasets.load_dataset(str(folder), cache_dir=str(folder.parent / "load-cache"))
    return {split: list(dd[split]["product_id"]) for split in dd}


def test_a_rebuild_with_fewer_splits_leaves_no_stale_split(demo_dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    save_dataset(datasets.load_dataset(str(demo_dataset_dir)), out)
    assert len(list((out / "data").glob("*.parquet"))) == 3
    only_train = build_dataset(_tiny(tmp_path), validation_size=0, cache_dir=tmp_path / "c", progress=False)
    save_dataset(only_train, out)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert _rows(out) == {"train": [f"q{i}" for i in range(20)]}


def test_a_failed_rebuild_leaves_the_previous_dataset_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from hf_spamguard.data import hub_layout

    out = tmp_path / "out"
    first = build_dataset(_tiny(tmp_path, 30), cache_dir=tmp_path / "c", progress=False)
    save_dataset(first, out)
    before, files = _rows(out), _digest(out)
    second = build_dataset(_tiny(tmp_path, 40, "other.tsv"), cache_dir=tmp_path / "c", progress=False)
    written = []
    real = hub_layout._write_parquet

    def write_then_fill_the_disk(ds, path, *args, **kwargs):
        if written:  # the second split's file: the disk is full now
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real(ds, path, *args, **kwargs)

    monkeypatch.setattr(hub_layout, "_write_parquet", write_then_fill_the_disk)
    with pytest.raises(OSError, match="No space left"):
        save_dataset(second, out)
    assert _digest(out) == files and _rows(out) == before  # the old folder, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no leftovers


def test_save_replaces_only_its_own_entries_and_cleans_killed_runs(tmp_path: Path) -> None:
    import os

    out = tmp_path / "ds"
    dd = build_dataset(_tiny(tmp_path), cache_dir=tmp_path / "c", progress=False)
    save_dataset(dd, out)
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "LICENSE").write_text("CC-BY-4.0\n")
    killed = tmp_path / ".ds.k1ll3d00.partial"  # what a SIGKILLed save leaves beside the folder
    (killed / "data").mkdir(parents=True)
    sibling = tmp_path / ".ds.v2.abcdefgh.partial"  # another folder's (ds.v2): not ours to remove
    sibling.mkdir()
    save_dataset(dd, out)
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (out / "LICENSE").read_text() == "CC-BY-4.0\n"
    assert not killed.exists() and sibling.is_dir()
    assert not (tmp_path / "ds.lock").exists()  # the lock is released and removed
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask  # not mkdtemp's 0700
    assert ((out / "README.md").stat().st_mode & 0o777) == 0o666 & ~umask


def test_save_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "raw.tsv").write_text("precious\n")
    (project / "README.md").write_text("# my project\n")
    dd = build_dataset(_tiny(tmp_path), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(FileExistsError, match="exists and is not a dataset folder"):
        save_dataset(dd, project)
    assert (project / "data" / "raw.tsv").read_text() == "precious\n"
    assert (project / "README.md").read_text() == "# my project\n"


def test_a_concurrent_save_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    import os

    from hf_spamguard.jobs import JobLockedError, job_lock

    out = tmp_path / "ds"
    dd = build_dataset(_tiny(tmp_path), cache_dir=tmp_path / "c", progress=False)
    with job_lock(out), pytest.raises(JobLockedError, match=f"pid {os.getpid()}"):
        save_dataset(dd, out)
    assert not out.exists()


# ===================================================================================== report, card
def test_carved_validation_reports_its_file_once(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        HEADER + "".join(f"{i}\tp{i}\t\tx {i}\t3\t0\t{int(i == 0)}\n" for i in range(20)), encoding="utf-8"
    )
    with pytest.warns(UserWarning):
        dd = build_dataset(tsv, cache_dir=tmp_path / "c", progress=False)
    assert list(dd) == ["train", "validation"]
    assert [r["file"] for r in dd.build_report.label_reports] == ["train.tsv"]
    assert dd.build_report.summary().count("train.tsv") == 1
    out = save_dataset(dd, tmp_path / "out")
    assert len(json.loads((out / "build_report.json").read_text())["label_reports"]) == 1
    assert (out / "README.md").read_text(encoding="utf-8").count("| `train.tsv` |") == 1
    cached = build_dataset(tsv, cache_dir=tmp_path / "c", progress=False)  # the report stored in the cache
    assert len(cached.build_report.label_reports) == 1


def test_the_card_says_text_only_and_has_no_license_until_one_is_set(
    demo_dataset_dir: Path, tmp_path: Path
) -> None:
    dd = build_dataset(_tiny(tmp_path), cache_dir=tmp_path / "c", progress=False)
    out = save_dataset(dd, tmp_path / "out")
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "other" and "apache-2.0" not in meta["license"]
    assert "Not set yet (`license: other`)" in card and "--license" in card
    assert "(text + photo)" not in card and "text only: no listing has a photo" in card
    assert "this is a text-only dataset" in card
    assert meta["task_categories"] == ["text-classification"]
    save_dataset(dd, out, license="cc-by-4.0")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert yaml.safe_load(card.split("---\n")[1])["license"] == "cc-by-4.0" and "Not set yet" not in card
    save_dataset(dd, out)  # a rebuild keeps the license that was set
    render_dataset_card(out)  # and so does rendering the card again (publish)
    assert yaml.safe_load((out / "README.md").read_text().split("---\n")[1])["license"] == "cc-by-4.0"
    with_photos = (demo_dataset_dir / "README.md").read_text(encoding="utf-8")
    assert "(text, and a photo for 89% of them)" in with_photos and "image-classification" in with_photos


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("validation_size", -1),
        ("validation_size", 1),
        ("validation_size", float("nan")),
        ("max_workers", 0),
        ("image_timeout", 0),
        ("image_retries", -1),
        ("seed", -1),
    ],
)
def test_build_refuses_options_out_of_range(tmp_path: Path, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{option} must be in"):
        build_dataset(tmp_path / "never-read.tsv", **{option: value})


def test_a_missing_local_path_is_not_looked_up_on_the_hub(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    monkeypatch.setattr(datasets, "load_dataset", no_network)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name, why in (
        ("data/listngs2", "data/ is a local folder"),
        ("exports/listings.tsv", "it ends in .tsv"),
        ("./org/name", "not a Hub id"),
    ):
        with pytest.raises(FileNotFoundError, match="no such file or folder") as info:
            load_listings(name)
        assert why in str(info.value) and len(str(info.value).splitlines()) == 1


def test_save_through_a_symlink_replaces_the_folder_it_points_at(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "listings"
    dd = build_dataset(_tiny(tmp_path), cache_dir=tmp_path / "c", progress=False)
    save_dataset(dd, real)
    link = tmp_path / "listings"
    link.symlink_to(real, target_is_directory=True)
    save_dataset(build_dataset(_tiny(tmp_path, 30), cache_dir=tmp_path / "c", progress=False), link)
    assert link.is_symlink() and len(_rows(real)["train"]) + len(_rows(real)["validation"]) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
