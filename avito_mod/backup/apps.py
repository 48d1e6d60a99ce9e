from django.apps import AppConfig


class BackupConfig(AppConfig):
    name = "avito_mod.backup"
    label = "backup"
    verbose_name = "Backup and restore"
