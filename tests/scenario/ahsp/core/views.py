"""Views: login (Django's), a dashboard with a few ORM queries and an aggregate, a write endpoint."""
import os
import sys
import traceback

from django import db
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import connection, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from .models import Project, Resource, WorkItem

# The dashboard's "heavy report query" stand-in: pg_sleep for this many seconds (see REPORT.md).
DASHBOARD_SLEEP = float(os.getenv("SCENARIO_DASHBOARD_SLEEP", "0.1"))

MONEY = DecimalField(max_digits=28, decimal_places=5)
LINE_TOTAL = ExpressionWrapper(F("volume") * F("unit_price"), output_field=MONEY)
PROJECT_TOTAL = ExpressionWrapper(F("items__volume") * F("items__unit_price"), output_field=MONEY)


def home(request):
    return redirect("dashboard")


def health(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return HttpResponse("ok", content_type="text/plain")


def logout_view(request):
    logout(request)
    return redirect("login")


@login_required
def dashboard(request):
    user = request.user
    # 1. the user's projects with per-project counts and totals (one GROUP BY query)
    projects = list(
        Project.objects.filter(owner=user)
        .annotate(n_items=Count("items"), total=Sum(PROJECT_TOTAL))
        .order_by("-updated_at")[:20]
    )
    # 2. the ten most recently edited items of the user, with their resource
    recent = list(
        WorkItem.objects.filter(project__owner=user).select_related("resource", "project").order_by("-updated_at")[:10]
    )
    # 3. catalogue summary: an aggregate per category over the whole price list
    catalogue = list(Resource.objects.values("category").annotate(n=Count("id")).order_by("category"))
    # 4. grand total over all of the user's items
    grand = WorkItem.objects.filter(project__owner=user).aggregate(total=Sum(LINE_TOTAL), n=Count("id"))
    # 5. the slow report query of the real app (see SCENARIO_DASHBOARD_SLEEP)
    if DASHBOARD_SLEEP > 0:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_sleep(%s)", [DASHBOARD_SLEEP])
    return render(
        request,
        "core/dashboard.html",
        {"projects": projects, "recent": recent, "catalogue": catalogue, "grand": grand},
    )


@login_required
def project_detail(request, pk):
    project = get_object_or_404(Project, pk=pk, owner=request.user)
    items = list(project.items.select_related("resource").order_by("id")[:50])
    totals = project.items.aggregate(total=Sum(LINE_TOTAL), n=Count("id"))
    return render(request, "core/project.html", {"project": project, "items": items, "totals": totals})


@login_required
def add_item(request, pk):
    """The write endpoint: add a work item and touch the project, in one transaction."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    with transaction.atomic():
        project = get_object_or_404(Project.objects.select_for_update(), pk=pk, owner=request.user)
        resource = Resource.objects.order_by("?").only("id", "price", "name").first()
        item = WorkItem.objects.create(
            project=project,
            resource=resource,
            description=f"{resource.name} (added)",
            volume=request.POST.get("volume", "1.000"),
            unit_price=resource.price,
        )
        project.save(update_fields=["updated_at"])
    return JsonResponse({"id": item.id, "project": project.id}, status=201)


# --------------------------------------------------------------------------- failures by kind

_CONNECT_FUNCS = {"get_new_connection", "connect", "ensure_connection"}


def classify(exc, tb):
    """Name the kind of a failure: db-connect (could not get a DB connection), db-conn-lost
    (the connection broke under a query), db-error (any other DB error), app-error."""
    if isinstance(exc, (db.OperationalError, db.InterfaceError)):
        frames = {f.name for f in traceback.extract_tb(tb)} if tb else set()
        if frames & {"get_new_connection"}:
            return "db-connect"
        return "db-conn-lost"
    if isinstance(exc, db.Error):
        return "db-error"
    return "app-error"


def server_error(request):
    """handler500: a plain 500 whose headers name the failure, for the load test's tallies."""
    _, exc, tb = sys.exc_info()
    kind = classify(exc, tb) if exc is not None else "app-error"
    detail = " ".join(str(exc).split())[:200] if exc is not None else "unknown"
    body = f"500 {kind}: {type(exc).__name__ if exc else ''}: {detail}\n"
    resp = HttpResponse(body, status=500, content_type="text/plain")
    resp["X-Error-Kind"] = kind
    resp["X-Error-Detail"] = detail.encode("ascii", "replace").decode("ascii")
    return resp
