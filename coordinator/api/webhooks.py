"""A job's webhook over HTTP (docs/webhooks.md): its secret (the owner's alone), the log of its
deliveries and re-sending one. What a delivery is and how it is sent: coordinator/webhooks.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query

from coordinator.api.access import job_for
from coordinator.api.auth import CallerDep, ContextDep
from coordinator.api.models import Delivery, DeliveryList, WebhookSecret
from coordinator.api.strict_json import api_router
from coordinator.api.views import delivery_view
from coordinator.store_webhooks import deliveries_of_job, get_delivery, resend

router = api_router(prefix="/jobs", tags=["webhooks"])


@router.get("/{job_id}/webhook-secret")
async def read_webhook_secret(job_id: str, ctx: ContextDep, caller: CallerDep) -> WebhookSecret:
    """The key the job's deliveries are signed with; its owner's alone (it was in the answer
    to the job's creation too)."""
    async with ctx.db.transaction() as conn:
        job = await job_for(conn, job_id, caller, "share")
    assert job.webhook_secret is not None, "every job has one (migration 0004)"
    return WebhookSecret(job_id=job.id, webhook_secret=job.webhook_secret)


@router.get("/{job_id}/webhook-deliveries")
async def read_deliveries(
    job_id: str,
    ctx: ContextDep,
    caller: CallerDep,
    task_id: Annotated[str | None, Query(max_length=200, description="Only this task's.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    """The job's webhook deliveries, newest first, with how each went; needs view."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "view")
        found = await deliveries_of_job(conn, job_id, task_id=task_id, limit=limit)
    return DeliveryList(items=[delivery_view(d) for d in found], limit=limit)


@router.post("/{job_id}/webhook-deliveries/{delivery_id}/resend", status_code=202)
async def resend_delivery(
    job_id: str, delivery_id: str, ctx: ContextDep, caller: CallerDep
) -> Delivery:
    """Send the delivery again, same id and body, whatever became of it (delivered or given
    up); needs edit. Answers it pending."""
    async with ctx.db.transaction() as conn:
        await job_for(conn, job_id, caller, "edit")
        found = await get_delivery(conn, delivery_id)
        if found is None or found.job_id != job_id:
            raise HTTPException(
                status_code=404, detail=f"job {job_id} has no webhook delivery {delivery_id}"
            )
        again = await resend(conn, delivery_id)
    assert again is not None, "read in this transaction"
    ctx.webhooks.wake()
    return delivery_view(again)
