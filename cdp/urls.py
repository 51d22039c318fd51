from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from cdp.delivery.prometheus import metrics_view


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("cdp.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("dashboard.urls")),
]
