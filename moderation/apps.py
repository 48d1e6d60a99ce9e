from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from ads.signals import classification_requested
        from classifier.signals import serving_version_changed

        from . import pipeline

        classification_requested.connect(pipeline.on_classification_requested)
        serving_version_changed.connect(pipeline.send_back_for_rescoring)
