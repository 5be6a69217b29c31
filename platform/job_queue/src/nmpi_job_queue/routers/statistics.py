"""TODO(helper): statistics router."""

from fastapi import APIRouter

router = APIRouter()
