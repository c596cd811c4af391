"""A small model of an AHSP (unit-price analysis) app: a price catalogue, projects, work items."""
from django.conf import settings
from django.db import models


class Resource(models.Model):
    """A priced input: material, labour or equipment (the shared catalogue)."""

    CATEGORIES = [("material", "Material"), ("labor", "Labour"), ("equipment", "Equipment")]
    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=20, choices=CATEGORIES, db_index=True)
    unit = models.CharField(max_length=20)
    price = models.DecimalField(max_digits=14, decimal_places=2)


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    location = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class WorkItem(models.Model):
    """A line of a project's bill of quantities: volume x unit price (from a resource)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="items")
    description = models.CharField(max_length=200)
    volume = models.DecimalField(max_digits=14, decimal_places=3)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
