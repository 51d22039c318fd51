from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard import debugger, deliveries, destinations, mappings, people, views

app_name = "dashboard"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="dashboard/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("w/<slug:slug>/", views.workspace, name="workspace"),
    path("w/<slug:slug>/sources/", views.sources, name="sources"),
    path("w/<slug:slug>/sources/new/", views.source_new, name="source-new"),
    path("w/<slug:slug>/sources/<int:source_id>/", views.source_detail, name="source"),
    path("w/<slug:slug>/sources/<int:source_id>/rotate-key/", views.rotate_key, name="rotate-key"),
    path("w/<slug:slug>/sources/<int:source_id>/volume/", views.source_volume, name="source-volume"),
    path("w/<slug:slug>/sources/<int:source_id>/schema/", views.source_schema, name="source-schema"),
    path("w/<slug:slug>/debugger/", debugger.debugger_index, name="debugger"),
    path("w/<slug:slug>/sources/<int:source_id>/debugger/", debugger.source_debugger, name="source-debugger"),
    path(
        "w/<slug:slug>/destinations/<int:destination_id>/debugger/",
        debugger.destination_debugger,
        name="destination-debugger",
    ),
    path("w/<slug:slug>/xray/", debugger.xray_lookup, name="xray"),
    path("w/<slug:slug>/events/<int:event_id>/xray/", debugger.event_xray, name="event-xray"),
    *destinations.urlpatterns,
    *mappings.urlpatterns,
    *deliveries.urlpatterns,
    *people.urlpatterns,
]
