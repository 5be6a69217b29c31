"""TODO(helper): projects router."""

from fastapi import APIRouter

router = APIRouter()
