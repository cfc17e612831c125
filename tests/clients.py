"""API clients for the people in a test, and the API's error shape."""
from rest_framework.test import APIClient


def client_for(user):
    """An API client acting as ``user`` (None: anonymous)."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def errors(response):
    """The ``errors`` of an error response, after checking it has the API's one error shape."""
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    return body["errors"]
