from django.urls import path

from . import lists, submission_views, tokens, views

app_name = "web"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("jobs/<str:name>/", views.job_page, name="job"),
    path("submissions/", views.submission_list, name="submissions"),
    path("submissions/<uuid:uuid>/", views.submission_page, name="submission"),
    path("submissions/<uuid:uuid>/live/", views.submission_live, name="live"),
    path("submissions/<uuid:uuid>/cancel/", views.cancel, name="cancel"),
    path("submissions/<uuid:uuid>/pause/", views.pause, name="pause"),
    path("submissions/<uuid:uuid>/resume/", views.resume, name="resume"),
    path("submissions/<uuid:uuid>/nodes/<str:key>/restart/", views.restart, name="restart"),
    path("submissions/<uuid:uuid>/nodes/<str:key>/input/", views.answer, name="answer"),
    path("submissions/<uuid:uuid>/results/<int:result_id>/", views.result_preview, name="preview"),
    path("submissions/<uuid:uuid>/results/<int:result_id>/file/", views.result_file, name="result_file"),
    path("healthz", views.healthz, name="healthz"),
    path("submissions/<uuid:uuid>/nodes/", submission_views.node_list, name="nodes"),
    path("submissions/<uuid:uuid>/nodes/<str:key>/", submission_views.node_page, name="node"),
    path("submissions/<uuid:uuid>/nodes/<str:key>/restart/confirm/", submission_views.confirm_restart, name="confirm_restart"),
    path("submissions/<uuid:uuid>/cancel/confirm/", submission_views.confirm_cancel, name="confirm_cancel"),
    # Pages for daily use: the lists' live status, API tokens, the favicon.
    path("submissions/status/", lists.submission_status, name="submission_status"),
    path("account/tokens/", tokens.token_page, name="tokens"),
    path("account/tokens/<str:prefix>/revoke/", tokens.revoke, name="revoke_token"),
    path("favicon.ico", views.favicon, name="favicon"),
]
