from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0019_shadow"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="with_shipped_features",
            field=models.BooleanField(
                default=True,
                help_text="Trained on the shipped photos' features as well as the database's "
                "(services.shipped); an admin may leave them out.",
            ),
        ),
    ]
