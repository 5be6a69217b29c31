"""Every size limit of the API, in one place. docs/limits.md says why each has its value.

Strings are counted in characters (what pydantic's max_length counts), JSON documents and
request bodies in bytes of UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, AnyUrl, Field, StringConstraints, UrlConstraints

KIB = 1024
MIB = 1024 * KIB

# --- whole requests (enforced by app.RequestLimitMiddleware, before routing) ------------------
MAX_BODY_BYTES = 4 * MIB  # every request body but the four below
MAX_LOG_BODY_BYTES = 16 * MIB  # PUT /jobs/{id}, PUT and PATCH /jobs/{id}/log: they carry logs
MAX_URL_BYTES = 8 * KIB  # path and query string
_LOG_ROUTE = re.compile(r"/jobs/[^/]+(/log)?/?")
_CODE_ARCHIVE_ROUTE = re.compile(r"/code-archives/?")


def max_body_bytes(method: str, path: str) -> int:
    if method in ("PUT", "PATCH") and _LOG_ROUTE.fullmatch(path):
        return MAX_LOG_BODY_BYTES
    if method == "POST" and _CODE_ARCHIVE_ROUTE.fullmatch(path):
        return CODE_ARCHIVE_MAX_BYTES
    return MAX_BODY_BYTES


# --- jobs ---------------------------------------------------------------------------------
CODE_MAX_CHARS = 1_000_000
COMMAND_MAX_CHARS = 10_000
COLLAB_MAX_CHARS = 200  # the columns' widths
USER_ID_MAX_CHARS = 200
PLATFORM_MAX_CHARS = 50
HARDWARE_CONFIG_MAX_BYTES = 64 * KIB
PROVENANCE_MAX_BYTES = 256 * KIB
JSON_MAX_DEPTH = 64
TAGS_MAX = 100  # per request and per job
TAG_MIN_CHARS = 2
TAG_MAX_CHARS = 100
LOG_MAX_CHARS = 5_000_000  # a job's whole log, however it was sent
COMMENT_MAX_CHARS = 10_000

# --- uploaded code archives (POST /code-archives/) -----------------------------------------
# The body is the archive: the same as the platform's nginx (platform_client_max_body_size).
CODE_ARCHIVE_MAX_BYTES = 16 * MIB
CODE_ARCHIVES_MAX_BYTES_PER_COLLAB = 1024 * MIB  # all of a collab's stored archives
CODE_ARCHIVE_FILENAME_MAX_CHARS = 255

# --- browser sign-in and job search -------------------------------------------------------
SIGN_IN_TOKEN_MAX_CHARS = 8 * KIB  # POST /auth/session: a local token or an OIDC access token
NEXT_PATH_MAX_CHARS = 2_000  # GET /auth/login?next=
SEARCH_MAX_CHARS = 100  # GET /jobs/?search=

# --- data items (input_data, output_data.files) -------------------------------------------
INPUT_ITEMS_MAX = 100
OUTPUT_ITEMS_MAX = 1_000  # per job, over all its PUTs
URL_MAX_CHARS = 4_096
PATH_MAX_CHARS = 1_024
PATH_SEGMENT_MAX_BYTES = 255  # NAME_MAX of common file systems
CONTENT_TYPE_MAX_CHARS = 255
HASH_MAX_CHARS = 256
FILE_SIZE_MAX = 2**63 - 1
REPOSITORY_MAX_CHARS = 100

# --- usage, quotas, projects --------------------------------------------------------------
AMOUNT_MAX = 1e12  # platform units (hours): a million cores for a century is under 1e12
UNITS_MAX_CHARS = 30
TITLE_MAX_CHARS = 500
ABSTRACT_MAX_CHARS = 10_000
DESCRIPTION_MAX_CHARS = 100_000
OWNER_MAX_CHARS = 200

# --- error replies ------------------------------------------------------------------------
ERRORS_MAX = 20  # validation errors listed in one 422
ERROR_MESSAGE_MAX_CHARS = 300
LOC_PART_MAX_CHARS = 100  # a field name in an error's location (it may be the caller's key)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON: about what jsonb stores and a reply carries."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _json_at_most(limit: int) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        size = json_size(value)
        if size > limit:
            raise ValueError(f"at most {limit} bytes as JSON (got {size})")
        return value

    return AfterValidator(check)


# Reusable field types of the request schemas.
HardwareConfig = Annotated[dict[str, Any], _json_at_most(HARDWARE_CONFIG_MAX_BYTES)]
Provenance = Annotated[dict[str, Any], _json_at_most(PROVENANCE_MAX_BYTES)]
Tag = Annotated[
    str,
    StringConstraints(min_length=TAG_MIN_CHARS, max_length=TAG_MAX_CHARS, strip_whitespace=True),
]
Url = Annotated[AnyUrl, UrlConstraints(max_length=URL_MAX_CHARS)]
Amount = Annotated[float, Field(ge=0, le=AMOUNT_MAX)]
