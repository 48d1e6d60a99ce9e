from django.urls import path

from . import views

app_name = "classifier"
urlpatterns = [
    path("training-images/<int:pk>/image", views.training_image, name="training-image"),
]
