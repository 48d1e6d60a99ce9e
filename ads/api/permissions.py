from rest_framework.permissions import SAFE_METHODS, BasePermission


class IsSellerOrReadOnly(BasePermission):
    """Staff may look at any ad (the queryset lets them); only its seller may change it.

    Moderators change ads through the review queue, where each decision is recorded.
    """

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or obj.seller_id == request.user.pk
