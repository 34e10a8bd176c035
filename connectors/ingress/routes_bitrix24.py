"""Routes of the bitrix24 ingress (being built)."""

from fastapi import APIRouter

router = APIRouter()
