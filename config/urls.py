from __future__ import annotations

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from bundles.views import BundleLinksView, LinkDownloadView
from config.health import healthz, readyz, workers
from config.metrics import metrics_view
from credentials import views as creds
from demos import share_views
from demos import views as demos
from jobs.api import views as jobs
from jobs.api.stream import JobEventsTokenView, job_events_stream
from webhooks import views as hooks

urlpatterns = [
    path("v1/jobs", jobs.JobListCreateView.as_view(), name="job-list"),
    path("v1/jobs/<str:job_id>", jobs.JobDetailView.as_view(), name="job-detail"),
    path("v1/jobs/<str:job_id>/cancel", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("v1/jobs/<str:job_id>/input", jobs.JobInputView.as_view(), name="job-input"),
    path("v1/jobs/<str:job_id>/rerun-chunks", jobs.JobRerunView.as_view(), name="job-rerun"),
    path("v1/jobs/<str:job_id>/rebuild-bundle", jobs.JobRebuildBundleView.as_view(), name="job-rebuild-bundle"),
    path("v1/jobs/<str:job_id>/bundle", BundleLinksView.as_view(), name="job-bundle"),
    path("v1/jobs/<str:job_id>/events", job_events_stream, name="job-events"),
    path("v1/jobs/<str:job_id>/events/token", JobEventsTokenView.as_view(), name="job-events-token"),
    path("v1/events", jobs.EventListView.as_view(), name="event-list"),
    path("v1/links/<str:token>", LinkDownloadView.as_view(), name="link-download"),
    path("v1/webhook-endpoints", hooks.EndpointListCreateView.as_view(), name="endpoint-list"),
    path("v1/webhook-endpoints/<str:endpoint_id>", hooks.EndpointDetailView.as_view(), name="endpoint-detail"),
    path("v1/webhook-endpoints/<str:endpoint_id>/rotate-secret", hooks.EndpointRotateView.as_view(),
         name="endpoint-rotate"),
    path("v1/webhook-endpoints/<str:endpoint_id>/test", hooks.EndpointTestView.as_view(), name="endpoint-test"),
    path("v1/webhook-endpoints/<str:endpoint_id>/deliveries", hooks.EndpointDeliveriesView.as_view(),
         name="endpoint-deliveries"),
    path("v1/credentials", creds.CredentialListCreateView.as_view(), name="credential-list"),
    path("v1/credentials/<str:credential_id>", creds.CredentialDetailView.as_view(), name="credential-detail"),
    path("v1/credentials/<str:credential_id>/rotate", creds.CredentialRotateView.as_view(), name="credential-rotate"),
    path("v1/api-keys", jobs.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("v1/api-keys/<str:key_id>", jobs.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("v1/demos", demos.DemoListCreateView.as_view(), name="demo-list"),
    path("v1/demos/<str:demo_id>", demos.DemoDetailView.as_view(), name="demo-detail"),
    path("v1/demos/<str:demo_id>/refresh", demos.DemoRefreshView.as_view(), name="demo-refresh"),
    path("v1/demos/<str:demo_id>/deploy-hook", demos.DeployHookView.as_view(), name="demo-deploy-hook"),
    path("v1/hooks/<str:token>", demos.DeployHookCallView.as_view(), name="demo-hook-call"),
    path("v1/demos/<str:demo_id>/shares", demos.ShareListCreateView.as_view(), name="demo-shares"),
    path("v1/demos/<str:demo_id>/shares/<str:share_id>", demos.ShareDetailView.as_view(), name="demo-share"),
    path("share/<str:token>", share_views.share_page, name="share-page"),
    path("share/<str:token>/<int:chunk>/<str:name>", share_views.share_file, name="share-file"),
    path("v1/demos/<str:demo_id>/latest", demos.DemoLatestView.as_view(), name="demo-latest"),
    path("v1/demos/<str:demo_id>/versions", demos.VersionListView.as_view(), name="demo-versions"),
    path("v1/demos/<str:demo_id>/versions/<str:number>", demos.VersionDetailView.as_view(), name="demo-version"),
    path("v1/demos/<str:demo_id>/versions/<str:number>/publish", demos.VersionPublishView.as_view(),
         name="demo-version-publish"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    # The split view serves its init script as a file (?script=), so the page needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[]), name="docs"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("readyz/workers", workers, name="readyz-workers"),
    path("metrics", metrics_view, name="metrics"),
]
