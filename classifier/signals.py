"""What the classifier tells the apps above it, which it never imports."""

from django.dispatch import Signal

# Sent inside the transaction that makes ``version`` the active model (promotion or
# rollback). A receiver returns the ids of the ads it sends back to be classified by that
# version; the registry records how many.
serving_version_changed = Signal()
