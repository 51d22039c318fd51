from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from cdp.api import views

router = DefaultRouter(trailing_slash="/?")
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("sources", views.SourceViewSet, basename="source")
router.register("events", views.EventViewSet, basename="event")
router.register("rejected-messages", views.RejectedMessageViewSet, basename="rejected-message")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *router.urls,
]
