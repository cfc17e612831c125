"""The framework floor of bench/intake.py: what any DRF view that takes a submission must cost, at least.

``POST /bench-floor/`` validates a JSON body as a serializer (``job``, a
name) and inserts one row (a ``Batch``: a uuid and a time), answering 201
with the row's uuid, through the same middleware, authentication, parser,
renderer and server as ``POST /api/submissions/``. Sluice's own URLs stay
mounted beside it.
"""
from django.urls import include, path
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler404, handler500  # noqa: F401  (errors answer as in Sluice)
from execution.models import Batch


class FloorSerializer(serializers.Serializer):
    job = serializers.CharField(max_length=64)


class Floor(APIView):
    def post(self, request):
        given = FloorSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        row = Batch.objects.create()
        return Response({"uuid": str(row.uuid), "job": given.validated_data["job"]}, status=status.HTTP_201_CREATED)


urlpatterns = [path("bench-floor/", Floor.as_view()), path("", include("config.urls"))]
