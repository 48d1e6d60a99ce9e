"""The classifier's admin: training images (the training and evaluation sets, exclusion,
suspected label errors), the model registry (training, progress, evaluation side by side
with the active version, promotion and rollback, each category's evidence to publish alone,
also on the categories page) and predictions.

Thin: every button and action calls ``classifier.services`` or ``classifier.services.retraining``.
Buttons are POSTs (CSRF-protected) and check their permission: relabelling and excluding
need ``classifier.change_trainingimage``, training and label checks
``classifier.train_modelversion``, promotion and rollback
``classifier.promote_modelversion``; the Moderators group has none of them.
"""

from . import evidence, records, registry, training_images  # noqa: F401  (each registers its admin)
