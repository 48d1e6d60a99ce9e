"""What ads tells the apps above it, which it never imports (layers point down only)."""

from django.dispatch import Signal

# Sent once an ad's rows are committed and its photos need classifying: ``ad_ids``.
# Moderation routes the ads (``moderation.pipeline``).
classification_requested = Signal()
