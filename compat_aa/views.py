"""A_A's REST endpoints, answered from Sluice's catalogue and submissions.

Each view answers as the A_A view of the same URL did (A_A's api.py and
project urls.py); the deliberate differences are listed in
docs/migrating-from-aa.md. Submitting goes through ``execution.intake.accept``
as ``POST /api/submissions/`` does, so validation, quotas, priorities,
idempotency and permissions are Sluice's.
"""
import math
import uuid as uuid_module

from django.conf import settings
from django.core.validators import EmailValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import FileResponse
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import TextFormParser, TextMultiPartParser
from execution import idempotency, intake, stats
from execution.errors import UploadTooLarge
from execution.models import Batch, Result, Submission
from jobs.models import Job

from . import serializers
from .errors import Refused, handle


# The fields A_A's SubmissionDetails.post pops before the rest are read as parameters (its __prepare_data).
REQUIRED_FIELDS = ("submission_name", "email", "job")
# As Sluice's own API (api.serializers.SubmitFields): a job name, or several comma-separated.
JOB_FIELD_LIMIT = 2000
FORMATS = ("json", "api")  # A_A also offered its browsable page (api); both answer JSON here


class AAView(APIView):
    """JSON only, A_A's error shapes, and ``?format=`` as A_A's URLs took it."""

    renderer_classes = [JSONRenderer]
    schema = None  # not part of Sluice's OpenAPI document (/api/schema/): A_A published none

    def get_exception_handler(self):
        return handle

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        wanted = request.query_params.get("format")
        if wanted is not None and wanted not in FORMATS:
            raise NotFound()  # DRF answers an unknown ?format= with 404 Not found.


def parse_uuid(text):
    try:
        return uuid_module.UUID(text)
    except ValueError:
        raise NotFound() from None


def visible_submission(request, text):
    """The submission ``text`` names if the caller may see it (Sluice's rule); 404 otherwise, never 403."""
    submission = Submission.objects.select_related("job").filter(uuid=parse_uuid(text)).first()
    if submission is None or not submission.visible_to(request.user):
        raise NotFound()
    return submission


class Endpoints(AAView):
    """``endpoints/``: for each job that takes submissions, the URI template A_A printed for it."""

    def get(self, request, **kwargs):
        uris = []
        for job in Job.accepting().prefetch_related("steps__task__parameters").order_by("pk"):
            uri = f"/submission/&job={job.aa_label}&submission_name=[STRING]&email=[EMAIL_STRING]&input_data=[FILE]"
            for parameter in job.parameters():
                uri += f"&{parameter.aa_field}=" + ("[TRUE/FALSE]" if parameter.bool_valued else "[VALUE]")
            uris.append(uri)
        return Response({"jobs": uris})


class JobPages(PageNumberPagination):
    page_size = 10  # A_A's REST_FRAMEWORK PAGE_SIZE


class JobList(AAView):
    """``job/``: A_A's paginated ``{"count", "next", "previous", "results": [{"pk", "name"}]}``, of the jobs that take submissions."""

    def get(self, request, **kwargs):
        paginator = JobPages()
        page = paginator.paginate_queryset(Job.accepting().order_by("pk"), request, view=self)
        return paginator.get_paginated_response([{"pk": job.pk, "name": job.aa_label} for job in page])


class JobDetail(AAView):
    """``job/<name>``: the job's steps and each task's configuration."""

    def get(self, request, name, **kwargs):
        job = Job.objects.filter(name=name).first() or Job.objects.filter(aa_name=name).first()
        if job is None:
            raise NotFound()
        return Response(serializers.job_detail(job))


class JobTimes(AAView):
    """``jobtimes/``: ``{job name: typical run time in whole seconds}`` over completed submissions.

    A_A gave the mode of a kernel density estimate; Sluice's figure is the median
    (``execution.stats.job_times``), rounded down as A_A's was.
    """

    def get(self, request, **kwargs):
        return Response({row["job"]: math.floor(row["median_seconds"]) for row in stats.job_times()})


class SubmissionCreate(AAView):
    """``submission/`` (and ``submission.json``, ``submission/.json``): POST a multipart form, as A_A's clients do.

    A_A took forms only (MultiPartParser, FormParser), and so does this view; the
    answer is 201 ``{"UUID": <batch>, "submission_name": ...}``: A_A made one batch
    per POST, and its clients poll ``submission/<UUID>`` for the batch.
    """

    parser_classes = [TextMultiPartParser, TextFormParser]

    def get(self, request, **kwargs):
        raise NotFound()  # A_A has no list of submissions

    def post(self, request, **kwargs):
        data = request.data
        values = {key: data.getlist(key)[-1] for key in data.keys()} if hasattr(data, "getlist") else {}
        if any(name not in values for name in REQUIRED_FIELDS):
            raise Refused(status.HTTP_400_BAD_REQUEST, "Input does not contain all required fields")
        files = [name for name, value in values.items() if name != "input_data" and not isinstance(value, str)]
        not_text = {name: ["must be a form field, not a file"] for name in files}
        if not_text:
            raise Refused(status.HTTP_400_BAD_REQUEST, not_text)
        if len(values["job"]) > JOB_FIELD_LIMIT:
            message = f"Ensure this value has at most {JOB_FIELD_LIMIT} characters (it has {len(values['job'])})."
            raise Refused(status.HTTP_400_BAD_REQUEST, {"job": [message]})
        names = [name.strip() for name in values["job"].split(",")]
        jobs = jobs_to_run(names, values)
        taken = aa_fields(jobs)
        # A_A ignored fields that are no job's parameter (its test_submission_ignores_undefined_params).
        params = {taken[key]: value for key, value in values.items() if key in taken}
        upload = upload_of(request, values)
        form_errors(values, upload)
        fields = {name: values[name] for name in REQUIRED_FIELDS}
        ip = intake.client_ip(request.META)
        header = request.headers.get("Idempotency-Key")
        key = None if header is None else idempotency.parse(header, request.user, ip, idempotency.fingerprint(fields, params, upload))
        with transaction.atomic():
            made = intake.accept(
                ",".join(job.name for job in jobs), params=params, input_data=upload, submission_name=values["submission_name"], email=values["email"],
                user=request.user, ip=ip, key=key,
            )
            batch = batch_of(made)
        headers = {"Idempotent-Replayed": "true"} if made.replayed else {}
        body = {"UUID": str(batch.uuid), "submission_name": values["submission_name"]}
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


def jobs_to_run(names, values):
    """The jobs ``names`` name, refused as A_A refused them (its api.py post): unknown, disabled, without steps, a parameter missing.

    A_A required every parameter of every step; Sluice requires those that are
    required and have no default (the others take their defaults).
    """
    jobs = []
    for name in names:
        job = Job.for_submission().filter(name=name).first() or Job.for_submission().filter(aa_name=name).first()
        if job is None:
            raise Refused(status.HTTP_400_BAD_REQUEST, "Job name supplied does not exist")
        jobs.append(job)
    for job in jobs:
        if not job.runnable:
            raise Refused(status.HTTP_403_FORBIDDEN, f"{job.aa_label} is present but currently disabled.")
        if not job.steps.exists():
            raise Refused(status.HTTP_400_BAD_REQUEST, f"Job Requested: {job.aa_label} appears to have no Steps")
        needed = [parameter for parameter in job.parameters() if parameter.required and parameter.default == ""]
        missing = [parameter.aa_field for parameter in needed if parameter.aa_field not in values and parameter.rest_name not in values]
        if missing:
            raise Refused(
                status.HTTP_400_BAD_REQUEST,
                f"Required Parameter for {job.aa_label} Missing.You are missing a required parameter in your web form submission: "
                f"{', '.join(missing)}. GET /analytics_automated/endpoints to discover all required options",
            )
    return jobs


def aa_fields(jobs):
    """Form field -> REST name for the jobs' parameters: the REST name, and the field A_A's clients send where it differs."""
    fields = {}
    for job in jobs:
        for parameter in job.parameters():
            fields[parameter.rest_name] = fields[parameter.aa_field] = parameter.rest_name
    return fields


def upload_of(request, values):
    """The upload: the multipart file ``input_data``, or (a Sluice leniency) its text in a plain form field."""
    upload = request.FILES.get("input_data")
    if upload is not None:
        if upload.size > settings.SLUICE_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(upload.size, settings.SLUICE_MAX_UPLOAD_BYTES)
        return upload
    text = values.get("input_data")
    return text.encode("utf-8") if text else None


def form_errors(values, upload):
    """Refuse what A_A's SubmissionForm refused, with Django's form messages: a blank name or e-mail, a bad e-mail, no upload."""
    errors = {}
    for name in ("submission_name", "email"):
        if not values[name].strip():
            errors[name] = ["This field is required."]
    if "email" not in errors:
        try:
            EmailValidator()(values["email"])
        except DjangoValidationError:
            errors["email"] = ["Enter a valid email address."]
    if upload is None:
        errors["input_data"] = ["This field is required."]
    if errors:
        raise Refused(status.HTTP_400_BAD_REQUEST, errors)


def batch_of(made):
    """The batch of what was accepted: Sluice makes one for several jobs; for one job, one is made here, as A_A did.

    A replayed request (Idempotency-Key) finds the batch made the first time.
    """
    if isinstance(made, Batch):
        return made
    if made.batch_id is not None:
        return Batch.objects.get(pk=made.batch_id)
    batch = Batch.objects.create()
    Submission.objects.filter(pk=made.pk).update(batch=batch)
    return batch


class SingleDetail(AAView):
    """``submission/single/<UUID>``: one submission's state, last message and results."""

    def get(self, request, uuid, **kwargs):
        return Response(serializers.submission_document(visible_submission(request, uuid)))


class BatchDetail(AAView):
    """``submission/<UUID>``: the batch a POST made, with the submissions in it the caller may see (none visible: 404)."""

    def get(self, request, uuid, **kwargs):
        batch = Batch.objects.filter(uuid=parse_uuid(uuid)).first()
        if batch is None:
            raise NotFound()
        submissions = [sub for sub in batch.submissions.select_related("job").order_by("id") if sub.visible_to(request.user)]
        if not submissions:
            raise NotFound()
        return Response(serializers.batch_document(batch, submissions))


class ResultFile(AAView):
    """``submissions/<UUID>/results/<id>/<name>``: a result or the upload, where ``data_path`` and ``input_file`` point."""

    def get(self, request, uuid, result_id, name="", **kwargs):
        submission = visible_submission(request, uuid)
        result = Result.objects.filter(pk=result_id, submission=submission).first()
        if result is None:
            raise NotFound()
        try:
            handle = result.file.open("rb")  # by id from storage; the name in the URL chooses nothing
        except FileNotFoundError:  # removed from storage (cleaned up) since the result was recorded
            raise NotFound() from None
        return FileResponse(handle, as_attachment=True, filename=result.name, content_type="application/octet-stream")
