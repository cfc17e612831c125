"""Admin screens for runs: read-only views of submissions and batches.

Runs change only through ``execution.states`` (and the engine above it), so
nothing here can add or edit a submission, a node or a status.
"""
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from . import documents, engine, retention
from .models import Batch, Message, Node, PeriodicSubmission, Result, Submission
from .states import SubmissionStatus


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows rows and offers no way to add, change or delete them."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        # Listed explicitly because the form factory refuses non-editable fields such as uuid.
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class NodeInline(ReadOnlyInline):
    model = Node
    fields = ("key", "task", "status", "attempt", "exit_code", "started_at", "finished_at", "image_digest", "message")


class ResultInline(ReadOnlyInline):
    model = Result
    fields = ("name", "size", "node", "file_link")

    @admin.display(description="file")
    def file_link(self, obj):
        if not obj.file:
            return "-"
        # Results are private files, served only through the API's download (staff may download any);
        # storage URLs such as /media/… are not served at all.
        return format_html('<a href="{}">download</a>', documents.result_url(obj))


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("created_at", "level", "node", "text")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    inlines = (NodeInline, ResultInline, MessageInline)
    list_display = ("uuid", "job", "status", "submission_name", "user", "created_at", "finished_at", "results_page")
    list_filter = ("status", "job")
    list_select_related = ("job", "user")
    search_fields = ("uuid", "submission_name", "email")
    date_hierarchy = "created_at"
    actions = ("cancel_submissions",)
    readonly_fields = ("results_page",)

    @admin.display(description="Results page")
    def results_page(self, submission):
        return format_html('<a href="/submissions/{}/">open</a>', submission.uuid)

    @admin.action(description="Cancel selected submissions")
    def cancel_submissions(self, request, queryset):
        cancelled = sum(engine.cancel(pk, reason=f"cancelled by {request.user.get_username()} in admin") for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Cancelled {cancelled} submission(s); the others had already finished.")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a run that workers are still executing would pull rows from under them.
        if obj is not None and obj.status in SubmissionStatus.ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        """Delete one finished submission with its stored files (a plain delete would leave them behind)."""
        retention.delete_submissions(Submission.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        """Delete the finished submissions of ``queryset``; keep the active ones."""
        active = queryset.filter(status__in=SubmissionStatus.ACTIVE).count()
        retention.delete_submissions(queryset)
        if active:
            self.message_user(request, f"Kept {active} submission(s) that are still active; cancel them first.", messages.WARNING)


class BatchSubmissionInline(ReadOnlyInline):
    model = Submission
    fields = ("uuid", "job", "status", "submission_name", "created_at")
    show_change_link = True


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    inlines = (BatchSubmissionInline,)
    list_display = ("uuid", "created_at", "submission_count")
    search_fields = ("uuid",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(submission_count=Count("submissions"))

    @admin.display(description="submissions", ordering="submission_count")
    def submission_count(self, obj):
        return obj.submission_count

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PeriodicSubmission)
class PeriodicSubmissionAdmin(admin.ModelAdmin):
    list_display = ("job", "every_minutes", "enabled", "next_run_at", "last_submission", "last_error")
    list_filter = ("enabled", "job")
    list_editable = ("enabled",)
    raw_id_fields = ("last_submission",)
    readonly_fields = ("last_submission", "last_error")
