"""The seed's load mix against the AHSP stand-in: log in (DB sessions), mostly the dashboard,
some project pages, a few writes, and now and then a log-out/log-in.

Every failure is named "<kind>: <detail>" so the report can count failures by kind:
  db-connect    the app could not get a database connection (e.g. "too many clients already")
  db-conn-lost  the database connection broke under a query
  db-error      any other database error
  app-error     any other exception in a view
  auth          login refused, or the session was lost (redirect to the login page)
  http-NNN      another unexpected HTTP status
  transport     no HTTP response at all (refused, reset, timeout)

Settings from the environment: SCENARIO_USERS (accounts user001.., default 100),
SCENARIO_PASSWORD, SCENARIO_WAIT_MIN / SCENARIO_WAIT_MAX (think time, seconds),
SCENARIO_HTTP_TIMEOUT (seconds).
"""
import itertools
import os
import random
import re

from locust import HttpUser, between, task

N_ACCOUNTS = int(os.getenv("SCENARIO_USERS", "100"))
PASSWORD = os.getenv("SCENARIO_PASSWORD", "ahsp-pass")
WAIT_MIN = float(os.getenv("SCENARIO_WAIT_MIN", "1"))
WAIT_MAX = float(os.getenv("SCENARIO_WAIT_MAX", "3"))
HTTP_TIMEOUT = float(os.getenv("SCENARIO_HTTP_TIMEOUT", "60"))

_account = itertools.count()
PROJECT_RX = re.compile(rb'data-project="(\d+)"')


def fail_kind(resp):
    """The failure text for an unexpected response, or None if there was no response problem."""
    err = getattr(resp, "error", None)
    if err is not None and not resp.status_code:
        detail = re.sub(r"port=?\d+|0x[0-9a-f]+", "", " ".join(str(err).split()))[:120]
        return f"transport: {type(err).__name__}: {detail}"
    if resp.status_code == 500:
        kind = resp.headers.get("X-Error-Kind", "app-error")
        detail = resp.headers.get("X-Error-Detail", "")
        return f"{kind}: {detail[:160]}"
    if resp.status_code == 403:
        return "auth: 403 forbidden (CSRF or permission)"
    return f"http-{resp.status_code}: unexpected status"


class AhspUser(HttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self):
        n = next(_account) % N_ACCOUNTS + 1
        self.username = f"user{n:03d}"
        self.projects = []
        self.logged_in = False
        self.login()

    # ------------------------------------------------------------------ helpers

    def csrf(self):
        return self.client.cookies.get("csrftoken", "")

    def login(self):
        with self.client.get("/accounts/login/", name="login [GET]", catch_response=True,
                             timeout=HTTP_TIMEOUT) as r:
            if r.status_code == 200:
                r.success()
            else:
                r.failure(fail_kind(r))
                return
        token = self.csrf()
        with self.client.post(
            "/accounts/login/",
            data={"username": self.username, "password": PASSWORD, "csrfmiddlewaretoken": token,
                  "next": "/dashboard/"},
            name="login [POST]", allow_redirects=False, catch_response=True, timeout=HTTP_TIMEOUT,
        ) as r:
            if r.status_code == 302 and r.headers.get("Location", "").endswith("/dashboard/"):
                r.success()
                self.logged_in = True
            elif r.status_code == 200:
                r.failure("auth: login refused (form shown again)")
            else:
                r.failure(fail_kind(r))

    def check_page(self, r, ok=200):
        """Mark a page response; a redirect to the login page is an auth failure."""
        if r.status_code == ok:
            r.success()
            return True
        if r.status_code == 302 and "/accounts/login/" in r.headers.get("Location", ""):
            r.failure("auth: session lost (redirected to login)")
            self.logged_in = False
            return False
        r.failure(fail_kind(r))
        return False

    # ------------------------------------------------------------------ tasks

    @task(5)
    def dashboard(self):
        if not self.logged_in:
            self.login()
            return
        with self.client.get("/dashboard/", name="dashboard", allow_redirects=False, catch_response=True,
                             timeout=HTTP_TIMEOUT) as r:
            if self.check_page(r):
                ids = PROJECT_RX.findall(r.content or b"")
                if ids:
                    self.projects = [int(i) for i in ids]

    @task(3)
    def project(self):
        if not self.logged_in or not self.projects:
            return self.dashboard()
        pk = random.choice(self.projects)
        with self.client.get(f"/projects/{pk}/", name="project", allow_redirects=False, catch_response=True,
                             timeout=HTTP_TIMEOUT) as r:
            self.check_page(r)

    @task(1)
    def add_item(self):
        if not self.logged_in or not self.projects:
            return self.dashboard()
        pk = random.choice(self.projects)
        with self.client.post(
            f"/projects/{pk}/items/", data={"volume": f"{random.uniform(0.5, 50):.3f}",
                                           "csrfmiddlewaretoken": self.csrf()},
            headers={"X-CSRFToken": self.csrf()}, name="add_item", allow_redirects=False,
            catch_response=True, timeout=HTTP_TIMEOUT,
        ) as r:
            self.check_page(r, ok=201)

    @task(1)
    def relogin(self):
        with self.client.get("/accounts/logout/", name="logout", allow_redirects=False, catch_response=True,
                             timeout=HTTP_TIMEOUT) as r:
            if r.status_code == 302:
                r.success()
            else:
                r.failure(fail_kind(r))
        self.logged_in = False
        self.login()
