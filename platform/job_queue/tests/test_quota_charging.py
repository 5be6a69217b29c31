"""Charging usage to quotas: fill in order, overflow on the last, refunds from the latest."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import run_admin
from nmpi_job_queue import admin
from nmpi_job_queue.domain import quotas


def usages(
    database_url: str, collab: str, amounts: list[float], limits: list[float]
) -> list[float]:
    async def work(session: Any) -> list[float]:
        project = await admin.create_project(session, collab, "owner", "charging")
        for limit in limits:
            await admin.add_quota(session, project, "SpiNNaker", limit)
        for amount in amounts:
            await quotas.charge(session, collab, "SpiNNaker", amount)
        found = await quotas.platform_quotas(session, collab, "SpiNNaker")
        return [q.usage for q in found]

    return run_admin(database_url, work)


@pytest.mark.parametrize(
    ("amounts", "limits", "expected"),
    [
        pytest.param([3.0], [5.0, 5.0], [3.0, 0.0], id="fits-in-first"),
        pytest.param([7.0], [5.0, 5.0], [5.0, 2.0], id="spills-to-next"),
        pytest.param([14.0], [5.0, 5.0], [5.0, 9.0], id="overflow-kept-on-last"),
        pytest.param([7.0, -4.0], [5.0, 5.0], [3.0, 0.0], id="refund-latest-first"),
        pytest.param([2.0, -5.0], [5.0], [0.0], id="refund-never-below-zero"),
    ],
)
def test_charge(
    database_url: str, amounts: list[float], limits: list[float], expected: list[float]
) -> None:
    collab = f"charge-{uuid.uuid4().hex[:8]}"
    assert usages(database_url, collab, amounts, limits) == pytest.approx(expected)


def test_collab_without_quota_is_left_alone(database_url: str) -> None:
    collab = f"charge-{uuid.uuid4().hex[:8]}"

    async def work(session: Any) -> int:
        await quotas.charge(session, collab, "SpiNNaker", 3.0)
        return len(await quotas.platform_quotas(session, collab, "SpiNNaker"))

    assert run_admin(database_url, work) == 0
