"""Create the load test's users and data: N users (user001..), each with projects and items,
and a shared price catalogue. Idempotent: does nothing when the users already exist."""
import random
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from core.models import Project, Resource, WorkItem

UNITS = {"material": ["m3", "kg", "zak", "m2", "bh"], "labor": ["OH"], "equipment": ["jam", "hari"]}


class Command(BaseCommand):
    help = "Create scenario users (user001.. with one shared password), projects, items, catalogue."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--password", default="ahsp-pass")
        parser.add_argument("--projects", type=int, default=3, help="projects per user")
        parser.add_argument("--items", type=int, default=40, help="work items per project")
        parser.add_argument("--resources", type=int, default=2000)

    def handle(self, *args, **o):
        rng = random.Random(9)
        if User.objects.filter(username="user001").exists():
            self.stdout.write("seed data already present")
            return
        with transaction.atomic():
            res = []
            for i in range(o["resources"]):
                cat = rng.choice(list(UNITS))
                res.append(Resource(code=f"R{i:05d}", name=f"{cat} {i}", category=cat,
                                    unit=rng.choice(UNITS[cat]),
                                    price=Decimal(rng.randint(1000, 5_000_000)) / 100))
            Resource.objects.bulk_create(res, batch_size=1000)
            res = list(Resource.objects.all())
            # One PBKDF2 hash shared by all users: hashing 100 passwords would take ~30 s.
            pw = make_password(o["password"])
            users = User.objects.bulk_create(
                [User(username=f"user{n:03d}", password=pw, is_active=True) for n in range(1, o["users"] + 1)])
            users = list(User.objects.filter(username__startswith="user").order_by("username"))
            projects = Project.objects.bulk_create(
                [Project(owner=u, name=f"Proyek {u.username}-{k}", location=rng.choice(["Jakarta", "Bandung", "Medan"]))
                 for u in users for k in range(o["projects"])])
            projects = list(Project.objects.all())
            items = []
            for p in projects:
                for _ in range(o["items"]):
                    r = rng.choice(res)
                    items.append(WorkItem(project=p, resource=r, description=r.name,
                                          volume=Decimal(rng.randint(1, 100000)) / 1000, unit_price=r.price))
            WorkItem.objects.bulk_create(items, batch_size=2000)
        self.stdout.write(f"seeded {len(users)} users, {len(projects)} projects, {len(items)} items, "
                          f"{len(res)} resources")
