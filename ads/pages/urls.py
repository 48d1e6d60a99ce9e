"""The sellers' pages and their sign-in, sign-up and sign-out (namespace ``sellers``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views as pages

app_name = "sellers"

urlpatterns = [
    path("", pages.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="sellers/login.html",
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    # Django's LogoutView accepts POST only: a link or a prefetch cannot sign anyone out.
    path(
        "accounts/logout/", auth_views.LogoutView.as_view(next_page="sellers:login"), name="logout"
    ),
    path("accounts/signup/", pages.signup, name="signup"),
    path("ads/", pages.my_ads, name="my-ads"),
    path("ads/new/", pages.ad_new, name="ad-new"),
    path("ads/<int:pk>/", pages.ad_detail, name="ad"),
    path("ads/<int:pk>/edit/", pages.ad_edit, name="ad-edit"),
]
