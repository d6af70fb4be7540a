"""Review moderation: teacher labelling, a distilled multi-label student, streaming batch scoring.

One concept per module: :mod:`~hf_spamguard.reviews.data` (readers), :mod:`~.config` (the commands' configs), :mod:`~.synthetic` (the generated
review set), :mod:`~.teacher` (the teacher's per-label probabilities), :mod:`~.labeling` (the resumable
labelling job), :mod:`~.student` (the distilled student), :mod:`~.distill` (training it and its
report), :mod:`~.batch` (``spamguard score``).

>>> from hf_spamguard.reviews import load_student
>>> student = load_student("org/review-student")  # doctest: +SKIP
>>> student(["Visit www.promo.example for 50% off!"])  # doctest: +SKIP

The function ``distill`` is not re-exported here, as its name is the module's: import it from
:mod:`hf_spamguard.reviews.distill`. Names are imported on first use, so that ``spamguard score`` (and
its worker processes) never load the teacher's torch stack, and ``import hf_spamguard.reviews`` costs
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_spamguard.lazy import lazy_exports

_EXPORTS = {
    "REVIEW_COLUMNS": "data",
    "count_reviews": "data",
    "input_fingerprint": "data",
    "iter_reviews": "data",
    "read_place_metadata": "data",
    "read_reviews": "data",
    "resolve_review_files": "data",
    "unlabellable_reason": "data",
    "GENERATED_LABELS": "synthetic",
    "generate_reviews": "synthetic",
    "google_local_id": "synthetic",
    "iter_generated_reviews": "synthetic",
    "write_generated_google_local": "synthetic",
    "write_generated_reviews": "synthetic",
    "TeacherLabeler": "teacher",
    "teacher_fingerprint": "teacher",
    "LabelingConfig": "config",
    "ScoreConfig": "config",
    "LabelingResult": "labeling",
    "label_reviews": "labeling",
    "load_labels": "labeling",
    "merge_shards": "labeling",
    "read_manifest": "labeling",
    "Student": "student",
    "load_student": "student",
    "multilabel_split": "student",
    "DistillConfig": "config",
    "parse_precision_targets": "config",
    "student_vs_teacher": "distill",
    "ScoreResult": "batch",
    "score_frame": "batch",
    "score_reviews": "batch",
    "write_score_report": "batch",
}

__all__ = [
    "DistillConfig",
    "GENERATED_LABELS",
    "LabelingConfig",
    "LabelingResult",
    "REVIEW_COLUMNS",
    "ScoreConfig",
    "ScoreResult",
    "Student",
    "TeacherLabeler",
    "count_reviews",
    "generate_reviews",
    "google_local_id",
    "input_fingerprint",
    "iter_generated_reviews",
    "iter_reviews",
    "label_reviews",
    "load_labels",
    "load_student",
    "merge_shards",
    "multilabel_split",
    "parse_precision_targets",
    "read_manifest",
    "read_place_metadata",
    "read_reviews",
    "resolve_review_files",
    "score_frame",
    "score_reviews",
    "student_vs_teacher",
    "teacher_fingerprint",
    "unlabellable_reason",
    "write_generated_google_local",
    "write_generated_reviews",
    "write_score_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hf_spamguard.reviews.batch import ScoreResult, score_frame, score_reviews, write_score_report
    from hf_spamguard.reviews.config import (
        DistillConfig,
        LabelingConfig,
        ScoreConfig,
        parse_precision_targets,
    )
    from hf_spamguard.reviews.data import (
        REVIEW_COLUMNS,
        count_reviews,
        input_fingerprint,
        iter_reviews,
        read_place_metadata,
        read_reviews,
        resolve_review_files,
        unlabellable_reason,
    )
    from hf_spamguard.reviews.distill import student_vs_teacher
    from hf_spamguard.reviews.labeling import (
        LabelingResult,
        label_reviews,
        load_labels,
        merge_shards,
        read_manifest,
    )
    from hf_spamguard.reviews.student import Student, load_student, multilabel_split
    from hf_spamguard.reviews.synthetic import (
        GENERATED_LABELS,
        generate_reviews,
        google_local_id,
        iter_generated_reviews,
        write_generated_google_local,
        write_generated_reviews,
    )
    from hf_spamguard.reviews.teacher import TeacherLabeler, teacher_fingerprint
