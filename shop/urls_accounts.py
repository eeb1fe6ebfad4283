"""Account URLs: ``signup``, ``login`` and ``logout``, without a namespace.

Include under ``accounts/``; ``settings.LOGIN_URL = "login"`` points here. Logging out is a
POST (Django 5), sent by the form in the page header.
"""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("signup/", views.SignUpView.as_view(), name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
