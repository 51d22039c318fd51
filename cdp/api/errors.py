"""One error shape for the whole API: `{"code": ..., "message": ...}` (plus `fields` for invalid input)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# The same words whether the object never existed or belongs to another workspace: a 404 must not
# tell a caller which ids exist elsewhere.
NOT_FOUND_MESSAGE = "Not found: there is no such object in your workspaces."
NOT_AUTHENTICATED_MESSAGE = (
    "Send `Authorization: Bearer <token>`; create a token with `python manage.py create_api_token <username>`."
)


class ErrorSerializer(serializers.Serializer):
    """What every failed request answers (documents the error responses in the schema)."""

    code = serializers.CharField(help_text="Stable, machine-readable: invalid, not_found, permission_denied, ...")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For `invalid`: the problems of each field.",
    )


def _first_problem(detail: Any, path: str = "") -> str | None:
    """`name: This field is required.` for the first problem found in a validation error."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            label = key if key != "non_field_errors" else ""
            found = _first_problem(value, f"{path}.{label}" if path and label else label or path)
            if found:
                return found
        return None
    if isinstance(detail, list):
        for value in detail:
            found = _first_problem(value, path)
            if found:
                return found
        return None
    return f"{path}: {detail}" if path else str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as `{"code": ..., "message": ...}`, with per-field details for validation errors."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(NOT_FOUND_MESSAGE)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, exceptions.NotAuthenticated):
        # Changed in place: DRF has put the WWW-Authenticate header on this very exception.
        exc.detail = exceptions.ErrorDetail(NOT_AUTHENTICATED_MESSAGE, code="not_authenticated")
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = _first_problem(fields) or "The request has invalid fields."
        response.data = {"code": "invalid", "message": message, "fields": fields}
    else:
        codes = exc.get_codes()
        response.data = {"code": codes if isinstance(codes, str) else "error", "message": str(exc.detail)}
    return response


def unknown_endpoint(request: HttpRequest, path: str = "") -> JsonResponse:
    """Paths under /api/v1/ that match nothing answer JSON too, not the dashboard's HTML 404."""
    return JsonResponse(
        {"code": "not_found", "message": f"No API endpoint at {request.path}; see /api/v1/schema/."}, status=404
    )
