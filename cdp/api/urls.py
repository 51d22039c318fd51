from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from cdp.api import delivery, destinations, people, views, xray
from cdp.api.errors import unknown_endpoint

router = DefaultRouter(trailing_slash="/?")
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("sources", views.SourceViewSet, basename="source")
router.register("events", xray.EventXrayViewSet, basename="xray")  # first: events/xray/ is no event id
router.register("events", views.EventViewSet, basename="event")
router.register("rejected-messages", views.RejectedMessageViewSet, basename="rejected-message")
router.register("destination-types", destinations.DestinationTypeViewSet, basename="destination-type")
router.register("destinations", destinations.DestinationViewSet, basename="destination")
router.register("subscriptions", destinations.SubscriptionViewSet, basename="subscription")
router.register("destinations", delivery.DestinationDeliveryViewSet, basename="destination-delivery")
router.register("dead-letters", delivery.DeadLetterViewSet, basename="dead-letter")
router.register("jobs", delivery.JobViewSet, basename="job")
router.register("members", people.MemberViewSet, basename="member")
router.register("invitations", people.InvitationViewSet, basename="invitation")
router.register("tokens", people.TokenViewSet, basename="token")
router.register("audit-log", people.AuditEntryViewSet, basename="audit-entry")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *router.urls,
    re_path(r"^(?P<path>.*)$", unknown_endpoint),
]
