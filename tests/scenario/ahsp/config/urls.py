from django.contrib.auth import views as auth_views
from django.urls import path

from core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("projects/<int:pk>/", views.project_detail, name="project_detail"),
    path("projects/<int:pk>/items/", views.add_item, name="add_item"),
    path("health/", views.health, name="health"),
]

# 500s say what failed (connection vs query), so the load test can count failures by kind.
handler500 = "core.views.server_error"
