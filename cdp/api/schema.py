"""OpenAPI generation: every operation documents the errors it can answer, in the one error shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from cdp.api.errors import ErrorSerializer

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ErrorResponsesAutoSchema(AutoSchema):
    """Adds 400/401/403/404 responses where they can happen, so clients see them in the schema."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        # A private hook of drf-spectacular (pinned in requirements.txt); the public one,
        # get_response_serializers, is replaced wholesale by @extend_schema(responses=...).
        responses = super()._get_response_bodies(direction)
        errors = {"401": "No token, or a token that is unknown or revoked."}
        is_write = self.method in _WRITE_METHODS
        if is_write or getattr(self.view, "action", None) == "list":
            errors["400"] = "Invalid input: `fields` says what is wrong with each field."
        if is_write:
            errors["403"] = "Your role in the workspace does not allow this."
        if "{" in self.path:
            errors["404"] = "No such object in your workspaces."
        for code, description in errors.items():
            if code not in responses:
                response = OpenApiResponse(ErrorSerializer, description=description)
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses
