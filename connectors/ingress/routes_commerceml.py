"""Routes of the commerceml ingress (being built)."""

from fastapi import APIRouter

router = APIRouter()
