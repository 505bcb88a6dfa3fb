"""The webhook dispatcher: a continuous, fair sender in which one endpoint's trouble stays its own.

Every endpoint with due work has a **lane**: a short local queue of leased deliveries and a cap
on its attempts in flight (`HOMEWORK_WEBHOOK_MAX_PER_ENDPOINT`). Lanes are refilled by claims
that take a few deliveries *per endpoint* (app.services.webhooks.dispatch.claim), and attempts
start from the lanes in turn, within a cap per tenant and one for the process. So a receiver
that hangs holds at most its own lane's slots, a backlog of thousands at one endpoint is never
in front of another endpoint's first delivery, and an endpoint that keeps timing out is cut
off for a while by its circuit breaker (app.worker.breaker).

Each attempt starts as soon as it has a slot and is recorded when it ends, in small batches;
nothing waits for the slowest POST of a batch. The leases are kept true: taken from the clock
at the claim, renewed every few seconds while the worker still holds the delivery, and an
attempt never starts unless it can end (its deadline) within the lease it holds. Each attempt
is signed with the clock read as it starts.

On stop: no more claims; queued deliveries are handed back (lease released, no attempt);
attempts in flight get `grace` seconds to end, then are cut off and recorded as interrupted
(due again at once, for the next worker); the outcomes are recorded and the leases released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.core import metrics, wakeups
from app.core.data_keys import DataKeys
from app.core.db import Database
from app.core.outbound import GuardedPoster, OutboundPolicy
from app.services.webhooks import dispatch, sender
from app.services.webhooks.dispatch import INTERRUPTED, Claimed, Outcome
from app.worker.breaker import Breakers
from app.worker.delivery_log import log_attempt
from app.worker.liveness import Liveness

logger = logging.getLogger("homework.worker")

# How much longer than one attempt's deadline a lease runs, and how often it is renewed: an
# attempt that starts with a fresh lease ends well inside it even if every renewal failed.
LEASE_MARGIN_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
# A lane holds up to this many deliveries per slot, and is refilled once its queue is half
# empty: a fast receiver always has the next delivery at hand, a slow one holds only a few.
PREFETCH_PER_SLOT = 16
# Outcomes are recorded together when they end within this long of each other: one short
# transaction for dozens of attempts. It delays only the delivery log, never a POST.
RECORD_WINDOW_SECONDS = 0.05
LIVENESS_LOOP = "dispatch_webhooks"


@dataclass
class _Held:
    claimed: Claimed
    lease_ends: float  # time.monotonic() by which our lease runs out, as far as we know


@dataclass
class _Lane:
    endpoint_id: str
    tenant_id: str
    queue: deque[_Held] = field(default_factory=deque)
    in_flight: int = 0
    # The database may have more due deliveries for it (the last claim got all it asked for).
    due: bool = True

    @property
    def idle(self) -> bool:
        return not self.queue and not self.in_flight and not self.due


class Dispatcher:
    def __init__(
        self,
        database: Database,
        now: Callable[[], datetime],
        owner: str,
        *,
        http: GuardedPoster | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        settings = database.settings
        self.liveness = liveness or Liveness(settings.worker_stall_seconds)
        self.count_tenants = settings.metrics_tenant_labels
        self.database = database
        self.now = now
        self.owner = owner
        self.timeout = settings.webhook_timeout_seconds
        self.data_keys = DataKeys.from_settings(settings)  # to unseal the signing secrets
        self.http = http or GuardedPoster(
            OutboundPolicy(
                allow_http=settings.outbound_allow_http,
                allowed_hosts=settings.allowed_outbound_hosts,
            ),
            limit=settings.webhook_max_concurrency,
        )
        self.lease_seconds = self.timeout + LEASE_MARGIN_SECONDS
        self.per_endpoint = settings.webhook_max_per_endpoint
        self.per_tenant = settings.webhook_max_per_tenant
        self.overall = settings.webhook_max_concurrency
        self.poll_seconds = settings.worker_interval_seconds
        self.breakers = Breakers()
        self.counts: Counter[str] = Counter()
        self._lanes: dict[str, _Lane] = {}
        self._turn = 0  # where the next round of starts begins, so no lane is always first
        self._tenant_in_flight: Counter[str] = Counter()
        self._in_flight: dict[asyncio.Task[Outcome], tuple[_Lane, _Held, str]] = {}
        self._held: dict[str, _Held] = {}  # every delivery we lease: queued, sending, unrecorded
        self._finished: list[Outcome] = []
        self._to_release: list[str] = []
        self._changed = asyncio.Event()  # an attempt ended: a lane may want refilling
        self._outcomes_ready = asyncio.Event()
        self._stopping = False
        self._discover_at = 0.0  # time.monotonic() of the next look for endpoints with work

    # The two ways to run: for ever, or until nothing is due (`homework worker --once`, tests).

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, *, grace: float) -> None:
        # Told to stop, never cancelled: cut off mid-transaction, SQLite would keep the lock.
        done = asyncio.Event()
        recorder = asyncio.create_task(self._record_continuously(done))
        heartbeat = asyncio.create_task(self._renew_leases(done))
        try:
            while not stop.is_set():
                self.liveness.expect(LIVENESS_LOOP)
                if wake.is_set():
                    wake.clear()
                    self._discover_at = 0.0
                self._changed.clear()
                try:
                    claimed = await self._refill()
                except Exception as exc:
                    logger.error("webhook claim failed", extra={"error": type(exc).__name__})
                    claimed, self._discover_at = 0, time.monotonic() + self.poll_seconds
                if claimed and self._has_room():
                    continue
                pause = max(0.0, self._discover_at - time.monotonic())
                self.liveness.expect(LIVENESS_LOOP, pause)
                await wakeups.first_of(stop, wake, self._changed, timeout=pause)
            self.liveness.done(LIVENESS_LOOP)
        finally:
            await self._stop(grace)
            done.set()
            await asyncio.gather(recorder, heartbeat, return_exceptions=True)
            try:
                await self._record_finished()
            except Exception as exc:  # the leases run out and the next worker sends again
                logger.error("webhook record failed", extra={"error": type(exc).__name__})

    async def drain(self) -> int:
        """Send everything due now, then return how many attempts were made. A pass that makes
        no attempt ends it: what was due is sent, or was handed back for the next round."""
        before = self.counts["attempts"]
        while True:
            attempts = self.counts["attempts"]
            self._discover_at = 0.0
            await self._refill()
            while self._in_flight:
                await asyncio.wait(list(self._in_flight))
            await self._release_handed_back()
            await self._record_finished()
            if self.counts["attempts"] == attempts:
                return self.counts["attempts"] - before

    async def aclose(self) -> None:
        await self.http.aclose()

    # Claiming.

    async def _refill(self) -> int:
        """Find endpoints with due work if it is time, claim for the lanes that need it, start
        what their slots allow. Returns how many deliveries were claimed."""
        now = self.now()
        if time.monotonic() >= self._discover_at:
            await self._discover(now)
        wanted = self._wanted(now)
        claimed: list[Claimed] = []
        if wanted:
            started = time.monotonic()
            async with self.database.sessionmaker() as session, session.begin():
                # The lease from the clock read now, at the claim, not before the discovery.
                lease = timedelta(seconds=self.lease_seconds)
                claimed = await dispatch.claim(
                    session, self.now(), wanted, self.owner, lease, keys=self.data_keys
                )
            metrics.series(metrics.JOB_BATCHES, LIVENESS_LOOP).inc()
            metrics.series(metrics.JOB_ITEMS, LIVENESS_LOOP).inc(len(claimed))
            metrics.series(metrics.JOB_SECONDS, LIVENESS_LOOP).observe(time.monotonic() - started)
            per_lane = Counter(c.endpoint_id for c in claimed)
            for endpoint_id, asked in wanted.items():
                if per_lane[endpoint_id] < asked:
                    self._lanes[endpoint_id].due = False
            for item in claimed:
                held = _Held(item, started + self.lease_seconds)
                self._held[item.delivery_id] = held
                self._lanes[item.endpoint_id].queue.append(held)
        self._start_attempts()
        await self._release_handed_back()
        return len(claimed)

    async def _discover(self, now: datetime) -> None:
        async with self.database.read_sessionmaker() as session:
            due = await dispatch.due_endpoints(session, now)
            next_due = await dispatch.next_due_at(session, now)
        for lane in self._lanes.values():
            lane.due = lane.endpoint_id in due
        for endpoint_id, tenant_id in due.items():
            self._lanes.setdefault(endpoint_id, _Lane(endpoint_id, tenant_id)).due = True
        for endpoint_id in [e for e, lane in self._lanes.items() if lane.idle]:
            del self._lanes[endpoint_id]
        wait = self.poll_seconds
        if next_due is not None:
            wait = min(wait, max(0.0, (next_due - now).total_seconds()))
        self._discover_at = time.monotonic() + wait

    def _wanted(self, now: datetime) -> dict[str, int]:
        """How many more deliveries each lane should claim, in the rotation's order."""
        wanted = {}
        for lane in self._rotation():
            slots = self.breakers.slots(lane.endpoint_id, self.per_endpoint, now)
            target = slots * PREFETCH_PER_SLOT if slots > 1 else slots
            # Refilled at half, so the next claim lands before the lane runs dry.
            if lane.due and slots and len(lane.queue) <= target // 2:
                room = target - len(lane.queue) - lane.in_flight
                if room > 0:
                    wanted[lane.endpoint_id] = room
        return wanted

    def _has_room(self) -> bool:
        target = self.per_endpoint * PREFETCH_PER_SLOT
        return any(lane.due and len(lane.queue) <= target // 2 for lane in self._lanes.values())

    def _rotation(self) -> list[_Lane]:
        lanes = list(self._lanes.values())
        if not lanes:
            return lanes
        self._turn = (self._turn + 1) % len(lanes)
        return lanes[self._turn :] + lanes[: self._turn]

    # Sending.

    def _start_attempts(self) -> None:
        """Start attempts lane by lane, one per lane per turn, within every cap."""
        if self._stopping:
            return
        now = self.now()
        progress = True
        while progress and len(self._in_flight) < self.overall:
            progress = False
            for lane in self._rotation():
                if len(self._in_flight) >= self.overall:
                    break
                slots = self.breakers.slots(lane.endpoint_id, self.per_endpoint, now)
                if not slots and lane.queue:  # the breaker opened: the queue goes back
                    self._hand_back(lane.queue)
                if (
                    lane.queue
                    and lane.in_flight < slots
                    and self._tenant_in_flight[lane.tenant_id] < self.per_tenant
                ):
                    self._start(lane, lane.queue.popleft())
                    progress = True

    def _start(self, lane: _Lane, held: _Held) -> None:
        if time.monotonic() + self.timeout + 1 > held.lease_ends:
            # Our lease could run out mid-POST and another worker send it too: hand it back.
            self._hand_back([held])
            return
        lane.in_flight += 1
        self._tenant_in_flight[lane.tenant_id] += 1
        task = asyncio.create_task(sender.attempt(self.http, held.claimed, self.now, self.timeout))
        # A probe is the one attempt a circuit that was open lets through.
        circuit = "probe" if self.breakers.is_probing(lane.endpoint_id) else "closed"
        self._in_flight[task] = (lane, held, circuit)
        self.counts["attempts"] += 1
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Outcome]) -> None:
        lane, held, circuit = self._in_flight.pop(task)
        lane.in_flight -= 1
        self._tenant_in_flight[lane.tenant_id] -= 1
        if task.cancelled():
            outcome = Outcome(held.claimed, self.now(), None, 0, error=INTERRUPTED)
        else:
            outcome = task.result()
        log_attempt(outcome)
        self.breakers.observe(outcome, self.now())
        self._count(outcome, circuit)
        self._finished.append(outcome)
        self._changed.set()
        self._outcomes_ready.set()
        self._start_attempts()

    def _count(self, outcome: Outcome, circuit: str) -> None:
        kind = outcome.kind
        metrics.series(metrics.DELIVERY_ATTEMPTS, kind, circuit).inc()
        metrics.DELIVERY_SECONDS.observe(outcome.latency_ms / 1000)
        if self.count_tenants:
            metrics.series(metrics.TENANT_DELIVERY_ATTEMPTS, outcome.claimed.tenant_id, kind).inc()
        for state, endpoints in self.breakers.counts(self.now()).items():
            metrics.series(metrics.CIRCUITS, state).set(endpoints)

    def _hand_back(self, items: deque[_Held] | list[_Held]) -> None:
        while items:
            held = items.pop()
            self._held.pop(held.claimed.delivery_id, None)
            self._to_release.append(held.claimed.delivery_id)

    async def _release_handed_back(self) -> None:
        ids, self._to_release = self._to_release, []
        if ids:
            async with self.database.sessionmaker() as session, session.begin():
                await dispatch.release(session, ids, self.owner)
            self.counts["handed_back"] += len(ids)

    # Recording and leases, each its own task while running for ever.

    async def _record_finished(self) -> None:
        outcomes, self._finished = self._finished, []
        if not outcomes:
            return
        try:
            async with self.database.sessionmaker() as session, session.begin():
                counts = await dispatch.record(session, outcomes, self.owner, self.now())
        except BaseException:
            self._finished[:0] = outcomes  # kept, to be recorded on the next try
            raise
        for outcome in outcomes:
            self._held.pop(outcome.claimed.delivery_id, None)
        self.counts.update(counts)

    async def _record_continuously(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await wakeups.first_of(self._outcomes_ready, done, timeout=HEARTBEAT_SECONDS)
            await asyncio.sleep(RECORD_WINDOW_SECONDS)
            self._outcomes_ready.clear()
            try:
                await self._record_finished()
                await self._release_handed_back()
            except Exception as exc:
                logger.error("webhook record failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(1.0)

    async def _renew_leases(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await wakeups.first_of(done, timeout=HEARTBEAT_SECONDS)
            ids = list(self._held)
            if not ids or done.is_set():
                continue
            started = time.monotonic()
            until = self.now() + timedelta(seconds=self.lease_seconds)
            try:
                async with self.database.sessionmaker() as session, session.begin():
                    kept = await dispatch.extend_leases(session, ids, self.owner, until)
            except Exception as exc:
                logger.error("webhook lease renewal failed", extra={"error": type(exc).__name__})
                continue
            for delivery_id in ids:
                held = self._held.get(delivery_id)
                if held is not None and delivery_id in kept:
                    held.lease_ends = started + self.lease_seconds
            lost = set(ids) - kept
            for lane in self._lanes.values():  # not sent yet: dropped (another worker has it)
                for held in [h for h in lane.queue if h.claimed.delivery_id in lost]:
                    lane.queue.remove(held)
                    self._held.pop(held.claimed.delivery_id, None)
                    self.counts["lease_lost"] += 1

    async def _stop(self, grace: float) -> None:
        """Hand back what has not started, give what is in flight `grace` seconds, cut off the
        rest (recorded as interrupted by `_ended`)."""
        deadline = time.monotonic() + grace
        self._stopping = True
        for lane in self._lanes.values():
            self._hand_back(lane.queue)
        try:  # not under a timeout: a transaction cut off midway would keep SQLite locked
            await self._release_handed_back()
        except Exception as exc:  # their leases run out instead; nothing is lost
            logger.error("webhook hand-back failed", extra={"error": type(exc).__name__})
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=max(0.0, deadline - time.monotonic()))
        for task in list(self._in_flight):
            task.cancel()
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))
