"""Workflows of the classifier: labelled photos (imported, or from moderators' decisions),
the training and evaluation sets, training, evaluating, serving; one module per concern.

Commands, admin actions and tasks call these; they hold no logic of their own. Retraining
from the admin (the training queue, promotion, rollback, label checks) is in
``retraining``, comparing versions in ``comparing``, a candidate in shadow in ``shadow``.
TensorFlow is imported only inside training; serving uses LiteRT.
"""

from .datasets import (
    CategoryPhotos,
    LabelledSet,
    evaluation_set,
    fingerprint,
    folder_set,
    labelled_set,
    photos_per_category,
    require_enough_photos,
    too_few_message,
    trainable_images,
    training_features,
    usable_images,
)
from .errors import ClassifierError, TrainingCancelled
from .importing import ImportReport, import_images, read_folder, subsets_for
from .labels import (
    ExportReport,
    exclude_images,
    export_dataset,
    include_images,
    label_photos,
    labels_of,
    relabel_as_suspected,
    training_set_summary,
    unlabel,
)
from .photo_uploads import import_uploads
from .serving import (
    Classification,
    classify_features,
    classify_images,
    evaluate_version,
    forget_loaded_models,
    load_predictor,
    measure_on_evaluation_set,
    predictor_for,
    resolve_version,
)
from .training import (
    default_training_config,
    describe_training,
    start_version,
    train_and_package,
    train_version,
    training_data,
)

__all__ = [
    "CategoryPhotos",
    "Classification",
    "ClassifierError",
    "ExportReport",
    "ImportReport",
    "LabelledSet",
    "TrainingCancelled",
    "classify_features",
    "classify_images",
    "default_training_config",
    "describe_training",
    "evaluate_version",
    "evaluation_set",
    "exclude_images",
    "export_dataset",
    "fingerprint",
    "folder_set",
    "forget_loaded_models",
    "import_images",
    "import_uploads",
    "include_images",
    "label_photos",
    "labels_of",
    "labelled_set",
    "load_predictor",
    "measure_on_evaluation_set",
    "photos_per_category",
    "predictor_for",
    "read_folder",
    "relabel_as_suspected",
    "require_enough_photos",
    "resolve_version",
    "start_version",
    "subsets_for",
    "train_and_package",
    "train_version",
    "too_few_message",
    "trainable_images",
    "training_data",
    "training_features",
    "training_set_summary",
    "unlabel",
    "usable_images",
]
