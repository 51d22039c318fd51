"""Re-drive and replay jobs, worked by Celery at a capped rate.

A task claims the job with a lease, works through its selection in chunks of at most CDP_REDRIVE_RATE
rows, waiting so that no more than CDP_REDRIVE_RATE rows go per second, for one time slice, then hands
over to a fresh task so a long job never holds a worker. Each chunk and the job's progress (cursor,
done, result) commit together: a killed worker's job is resumed by `resume_jobs` from where it stopped,
without repeating or losing a chunk."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from time import monotonic, sleep
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from cdp.core import audit
from cdp.core.models import Destination
from cdp.delivery.load import load_chunk, waiting
from cdp.delivery.models import Job, JobKind, JobStatus
from cdp.delivery.redrive import Selection, dead_letters, redrive_chunk
from cdp.delivery.replay import replay_chunk, replay_events
from cdp.delivery.tasks import poke

log = logging.getLogger(__name__)

SLICE_SECONDS = 20.0
LEASE = timedelta(seconds=SLICE_SECONDS + 60)
# A job nobody has claimed for this long lost its task (a flushed broker, a killed worker): queue it again.
STALLED_AFTER = timedelta(seconds=60)
MAX_CHUNK = 500

ChunkWorker = Callable[[Job, int], tuple[bool, set[int]]]
WORKERS: dict[str, ChunkWorker] = {
    JobKind.REDRIVE: redrive_chunk, JobKind.REPLAY: replay_chunk, JobKind.LOAD: load_chunk,
}  # fmt: skip
_PROGRESS = ["done", "cursor", "result", "claimed_until"]


def create_job(
    kind: str, selection: QuerySet, *, workspace_id: int, user: Any, parameters: dict[str, Any],
    destination_id: int | None = None, inline: bool = False,
) -> Job:  # fmt: skip
    """Record the job with the size of its selection as it is now, and queue it once this commits (or,
    `inline`, work it here: for a selection small enough to answer at once)."""
    found = selection.order_by().aggregate(total=Count("pk"), up_to=Max("pk"))
    job = Job.objects.create(
        kind=kind, workspace_id=workspace_id, destination_id=destination_id, parameters=parameters,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        total=found["total"], up_to_id=found["up_to"] or 0,
    )  # fmt: skip
    if not job.total:
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(status=JobStatus.DONE, started_at=now, finished_at=now)
        job.refresh_from_db()
    elif inline:
        run_job.run(job.pk)
        job.refresh_from_db()
    else:
        transaction.on_commit(lambda: queue(job.pk))
    return job


AUDIT_ACTIONS = {
    JobKind.REDRIVE: "dead_letters.redriven",
    JobKind.REPLAY: "destination.replayed",
    JobKind.LOAD: "destination.loaded",
}


def start_redrive(
    workspace_id: int, selection: Selection, *, user: Any, via: str, destination_id: int | None = None,
    inline: bool = False,
) -> Job:  # fmt: skip
    """Re-drive the workspace's dead letters in `selection`, as the API and the dashboard both ask for it."""
    job = create_job(
        JobKind.REDRIVE, dead_letters(workspace_id, selection), workspace_id=workspace_id, user=user,
        destination_id=destination_id if destination_id is not None else selection.destination,
        parameters=selection.as_parameters(), inline=inline,
    )  # fmt: skip
    _record_asked(job, user, via)
    return job


def start_replay(
    destination: Destination, source_id: int, since: datetime, until: datetime, *, user: Any, via: str
) -> Job:
    """Replay the source's events of [since, until) to the destination (validated by the caller)."""
    job = create_job(
        JobKind.REPLAY, replay_events(source_id, since, until), workspace_id=destination.workspace_id,
        destination_id=destination.pk, user=user,
        parameters={"source": source_id, "since": since.isoformat(), "until": until.isoformat()},
    )  # fmt: skip
    _record_asked(job, user, via)
    return job


def start_load(destination: Destination, *, user: Any, via: str) -> Job:
    """Send the destination's waiting events now, partial batches included."""
    job = create_job(
        JobKind.LOAD, waiting(destination), workspace_id=destination.workspace_id, destination_id=destination.pk,
        user=user, parameters={},
    )  # fmt: skip
    _record_asked(job, user, via)
    return job


def _record_asked(job: Job, user: Any, via: str) -> None:
    """The audit entry for a job someone asked for: the selection and its size."""
    asked = {**job.parameters, "total": job.total}
    audit.record(
        user,
        job.workspace_id,
        AUDIT_ACTIONS[job.kind],
        target=job,
        target_repr=f"{job.get_kind_display()} (job #{job.pk})",
        changes={key: [None, value] for key, value in asked.items()},
        via=via,
    )


def queue(job_id: int) -> None:
    try:
        run_job.apply_async(args=[job_id], retry=False)
    except Exception:
        log.warning("could not queue job %s; the job sweeper will", job_id, exc_info=True)


def _claim(job_id: int) -> Job | None:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = Job.objects.filter(free, pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.RUNNING, claimed_until=now + LEASE
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    if job.started_at is None:
        job.started_at = now
        job.save(update_fields=["started_at"])
    return job


def _finish(job: Job, status: str, error: str = "") -> None:
    if status == JobStatus.DONE and job.done < job.total:
        # Rows that left the selection before the job reached them (re-driven by someone else, deleted).
        job.result["left_the_selection"] = job.total - job.done
        job.done = job.total
    job.status, job.error, job.finished_at, job.claimed_until = status, error, timezone.now(), None
    job.save(update_fields=["status", "error", "finished_at", "claimed_until", "done", "result"])


@shared_task
def run_job(job_id: int, slice_seconds: float = SLICE_SECONDS) -> str:
    """Work one time slice of a job; queue the next slice if it is not finished."""
    job = _claim(job_id)
    if job is None:
        return "not claimable"  # finished, or another task holds it
    rate = settings.CDP_REDRIVE_RATE
    chunk = min(rate, MAX_CHUNK)
    deadline = monotonic() + slice_seconds
    finished = False
    try:
        while not finished and monotonic() < deadline:
            started, before = monotonic(), job.done
            with transaction.atomic():
                finished, woken = WORKERS[job.kind](job, chunk)
                job.claimed_until = timezone.now() + LEASE
                job.save(update_fields=_PROGRESS)
            poke(woken)
            if not finished:
                sleep(max(0.0, (job.done - before) / rate - (monotonic() - started)))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        job.refresh_from_db()
        _finish(job, JobStatus.FAILED, error=str(exc)[:2000] or repr(exc))
        return JobStatus.FAILED
    if finished:
        _finish(job, JobStatus.DONE)
        return JobStatus.DONE
    # Hand over; the lease ends now, so the next task can claim the job at once.
    Job.objects.filter(pk=job.pk).update(claimed_until=timezone.now())
    queue(job.pk)
    return JobStatus.RUNNING


@shared_task
def resume_jobs() -> int:
    """Queue again the jobs whose task was lost."""
    stalled_since = timezone.now() - STALLED_AFTER
    stalled = Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).filter(
        Q(claimed_until__lt=stalled_since) | Q(claimed_until__isnull=True, created_at__lt=stalled_since)
    )
    job_ids = list(stalled.values_list("pk", flat=True)[:100])
    for job_id in job_ids:
        queue(job_id)
    return len(job_ids)
