"""Demo data for `make run`: a clinic with four weeks of history worth looking at.

Two clinicians, five clients on care teams (two of them shared), and the homework of the four
weeks that end at the first start: daily mood logs done on most days, weekly thought records,
a graded exposure hierarchy whose distress falls step by step, PHQ-9 and GAD-7 at intake and
in week 4 (better for all but one client), work not done with its barriers, work missed, one
distress flag nobody has reviewed yet, and the clinicians' reviews.

The history is played, not inserted: every assignment, completion, review and booking goes
through the services the routes call, with the clock set to when it happens in the story, and
the worker's jobs catch up before each step, so occurrences open and are missed, reminders
fire and events and audit rows are written as they would have been. Rows are stamped with the
story's time too (`stamped_by`). It is all one transaction: the demo is there whole or not at
all, and on SQLite it takes a few seconds. The choices (what was done, when, the answers) come
from a random generator seeded per assignment and occurrence: the same start gives the same
figures.

Made once; the credentials are kept beside the database because the secret cannot be shown
again.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database
from app.core.scopes import Context, ScopeSet
from app.core.security import Principal
from app.models import Tenant
from app.models.base import stamped_by
from app.schemas.assignments import AssignmentCreate
from app.schemas.completions import CompletionCreate
from app.schemas.people import ClientCreate, ClientUpdate, ClinicianCreate
from app.services import assignments, completions, people, tenants
from app.services.builtin_templates import builtin_template_id
from app.services.measures import GAD7_ITEMS, PHQ9_ITEMS
from app.services.reminders import firing
from app.services.schedules import jobs as occurrence_jobs
from app.worker import loop

DEMO_FILE = Path(".homework/demo.json")
READ_TOKEN = """python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'"""
SEED = 18
HISTORY = timedelta(days=27)  # the intake is inside the default 28-day windows
ACTOR = "demo-seed"  # the token id the story's actions are audited under
WORKER_EVERY = timedelta(minutes=30)
TIME_DRIVEN_JOBS = (  # app.worker.jobs.JOBS' order
    occurrence_jobs.extend_horizons,
    occurrence_jobs.open_due,
    occurrence_jobs.mark_missed,
    occurrence_jobs.finish_assignments,
)

# The cast


@dataclass(frozen=True)
class Person:
    key: str
    external_id: str
    name: str
    time_zone: str = "UTC"
    locale: str = "en"
    team: tuple[str, ...] = ()  # clinician keys


CLINICIANS = (
    Person("okafor", "demo-clinician", "Dr Maya Okafor"),
    Person("reyes", "demo-clinician-2", "Dr Jonah Reyes"),
)
CLIENTS = (
    Person("alex", "demo-client", "Alex", "Europe/London", "en-GB", ("okafor", "reyes")),
    Person("sam", "demo-client-2", "Sam", "America/New_York", "en-US", ("okafor",)),
    Person("priya", "demo-client-3", "Priya", "Asia/Kolkata", "en-IN", ("okafor",)),
    Person("jordan", "demo-client-4", "Jordan", "America/Los_Angeles", "en-US", ("reyes",)),
    Person("lee", "demo-client-5", "Lee", "Australia/Sydney", "en-AU", ("reyes", "okafor")),
)
SESSION_DAYS = (0, 7, 14, 21)  # weekly sessions; the next is booked at each


# What a client did with one occurrence


@dataclass(frozen=True)
class Outcome:
    status: str  # done, partial, not_done
    minutes_from_due: int  # when, relative to the due time (negative: before)
    answers: dict[str, Any] | None = None
    barriers: tuple[str, ...] = ()
    barrier_note: str | None = None
    helpfulness: int | None = None
    effort: int | None = None
    minutes_spent: int | None = None
    reflection: str | None = None
    review: str | None = None  # the clinician's feedback, the next day


Behaviour = Callable[[random.Random, int, float], Outcome | None]  # None: missed


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


_BARRIERS = (
    ("no_time", None),
    ("forgot", None),
    ("too_hard", None),
    ("other", "Away for the weekend, no signal."),
)


def _not_done(rng: random.Random) -> Outcome:
    barrier, note = rng.choice(_BARRIERS)
    return Outcome("not_done", rng.randint(-60, 120), barriers=(barrier,), barrier_note=note)


def mood_log(
    done: float,
    not_done: float,
    mood: tuple[float, float],
    helped: tuple[float, float],
    *,
    fading: float = 0.0,
) -> Behaviour:
    """Daily logs: done with probability `done` (less `fading` by the end; now and then only
    partly, or the next morning after the window closed), not done with a reason with
    probability `not_done`, else missed. Mood and helpfulness drift from the first to the
    second figure of `mood` and `helped` over the four weeks."""

    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        roll, doing = rng.random(), done - fading * progress
        if roll >= doing + not_done:
            return None
        if roll >= doing:
            return _not_done(rng)
        rating = _clamp(mood[0] + (mood[1] - mood[0]) * progress + rng.gauss(0, 1), 0, 10)
        pool = (
            ["calm", "content", "hopeful", "happy"] if rating >= 6 else ["sad", "tired", "worried"]
        )
        answers: dict[str, Any] = {"mood": rating, "emotions": sorted(rng.sample(pool, 2))}
        if rng.random() < 0.3:
            answers["note"] = rng.choice(
                ["Walked after work.", "Slept badly.", "Saw a friend.", "Long day at work."]
            )
        helpfulness = _clamp(
            helped[0] + (helped[1] - helped[0]) * progress + rng.gauss(0, 1), 0, 10
        )
        kind = rng.random()
        if kind < 0.06:  # started, not finished
            del answers["mood"]
            return Outcome(
                "partial",
                rng.randint(-30, 30),
                answers,
                barriers=("no_time",),
                helpfulness=helpfulness,
            )
        late = kind > 0.85  # remembered the next morning, after the window closed
        return Outcome(
            "done",
            rng.randint(13 * 60, 15 * 60) if late else rng.randint(-45, 75),
            answers,
            helpfulness=helpfulness,
            effort=rng.randint(1, 3),
            minutes_spent=rng.randint(1, 4),
        )

    return behave


def thought_records(done: float) -> Behaviour:
    situations = (
        ("A colleague did not reply to my message.", "They think my work is useless.", 80),
        ("Cancelled plans with my sister.", "I always let people down.", 75),
        ("Made a mistake in a meeting.", "Everyone noticed and thinks I am incompetent.", 70),
        ("Woke up tired on Sunday.", "This week is going to be awful.", 60),
    )

    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        if rng.random() >= done:
            return _not_done(rng)
        situation, thought, intensity = situations[ordinal % len(situations)]
        answers = {
            "situation": situation,
            "automatic_thought": thought,
            "emotion": "anxious" if ordinal % 2 else "sad",
            "emotion_intensity": intensity,
            "evidence_for": "It has happened before.",
            "evidence_against": "Most of the time it turned out fine.",
            "alternative_thought": "One moment does not decide what people think of me.",
            "intensity_after": intensity - 25 - 5 * ordinal,
        }
        return Outcome(
            "done",
            rng.randint(-180, 60),
            answers,
            helpfulness=7 + ordinal % 3,
            effort=5,
            minutes_spent=15,
            reflection="Writing the balanced thought was the hard part.",
            review="Good work finding the evidence against: bring this one to our session.",
        )

    return behave


def exposure(step: str, suds: tuple[int, int, int | None], *, partial: bool = False) -> Behaviour:
    """One step of the hierarchy, done with these SUDS (before, peak, after)."""

    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        before, peak, after = suds
        answers: dict[str, Any] = {
            "step": step,
            "suds_before": before,
            "suds_peak": peak,
            "duration_minutes": 15 if partial else 30 + 5 * rng.randint(0, 4),
            "learning": "The anxiety came down while I stayed." if not partial else None,
        }
        if after is not None:
            answers["suds_after"] = after
        return Outcome(
            "partial" if partial else "done",
            rng.randint(-90, 30),
            {k: v for k, v in answers.items() if v is not None},
            barriers=("too_hard",) if partial else (),
            helpfulness=6 if partial else 8,
            effort=8,
            minutes_spent=answers["duration_minutes"],
            review=None if partial else "Well done staying with it: the peak is coming down.",
        )

    return behave


def _items(rng: random.Random, keys: tuple[str, ...], total: int, **fixed: int) -> dict[str, int]:
    values = dict.fromkeys(keys, 0) | fixed
    for _ in range(total - sum(fixed.values())):
        key = rng.choice([k for k in keys if k not in fixed and values[k] < 3])
        values[key] += 1
    return values


def phq9(total: int, *, item_9: int = 0, review: str | None = None) -> Behaviour:
    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        answers: dict[str, Any] = _items(rng, PHQ9_ITEMS, total, item_9=item_9)
        answers["difficulty"] = "very_difficult" if total >= 15 else "somewhat_difficult"
        return Outcome("done", rng.randint(-600, -60), answers, review=review)

    return behave


def gad7(total: int) -> Behaviour:
    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        answers: dict[str, Any] = _items(rng, GAD7_ITEMS, total)
        answers["difficulty"] = "somewhat_difficult"
        return Outcome("done", rng.randint(-600, -60), answers)

    return behave


def mindfulness(done: float) -> Behaviour:
    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        if rng.random() >= done:
            return None
        return Outcome(
            "done",
            rng.randint(-30, 90),
            {
                "practice": rng.choice(["breathing space", "body scan"]),
                "minutes": rng.choice([5, 10, 10, 15]),
                "attention": _clamp(4 + 4 * progress + rng.gauss(0, 1), 0, 10),
            },
            helpfulness=_clamp(6 + 2 * progress + rng.gauss(0, 1), 0, 10),
            minutes_spent=10,
        )

    return behave


def activities(done: float) -> Behaviour:
    planned = ("A walk round the park", "Cook dinner for a friend", "Swim at the leisure centre")

    def behave(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
        if rng.random() >= done:
            return _not_done(rng)
        did = rng.random() < 0.5 + 0.4 * progress
        answers: dict[str, Any] = {"activity": planned[ordinal % 3], "planned": True, "done": did}
        if did:
            answers |= {"mastery": rng.randint(5, 8), "pleasure": _clamp(4 + 4 * progress, 0, 10)}
        return Outcome("done", rng.randint(-120, 30), answers, helpfulness=rng.randint(5, 8))

    return behave


def reading(rng: random.Random, ordinal: int, progress: float) -> Outcome | None:
    return Outcome(
        "done",
        -1440,
        {
            "material": "Behavioural activation leaflet",
            "key_takeaway": "Doing comes before feeling like it.",
        },
        helpfulness=8,
        reflection="Made sense of why I stopped going out.",
        review="Glad it clicked: we will plan three activities together.",
    )


# The homework


@dataclass(frozen=True)
class Plan:
    key: str  # stable: seeds this plan's generator
    client: str
    clinician: str
    template: str
    day: int  # the day of the story on which it is assigned (at that day's session)
    schedule: Callable[[datetime], dict[str, Any]]  # from the local time of that session
    behaviour: Behaviour
    title: str | None = None
    purpose: str | None = None
    difficulty_step: int | None = None
    window: dict[str, int] = field(default_factory=dict)


def _local(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def daily(at_hour: int) -> Callable[[datetime], dict[str, Any]]:
    def schedule(session: datetime) -> dict[str, Any]:
        start = (session + timedelta(days=1)).replace(hour=at_hour, minute=0)
        rrule = f"FREQ=DAILY;BYHOUR={at_hour};BYMINUTE=0"
        return {"type": "recurring", "rrule": rrule, "start": _local(start)}

    return schedule


def weekly(
    times: int, at_hour: int, byday: str | None = None
) -> Callable[[datetime], dict[str, Any]]:
    def schedule(session: datetime) -> dict[str, Any]:
        start = (session + timedelta(days=2)).replace(hour=at_hour, minute=0)
        days = f";BYDAY={byday}" if byday else ""
        rrule = f"FREQ=WEEKLY{days};BYHOUR={at_hour};BYMINUTE=0;COUNT={times}"
        return {"type": "recurring", "rrule": rrule, "start": _local(start)}

    return schedule


def once(after_days: int, at_hour: int | None = None) -> Callable[[datetime], dict[str, Any]]:
    def schedule(session: datetime) -> dict[str, Any]:
        due = session + timedelta(days=after_days)
        if at_hour is not None:
            due = due.replace(hour=at_hour, minute=0)
        return {"type": "once", "due_at": _local(due)}

    return schedule


_HIERARCHY = (  # Alex's fear of buses: the steps get harder, the distress falls
    ("Stand at the bus stop for ten minutes", (60, 75, 40)),
    ("Ride the bus for one stop", (55, 70, 35)),
    ("Ride the bus for three stops", (50, 62, 28)),
    ("Ride the bus into town at rush hour", (45, 55, 20)),
)
_SOCIAL = (  # Lee's social anxiety: the last step was too much, and said so
    ("Ask a shop assistant for help", (55, 65, 30)),
    ("Join colleagues for lunch", (60, 70, 35)),
    ("Speak up once in the team meeting", (70, 85, None)),
)
_EXPOSURE_WINDOW = {"grace_minutes": 1440}


def _measures(client: str, clinician: str, scores: tuple[Behaviour, ...]) -> list[Plan]:
    phq9_intake, gad7_intake, phq9_week4, gad7_week4 = scores
    return [
        Plan(f"{client}-phq9-intake", client, clinician, "phq9", 0, once(1), phq9_intake),
        Plan(f"{client}-gad7-intake", client, clinician, "gad7", 0, once(1), gad7_intake),
        Plan(f"{client}-phq9-week4", client, clinician, "phq9", 21, once(4, 18), phq9_week4),
        Plan(f"{client}-gad7-week4", client, clinician, "gad7", 21, once(4, 18), gad7_week4),
    ]


def _mood_log(
    client: str, clinician: str, at_hour: int, behaviour: Behaviour, purpose: str | None = None
) -> Plan:
    return Plan(
        f"{client}-mood",
        client,
        clinician,
        "mood_log",
        0,
        daily(at_hour),
        behaviour,
        title="Evening mood check",
        purpose=purpose,
    )


MOOD_PURPOSE = "To see which days lift your mood, as we agreed."
PLANS: tuple[Plan, ...] = (
    # Alex: low mood and a fear of buses, on both clinicians' teams; doing well.
    _mood_log("alex", "okafor", 20, mood_log(0.82, 0.08, (4, 7), (5, 8)), MOOD_PURPOSE),
    Plan(
        "alex-thoughts",
        "alex",
        "okafor",
        "thought_record",
        0,
        weekly(4, 19),
        thought_records(0.9),
    ),
    *(
        Plan(
            f"alex-exposure-{n}",
            "alex",
            "reyes",
            "exposure",
            7 * n,
            once(3, 18),
            exposure(step, suds),
            title=step,
            difficulty_step=n + 1,
            purpose="A step towards taking the bus to work again.",
            window=_EXPOSURE_WINDOW,
        )
        for n, (step, suds) in enumerate(_HIERARCHY)
    ),
    *_measures(
        "alex",
        "okafor",
        (phq9(16), gad7(14), phq9(9, review="Down from 16 to 9: a real change."), gad7(8)),
    ),
    # Sam: struggling; logs less and less, and the week-4 PHQ-9 raises the distress flag.
    _mood_log("sam", "okafor", 20, mood_log(0.7, 0.15, (4, 3), (6, 3), fading=0.45), MOOD_PURPOSE),
    Plan("sam-thoughts", "sam", "okafor", "thought_record", 0, weekly(3, 19), thought_records(0.5)),
    *_measures("sam", "okafor", (phq9(14), gad7(11), phq9(17, item_9=1), gad7(12))),
    # Priya: a daily morning practice, steadily better.
    Plan(
        "priya-mindfulness",
        "priya",
        "okafor",
        "mindfulness",
        0,
        daily(8),
        mindfulness(0.8),
        title="Morning breathing space",
    ),
    *_measures("priya", "okafor", (phq9(12), gad7(9), phq9(6), gad7(5))),
    # Jordan: behavioural activation with Dr Reyes.
    Plan(
        "jordan-activities",
        "jordan",
        "reyes",
        "activity_schedule",
        0,
        weekly(12, 19, "MO,WE,FR"),
        activities(0.8),
    ),
    Plan("jordan-reading", "jordan", "reyes", "reading", 0, once(5, 21), reading),
    *_measures("jordan", "reyes", (phq9(18), gad7(7), phq9(11), gad7(5))),
    # Lee: social anxiety, on both teams; a mood log and a hierarchy that got hard at the top.
    _mood_log("lee", "reyes", 21, mood_log(0.75, 0.1, (5, 6), (5, 7))),
    *(
        Plan(
            f"lee-exposure-{n}",
            "lee",
            "reyes",
            "exposure",
            7 * n,
            once(4, 12),
            exposure(step, suds, partial=suds[2] is None),
            title=step,
            difficulty_step=n + 2,
            window=_EXPOSURE_WINDOW,
        )
        for n, (step, suds) in enumerate(_SOCIAL)
    ),
    *_measures("lee", "reyes", (phq9(8), gad7(16), phq9(5), gad7(10))),
)


# Playing the story


class _Story:
    def __init__(self, database: Database, tenant_id: str, oauth_client: str, now: datetime):
        self.database = database
        self.tenant_id = tenant_id
        self.oauth_client = oauth_client
        self.start = now - HISTORY
        self.end = now
        self.at = self.start
        self.ids: dict[str, str] = {}
        self.worked_at: datetime | None = None
        self._queue: list[tuple[datetime, int, Callable[[AsyncSession], Awaitable[None]]]] = []
        self._order = count()

    def principal(self, kind: Context, key: str) -> Principal:
        subject = self.ids[key] if kind is not Context.system else self.oauth_client
        return Principal(self.tenant_id, kind, subject, self.oauth_client, ACTOR, ScopeSet())

    def at_time(self, when: datetime, act: Callable[[AsyncSession], Awaitable[None]]) -> None:
        if when < self.end:
            heapq.heappush(self._queue, (when, next(self._order), act))

    async def run(self, session: AsyncSession) -> None:
        """Every action in story order, each after the worker has caught up with its time.
        Each sees the database afresh (`expire_all`), as it would in a transaction of its
        own; they all share one, so that the demo is made whole or not at all."""
        while self._queue:
            when, _, act = heapq.heappop(self._queue)
            await self._work(session, when)
            await act(session)
            session.expire_all()
        await self._work(session, self.end)

    async def _work(self, session: AsyncSession, when: datetime) -> None:
        """The worker's time-driven jobs, as they would have run just before `when`, in the
        worker's order and through its service functions: series extended, occurrences opened
        and missed, assignments finished, reminders fired. The rest (events handed on,
        webhooks sent, old events pruned) runs once the story is saved, as a whole round."""
        self.at = when
        if when != self.end and self.worked_at and when - self.worked_at < WORKER_EVERY:
            return
        self.worked_at = when
        batch = self.database.settings.worker_batch_size
        for job in TIME_DRIVEN_JOBS:
            while await job(session, when, batch) >= batch:
                pass
        while claimed := await firing.claim_due(session, when, batch, ACTOR):
            await firing.fire_claimed(session, claimed, ACTOR, when)
        session.expire_all()


async def _cast(story: _Story, session: AsyncSession) -> None:
    system = story.principal(Context.system, "")
    for person in CLINICIANS:
        clinician = ClinicianCreate(external_id=person.external_id, display_name=person.name)
        story.ids[person.key] = (await people.create_clinician(session, system, clinician)).id
    for person in CLIENTS:
        body = ClientCreate.model_validate(
            {
                "external_id": person.external_id,
                "display_name": person.name,
                "time_zone": person.time_zone,
                "locale": person.locale,
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "next_session_at": _iso(story.start + timedelta(days=7)),
            }
        )
        client = await people.create_client(session, system, body)
        story.ids[person.key] = client.id
        for member in person.team:
            await people.add_to_care_team(session, system, client, story.ids[member])


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _book_sessions(story: _Story) -> None:
    for person in CLIENTS:
        for day in SESSION_DAYS[1:]:

            async def book(session: AsyncSession, person: Person = person, day: int = day) -> None:
                clinician = story.principal(Context.clinician, person.team[0])
                client = await people.get_client(session, clinician, story.ids[person.key])
                body = ClientUpdate.model_validate(
                    {"next_session_at": _iso(story.start + timedelta(days=day + 7))}
                )
                await people.update_client(session, clinician, client, body, story.at)

            story.at_time(story.start + timedelta(days=day, minutes=50), book)


def _assign(story: _Story, plan: Plan) -> None:
    person = next(p for p in CLIENTS if p.key == plan.client)
    assigned_at = story.start + timedelta(days=plan.day, minutes=45)

    async def assign(session: AsyncSession) -> None:
        local = assigned_at.astimezone(ZoneInfo(person.time_zone)).replace(tzinfo=None)
        body = AssignmentCreate.model_validate(
            {
                "client_id": story.ids[plan.client],
                "template_id": builtin_template_id(plan.template),
                "schedule": plan.schedule(local),
                "window": plan.window,
                **{
                    name: value
                    for name in ("title", "purpose", "difficulty_step")
                    if (value := getattr(plan, name)) is not None
                },
            }
        )
        clinician = story.principal(Context.clinician, plan.clinician)
        _, occurrences = await assignments.create(session, clinician, body, story.at)
        for occurrence in occurrences:
            # Not for secrets: a story that is the same for the same start.
            rng = random.Random(f"{SEED}:{plan.key}:{occurrence.ordinal}")  # noqa: S311
            progress = (occurrence.due_at - story.start) / HISTORY
            outcome = plan.behaviour(rng, occurrence.ordinal, min(progress, 1.0))
            if outcome is not None:
                _complete(
                    story, plan, occurrence.id, occurrence.due_at, occurrence.opens_at, outcome
                )

    story.at_time(assigned_at, assign)


def _complete(
    story: _Story,
    plan: Plan,
    occurrence_id: str,
    due_at: datetime,
    opens_at: datetime,
    outcome: Outcome,
) -> None:
    when = max(due_at + timedelta(minutes=outcome.minutes_from_due), opens_at)

    async def complete(session: AsyncSession) -> None:
        body = CompletionCreate.model_validate(
            {
                "occurrence_id": occurrence_id,
                "status": outcome.status,
                "answers": outcome.answers,
                "barriers": list(outcome.barriers),
                "barrier_note": outcome.barrier_note,
                "helpfulness": outcome.helpfulness,
                "effort": outcome.effort,
                "minutes_spent": outcome.minutes_spent,
                "reflection": outcome.reflection,
                "completed_at": _iso(story.at),
            }
        )
        client = story.principal(Context.client, plan.client)
        completion = await completions.create(session, client, body, story.at)
        if outcome.review is not None:
            _review(story, plan, completion.id, outcome.review)

    story.at_time(when, complete)


def _review(story: _Story, plan: Plan, completion_id: str, feedback: str) -> None:
    async def review(session: AsyncSession) -> None:
        clinician = story.principal(Context.clinician, plan.clinician)
        completion = await completions.get(session, clinician, completion_id)
        await completions.review(session, clinician, completion, feedback, story.at)

    story.at_time(story.at + timedelta(hours=18), review)


async def seed(database: Database, now: datetime) -> dict[str, Any]:
    """The demo tenant with its four weeks up to `now`; its ids and credentials."""
    async with database.sessionmaker() as session, session.begin():
        start = now - HISTORY
        with stamped_by(lambda: start):
            issued = await tenants.create_tenant(session, "Demo clinic")
        story = _Story(database, issued.tenant_id, issued.client_id, now)
        with stamped_by(lambda: story.at):
            await _cast(story, session)
            _book_sessions(story)
            for plan in PLANS:
                _assign(story, plan)
            await story.run(session)
    await loop.run_once(database, now, database.settings.worker_batch_size)
    return {
        "tenant_id": issued.tenant_id,
        "client_id": issued.client_id,
        "client_secret": issued.client_secret,
        "clinician": story.ids[CLINICIANS[0].key],
        "client": story.ids[CLIENTS[0].key],
        "clinicians": {p.external_id: story.ids[p.key] for p in CLINICIANS},
        "clients": {p.external_id: story.ids[p.key] for p in CLIENTS},
        "seeded_at": _iso(now),
    }


async def ensure(database: Database, path: Path, now: datetime) -> tuple[dict[str, Any], bool]:
    """The demo kept at `path` if its tenant is still in the database; else a new one, seeded
    and kept there. Whether it was seeded now."""
    kept = load(path)
    if kept is not None:
        async with database.sessionmaker() as session:
            if await session.get(Tenant, kept["tenant_id"]) is not None:
                return kept, False
    demo = await seed(database, now)
    save(demo, path)
    return demo, True


def instructions(demo: dict[str, Any], base_url: str) -> str:
    credentials = f"{demo['client_id']}:{demo['client_secret']}"
    clients = demo.get("clients", {"demo-client": demo["client"]})
    clinicians = demo.get("clinicians", {"demo-clinician": demo["clinician"]})
    exchange = "-d grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
    as_kind = "-d subject_token_type=urn:homework:token-type"
    alex, okafor = demo["client"], demo["clinician"]
    return f"""
Demo clinic ready: {len(clinicians)} clinicians, {len(clients)} clients and four weeks of \
homework (credentials kept in {DEMO_FILE}). Paste these:

  BASE={base_url}
  CREDS='{credentials}'

  # your backend's token, and Dr Okafor's (15 minutes), asked for by the vendor's own id
  TOKEN=$(curl -s -u "$CREDS" -d grant_type=client_credentials $BASE/oauth/token \\
    | {READ_TOKEN})
  CLIN=$(curl -s -u "$CREDS" {exchange} \\
    -d subject_token=demo-clinician {as_kind}:clinician-external-id \\
    $BASE/oauth/token | {READ_TOKEN})

  # her caseload, most in need first (Sam's latest PHQ-9 raised a distress flag)
  curl -s -w '\\n' -H "Authorization: Bearer $CLIN" $BASE/v1/clinicians/{okafor}/caseload

  # Alex's four weeks (mood logs, thought records, an exposure hierarchy, PHQ-9 and GAD-7),
  # and what to read before Alex's next session
  curl -s -w '\\n' -H "Authorization: Bearer $CLIN" $BASE/v1/clients/{alex}/adherence
  curl -s -w '\\n' -H "Authorization: Bearer $CLIN" $BASE/v1/clients/{alex}/session-summary

  # Alex's own token, and today's homework as Alex's app shows it
  CLIENT_TOKEN=$(curl -s -u "$CREDS" {exchange} \\
    -d subject_token=demo-client {as_kind}:client-external-id \\
    $BASE/oauth/token | {READ_TOKEN})
  curl -s -w '\\n' -H "Authorization: Bearer $CLIENT_TOKEN" $BASE/v1/me/homework

  # who read what
  curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" $BASE/v1/audit-events

Clinicians (subject_token=<their external id> for their tokens):
{_listing(clinicians)}
Clients:
{_listing(clients)}
"""


def _listing(ids: dict[str, str]) -> str:
    return "\n".join(f"  {external:<18} {ours}" for external, ours in ids.items())


def load(path: Path = DEMO_FILE) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save(demo: dict[str, Any], path: Path = DEMO_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo, indent=2))
    path.chmod(0o600)
