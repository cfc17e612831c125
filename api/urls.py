from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script at docs/?script, so the page has no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/docs.html"), name="swagger-ui"),
    path("endpoints/", views.EndpointList.as_view()),
    path("jobs/", views.JobList.as_view()),
    path("jobs/<str:name>/", views.JobDetail.as_view()),
    path("jobs/<str:name>/graph/", views.JobGraph.as_view()),
    path("submissions/", views.SubmissionList.as_view()),
    path("submissions/<uuid:uuid>/", views.SubmissionDetail.as_view()),
    path("submissions/<uuid:uuid>/graph/", views.SubmissionGraph.as_view()),
    path("submissions/<uuid:uuid>/nodes/", views.NodeList.as_view()),
    path("submissions/<uuid:uuid>/results/", views.ResultList.as_view()),
    path("submissions/<uuid:uuid>/history/", views.HistoryList.as_view()),
    path("submissions/<uuid:uuid>/messages/", views.MessageList.as_view()),
    path("submissions/<uuid:uuid>/results/<int:result_id>/", views.ResultDownload.as_view()),
    path("submissions/<uuid:uuid>/archive/", views.SubmissionArchive.as_view()),
    path("submissions/<uuid:uuid>/ro-crate/", views.SubmissionCrate.as_view()),
    path("submissions/<uuid:uuid>/cancel/", views.Cancel.as_view()),
    path("submissions/<uuid:uuid>/pause/", views.Pause.as_view()),
    path("submissions/<uuid:uuid>/resume/", views.Resume.as_view()),
    path("submissions/<uuid:uuid>/nodes/<str:key>/restart/", views.Restart.as_view()),
    path("submissions/<uuid:uuid>/nodes/<str:key>/input/", views.Input.as_view()),
    path("submissions/<uuid:uuid>/nodes/<str:key>/log/", views.Log.as_view()),
    path("batches/<uuid:uuid>/", views.BatchDetail.as_view()),
    path("jobtimes/", views.JobTimes.as_view()),
]
