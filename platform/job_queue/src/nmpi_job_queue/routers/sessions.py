"""TODO(helper): sessions router."""

from fastapi import APIRouter

router = APIRouter()
