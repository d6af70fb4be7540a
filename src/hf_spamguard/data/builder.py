"""The ``datasets`` builder that turns listing TSVs + images into a ``DatasetDict``.

``datasets`` >= 4 has no loading scripts: :class:`ListingsBuilder` is used directly
(``download_and_prepare()`` + ``as_dataset()``), wrapped by :func:`build_dataset`. All its parameters
live on the dataclass :class:`ListingsConfig`, together with a fingerprint of the input files, so the
``datasets`` cache key changes whenever an input or an option changes and a rebuild with the same inputs
is read straight from the Arrow cache.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from hf_spamguard.data.features import IMAGE_EXTENSIONS, LISTING_FEATURES, label_confidence
from hf_spamguard.data.tsv import DataValidationError, LabelReport, read_listings_tsv
from hf_spamguard.files import BUILDER_REPORT_FILE, read_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BuildReport", "ListingsBuilder", "ListingsConfig", "build_dataset", "build_synthetic_dataset"]

IMAGE_STATUS_FIELDS = ("split", "product_id", "image_url", "source", "ok", "error")


@dataclass
class BuildReport:
    """What the build found besides the rows themselves: label/vote disagreements per input file and
    one image status row per listing (``source`` is ``local``, ``cache``, ``fetched`` or ``none``)."""

    label_reports: list[dict[str, Any]] = field(default_factory=list)
    image_status: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_disagreements(self) -> int:
        return sum(len(r["disagreements"]) for r in self.label_reports)

    @property
    def disagreement_ids(self) -> list[str]:
        return [pid for r in self.label_reports for pid in r["disagreements"]]

    @property
    def n_images(self) -> int:
        return sum(bool(s["ok"]) for s in self.image_status)

    @property
    def image_failures(self) -> list[dict[str, Any]]:
        return [s for s in self.image_status if not s["ok"]]

    def summary(self) -> str:
        lines = [LabelReport(**r).summary() for r in self.label_reports]
        total = len(self.image_status)
        by_source: dict[str, int] = {}
        for s in self.image_status:
            if s["ok"]:
                by_source[s["source"]] = by_source.get(s["source"], 0) + 1
        sources = ", ".join(f"{k}: {v}" for k, v in sorted(by_source.items()))
        lines.append(
            f"images: {self.n_images}/{total} available"
            + (f" ({sources})" if sources else "")
            + (
                f"; {total - self.n_images} without image (see image_status.csv)"
                if total - self.n_images
                else ""
            )
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildReport:
        return cls(
            label_reports=list(data.get("label_reports", [])), image_status=list(data.get("image_status", []))
        )

    def image_status_csv(self) -> str:
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(
            buf, fieldnames=IMAGE_STATUS_FIELDS, lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(self.image_status)
        return buf.getvalue()


@dataclass
class ListingsConfig(datasets.BuilderConfig):
    """Parameters of a listings build. Every field is part of the ``datasets`` cache key."""

    train: str | None = field(default=None, metadata={"help": "Path of the training TSV."})
    validation: str | None = field(
        default=None, metadata={"help": "Path of the validation TSV; when None, carved from train."}
    )
    test: str | None = field(default=None, metadata={"help": "Path of the test TSV (optional)."})
    image_dir: str | None = field(
        default=None, metadata={"help": "Folder with <product_id>.<jpg|jpeg|png|webp> images (optional)."}
    )
    fetch_images: bool = field(
        default=False, metadata={"help": "Download image_url for listings without a local image."}
    )
    validation_size: float = field(
        default=0.1,
        metadata={
            "help": "Fraction of train carved (stratified by label) when no validation TSV; 0: none.",
            "min": 0,
            "max": 1,
            "max_open": True,
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the stratified validation split."})
    max_workers: int = field(
        default=16, metadata={"help": "Threads for image fetching and verification.", "min": 1}
    )
    image_cache_dir: str | None = field(
        default=None, metadata={"help": "Content-addressed cache of fetched images."}
    )
    image_timeout: float = field(
        default=10.0, metadata={"help": "Per-request timeout in seconds.", "min": 0, "min_open": True}
    )
    image_retries: int = field(default=3, metadata={"help": "Retries on 5xx answers and timeouts.", "min": 0})
    allow_private_networks: bool = field(
        default=False,
        metadata={"help": "Also fetch from loopback/private/link-local addresses (intranet image hosts)."},
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    fingerprint: str = field(
        default="", metadata={"help": "Hash of the input files' contents (set by build_dataset)."}
    )


def _find_local_image(image_dir: Path | None, product_id: str) -> Path | None:
    from hf_spamguard.data.images import local_image_path

    return local_image_path(image_dir, product_id, IMAGE_EXTENSIONS)  # never outside image_dir


def _carve_validation(
    df: pd.DataFrame, validation_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split of ``df`` into (train, validation), stratified by label."""
    import numpy as np

    if not 0 < validation_size < 1:
        raise ValueError(f"validation_size must be in (0, 1), got {validation_size}")
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for _, group in df.groupby("label", sort=True):
        positions = group.index.to_numpy()
        n = round(len(positions) * validation_size)
        if n == 0 and len(positions) >= 2:
            n = 1  # keep every class represented in validation
        picked.extend(rng.permutation(positions)[:n].tolist())
    mask = df.index.isin(picked)
    train, validation = df[~mask], df[mask]
    if train.empty or validation.empty:
        raise ValueError(
            f"cannot carve a validation split of {validation_size:.0%} from {len(df)} rows; "
            "pass a validation TSV instead"
        )
    return train.reset_index(drop=True), validation.reset_index(drop=True)


class ListingsBuilder(datasets.GeneratorBasedBuilder):
    """Listings TSV(s) + images → splits with :data:`LISTING_FEATURES`."""

    BUILDER_CONFIG_CLASS = ListingsConfig
    # 1.0.1: a carved validation split no longer repeats train's label report; cached 1.0.0 builds
    # (whose stored report has it twice) are rebuilt rather than reused
    VERSION = datasets.Version("1.0.1")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Marketplace listings labelled for keyword spam (hf-spamguard).",
            features=LISTING_FEATURES,
        )

    def _read_splits(self) -> dict[str, Any]:
        cfg: ListingsConfig = self.config
        if not cfg.train:
            raise ValueError("a train TSV is required")
        frames = {"train": read_listings_tsv(cfg.train)}
        if cfg.validation:
            frames["validation"] = read_listings_tsv(cfg.validation)
        if cfg.test:
            frames["test"] = read_listings_tsv(cfg.test)
        # The same listing in two splits would leak test data into training.
        seen: dict[str, tuple[str, int]] = {}
        for df in frames.values():
            for pid, line in zip(df["product_id"], df["line"], strict=True):
                if pid in seen:
                    other_file, other_line = seen[pid]
                    raise DataValidationError(
                        df.attrs["source"],
                        int(line),
                        "product_id",
                        f"duplicate product_id {pid!r}: already in {Path(other_file).name}, line {other_line}",
                    )
                seen[pid] = (df.attrs["source"], int(line))
        if "validation" not in frames and cfg.validation_size > 0:
            reports = frames["train"].attrs
            frames["train"], frames["validation"] = _carve_validation(
                frames["train"], cfg.validation_size, cfg.seed
            )
            frames["train"].attrs.update(reports)
            # pandas copies attrs into the carved frame: its rows come from train's file, whose report
            # is train's alone (else the report, card and build_report.json list the file twice)
            frames["validation"].attrs = {k: v for k, v in reports.items() if k != "label_report"}
        return frames

    def _resolve_images(self, frames: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Find or fetch each listing's image; return product_id -> status row (with ``path`` when ok)."""
        from hf_spamguard.data.images import ImageLoadError, fetch_images, verify_image_bytes

        cfg: ListingsConfig = self.config
        image_dir = Path(cfg.image_dir) if cfg.image_dir else None
        if image_dir is not None and not image_dir.is_dir():
            raise FileNotFoundError(f"{image_dir}: image folder not found")
        rows = [
            (split, pid, url)
            for split, df in frames.items()
            for pid, url in zip(df["product_id"], df["image_url"], strict=True)
        ]

        def check_local(item: tuple[str, str, str]) -> dict[str, Any]:
            split, pid, url = item
            status = {
                "split": split,
                "product_id": pid,
                "image_url": url,
                "source": "none",
                "ok": False,
                "error": None,
                "path": None,
            }
            local = _find_local_image(image_dir, pid)
            if local is None:
                status["error"] = "no local image" if image_dir else "no image folder given"
                return status
            try:
                verify_image_bytes(local.read_bytes())
            except (ImageLoadError, OSError) as exc:
                status["error"] = f"local file {local.name}: {exc}"
                return status
            status.update(source="local", ok=True, path=str(local))
            return status

        with ThreadPoolExecutor(max_workers=max(1, cfg.max_workers)) as pool:
            statuses = list(pool.map(check_local, rows))
        if cfg.fetch_images:
            todo = [s for s in statuses if not s["ok"] and s["image_url"]]
            results = fetch_images(
                [s["image_url"] for s in todo],
                cfg.image_cache_dir,
                max_workers=cfg.max_workers,
                timeout=cfg.image_timeout,
                retries=cfg.image_retries,
                allow_private_networks=cfg.allow_private_networks,
                progress=cfg.progress,
            )
            for status, result in zip(todo, results, strict=True):
                if result.ok:
                    status.update(
                        source="cache" if result.from_cache else "fetched",
                        ok=True,
                        path=result.path,
                        error=None,
                    )
                else:
                    status["error"] = f"{status['error']}; fetch failed: {result.error}"
        elif image_dir is None or any(not s["ok"] for s in statuses):
            for s in statuses:
                if not s["ok"]:
                    s["error"] = f"{s['error']} (fetching disabled)"
        return {s["product_id"]: s for s in statuses}

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        frames = self._read_splits()
        images = self._resolve_images(frames)
        report = BuildReport(
            label_reports=[
                df.attrs["label_report"].to_dict() for df in frames.values() if "label_report" in df.attrs
            ],
            image_status=[{k: s[k] for k in IMAGE_STATUS_FIELDS} for s in images.values()],
        )
        # Stored in the builder's (temporary, then final) cache folder so that a cached rebuild, which
        # skips this method, still returns the report.
        Path(self._output_dir, BUILDER_REPORT_FILE).write_text(json.dumps(report.to_dict()), encoding="utf-8")
        generators = []
        for split, df in frames.items():
            rows = [
                {
                    "product_id": pid,
                    "description": desc,
                    "image_url": url,
                    "label": int(label),
                    "yes_count": int(yes),
                    "no_count": int(no),
                    "image_path": images[pid]["path"],
                }
                for pid, desc, url, label, yes, no in zip(
                    df["product_id"],
                    df["description"],
                    df["image_url"],
                    df["label"],
                    df["yes_count"],
                    df["no_count"],
                    strict=True,
                )
            ]
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"rows": rows}))
        return generators

    def _generate_examples(self, rows: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for row in rows:
            image = None
            if row["image_path"]:
                path = Path(row["image_path"])
                # Bytes, not the path, so the image travels with the Arrow/Parquet files.
                # Cache objects have no suffix: name the file after the URL's (or .jpg, the common case).
                suffix = path.suffix or Path(urllib.parse.urlsplit(row["image_url"]).path).suffix or ".jpg"
                image = {"bytes": path.read_bytes(), "path": f"{row['product_id']}{suffix.lower()}"}
            yield (
                row["product_id"],
                {
                    "product_id": row["product_id"],
                    "description": row["description"],
                    "image": image,
                    "image_url": row["image_url"],
                    "label": row["label"],
                    "yes_count": row["yes_count"],
                    "no_count": row["no_count"],
                    "label_confidence": label_confidence(row["yes_count"], row["no_count"]),
                },
            )


def _fingerprint(paths: list[str | None], image_dir: str | None) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(b"\0" if p is None else Path(p).read_bytes())
        digest.update(b"\1")
    if image_dir and Path(image_dir).is_dir():
        with os.scandir(image_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_file():
                    st = entry.stat()
                    digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _check_options(**values: float) -> None:
    """Refuse option values outside their :class:`ListingsConfig` range (NaN and infinities included)."""
    meta = {f.name: f.metadata for f in fields(ListingsConfig)}
    meta["seed"] = {"min": 0}
    for name, value in values.items():
        m = meta.get(name, {})
        lo, hi = m.get("min"), m.get("max")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (lo is None or value > lo or (value == lo and not m.get("min_open")))
        ok = ok and (hi is None or value < hi or (value == hi and not m.get("max_open")))
        if not ok:
            span = (
                f"{'(' if m.get('min_open') else '['}{'-inf' if lo is None else lo}, "
                f"{'inf' if hi is None else hi}{')' if m.get('max_open') else ']'}"
            )
            raise ValueError(f"{name} must be in {span}, got {value!r}")


def build_dataset(
    train: str | Path,
    validation: str | Path | None = None,
    test: str | Path | None = None,
    *,
    image_dir: str | Path | None = None,
    fetch_images: bool = False,
    validation_size: float = 0.1,
    seed: int = 42,
    cache_dir: str | Path | None = None,
    max_workers: int = 16,
    image_cache_dir: str | Path | None = None,
    image_timeout: float = 10.0,
    image_retries: int = 3,
    allow_private_networks: bool = False,
    progress: bool = True,
    force: bool = False,
) -> datasets.DatasetDict:
    """Validate the TSV(s), attach images and build a ``DatasetDict`` with :data:`LISTING_FEATURES`.

    Splits: ``train`` plus ``validation`` (from its TSV, or carved from train: seeded, stratified,
    ``validation_size``; ``validation_size=0`` disables it) plus ``test`` when given. Images are taken
    from ``<image_dir>/<product_id>.<jpg|jpeg|png|webp>``; with ``fetch_images`` the others are
    downloaded from ``image_url`` into ``image_cache_dir`` (default: ``<cache_dir>/spamguard_images``).
    Listings without a usable image get ``image=None``. Fetching refuses loopback, private and other
    non-public addresses unless ``allow_private_networks`` (see :mod:`hf_spamguard.data.images`); a
    ``product_id`` that would lead outside ``image_dir`` (``../x``, an absolute path) has no local image.

    The returned DatasetDict has a ``build_report`` attribute (:class:`BuildReport`: label/vote
    disagreements, one image status row per listing), which :func:`save_dataset` writes next to the
    data. Raises :class:`DataValidationError` for invalid input and ``ValueError`` for an option out of
    range (``validation_size`` in [0, 1), ``max_workers`` ≥ 1, ``image_timeout`` > 0, ``image_retries``
    ≥ 0, ``seed`` ≥ 0), before reading anything.
    """
    _check_options(
        validation_size=validation_size,
        max_workers=max_workers,
        image_timeout=image_timeout,
        image_retries=image_retries,
        seed=seed,
    )
    for name, p in (("train", train), ("validation", validation), ("test", test)):
        if p is not None and not Path(p).is_file():
            raise FileNotFoundError(f"{p}: {name} TSV not found")
    cache_root = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE)
    if image_cache_dir is None:
        image_cache_dir = cache_root / "spamguard_images"
    paths = [str(Path(p).resolve()) if p is not None else None for p in (train, validation, test)]
    image_dir_s = str(Path(image_dir).resolve()) if image_dir is not None else None
    builder = ListingsBuilder(
        cache_dir=str(cache_root),
        dataset_name="spamguard_listings",
        train=paths[0],
        validation=paths[1],
        test=paths[2],
        image_dir=image_dir_s,
        fetch_images=bool(fetch_images),
        validation_size=float(validation_size),
        seed=int(seed),
        max_workers=int(max_workers),
        image_cache_dir=str(Path(image_cache_dir).resolve()),
        image_timeout=float(image_timeout),
        image_retries=int(image_retries),
        allow_private_networks=bool(allow_private_networks),
        progress=bool(progress),
        fingerprint=_fingerprint(paths, image_dir_s),
    )
    mode = datasets.DownloadMode.FORCE_REDOWNLOAD if force else datasets.DownloadMode.REUSE_DATASET_IF_EXISTS
    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        builder.download_and_prepare(download_mode=mode)
        dd = builder.as_dataset()
    finally:
        if not progress and was_enabled:
            datasets.enable_progress_bars()
    recorded = read_json(Path(builder.cache_dir, BUILDER_REPORT_FILE))
    report = BuildReport.from_dict(recorded) if recorded is not None else BuildReport()
    # Order splits as users expect them, whatever order datasets stored them in.
    dd = datasets.DatasetDict({s: dd[s] for s in ("train", "validation", "test") if s in dd})
    dd.build_report = report
    return dd


def build_synthetic_dataset(raw_dir: str | os.PathLike[str], *, n: int = 300, seed: int = 0) -> Any:
    """The synthetic listings (:func:`hf_spamguard.data.synthetic.write_demo`, TSVs + photos written into
    ``raw_dir``) built into a ``DatasetDict`` with train / validation / test: the demo's and the tiny
    training config's dataset."""
    from hf_spamguard.data.synthetic import write_demo

    raw = write_demo(raw_dir, n=n, seed=seed)
    return build_dataset(
        train=raw / "train.tsv",
        validation=raw / "validation.tsv",
        test=raw / "test.tsv",
        image_dir=raw / "images",
        progress=False,
    )
