"""A one-file Django project (``OOMGUARD_TEST_MIDDLEWARE=1`` adds the middleware class)."""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

import oomguard

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="oomguard-test",
    MIDDLEWARE=(
        ["oomguard.integrations.django.OomguardMiddleware"] if os.environ.get("OOMGUARD_TEST_MIDDLEWARE") == "1" else []
    )
    + ["django.middleware.common.CommonMiddleware"],
    LOGGING_CONFIG=None,
)


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    response = JsonResponse({"id": item_id, "q": request.GET.get("q")})
    response.set_cookie("seen", "1", httponly=True)
    response["X-Custom"] = "a, b"
    return response


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom from django")


def stats(request: HttpRequest) -> HttpResponse:
    return HttpResponse(json.dumps(oomguard.get_traffic().snapshot().to_json()), content_type="application/json")


urlpatterns = [
    path("", hello),
    path("items/<int:item_id>/", item),
    path("boom/", boom),
    path("_stats/", stats),
]

application = get_wsgi_application()
