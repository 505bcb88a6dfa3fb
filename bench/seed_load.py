"""A realistic tenant for the load benchmark (bench/load.py), seeded with set-based SQL.

One tenant (created beforehand by `homework tenants create`, so that its OAuth client is real),
and in it:

- 500 clinicians; clinician #1 treats exactly 40 clients (the caseload scenario), the other 499
  share the remaining 9,960 clients, about 20 each;
- 10,000 clients in eight time zones (half-hour Asia/Kolkata among them), each on one care team;
- 20 assignments per client (200,000): 18 finished ones spread over the last six months and two
  active ones (one started five days ago, one yesterday), each a daily series of 10 at a
  kind-dependent local hour, all materialised: 2,000,000 occurrences;
- occurrences whose window has closed are resolved (about 45 % completed, 5 % partial, 4 %
  declined, the rest missed); the one whose window holds "now" is `open`, later ones
  `upcoming`: every client has open homework in its local day when the run starts;
- a completion (with answers valid for its kind, scores and severity bands for PHQ-9 and GAD-7,
  barriers for declined work, some distress flags, reviews on most older ones) and its first
  revision for every completed, partial or declined occurrence (about 1,000,000);
- a reminder for every unresolved occurrence and for about 46 % of the resolved ones
  (about 1,000,000: `scheduled` ahead, `sent` behind);
- the outbox as it would be: `assignment.created` and `completion.created` events, fanned out.

Ids have the service's shape (`prefix_` + 10 Crockford base32 characters of the creation time in
milliseconds + 16 more), so that newest-first pagination orders them as it would the service's.
Rows are coherent by construction; foreign-key triggers are skipped while seeding (superuser).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

CLIENTS = 10_000
CLINICIANS = 500
CASELOAD_CLIENTS = 40
ASSIGNMENTS_PER_CLIENT = 20
OCCURRENCES_PER_ASSIGNMENT = 10

TIME_ZONES = (
    "Europe/London",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Sao_Paulo",
)
DAILY_KINDS = (
    "mood_log",
    "thought_record",
    "activity_schedule",
    "exposure",
    "mindfulness",
    "journal",
    "skill_practice",
    "reading",
)
ALL_KINDS = (*DAILY_KINDS, "phq9", "gad7")


def _sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


# The service's ids: prefix, 10 Crockford base32 characters of epoch milliseconds, 16 more
# (here md5 hex digits, which are all in the Crockford alphabet). Written out as expressions, not
# SQL functions: a function whose argument is used ten times is not inlined, and calling it per
# row costs ten times more than the whole rest of the row.
def _b32(ms: str) -> str:
    """10 Crockford base32 characters of the bigint column `ms`."""
    return " || ".join(
        f"substr('0123456789abcdefghjkmnpqrstvwxyz', (({ms} >> {5 * i}) & 31)::int + 1, 1)"
        for i in range(9, -1, -1)
    )


def _id(prefix: str, stamp: str, n: str) -> str:
    """`prefix_` + the time characters `stamp` + 16 characters unique to `n`."""
    return f"'{prefix}_' || {stamp} || substr(md5('{prefix}:' || ({n})::text), 1, 16)"


def _ms(at: str) -> str:
    return f"(extract(epoch FROM {at}) * 1000)::bigint"


def _dice(n: str) -> str:
    """A well-mixed non-negative integer for each n: the dice of this seed."""
    return f"abs(hashint8(({n})::bigint))"


# $1 = now, $2 = the tenant's id (see _bind). The staging tables are temporary: they go with
# the connection.
STAGING = [
    f"""CREATE TEMP TABLE s_clinician AS
        SELECT n, {_id("cln", _b32("ms"), "n")} AS id
        FROM generate_series(1, {CLINICIANS}) AS n,
        LATERAL (SELECT {_ms("$1::timestamptz - interval '400 days' + n * interval '1 minute'")}
                          AS ms) AS x""",
    f"""CREATE TEMP TABLE s_client AS
        SELECT c, id, tz, clinician_n, created_at, ($1::timestamptz AT TIME ZONE tz)::date AS today
        FROM generate_series(1, {CLIENTS}) AS c,
        LATERAL (SELECT ({_sql_array(TIME_ZONES)})[1 + c % {len(TIME_ZONES)}] AS tz,
                        CASE WHEN c <= {CASELOAD_CLIENTS} THEN 1
                             ELSE 2 + (c - {CASELOAD_CLIENTS} - 1) % {CLINICIANS - 1}
                        END AS clinician_n,
                        $1::timestamptz - interval '220 days' + c * interval '1 second'
                          AS created_at) AS x,
        LATERAL (SELECT {_ms("created_at")} AS ms) AS y,
        LATERAL (SELECT {_id("clt", _b32("ms"), "c")} AS id) AS z""",
    # Assignment k of client c: the 18 first are finished, 18 started 5 days ago, 19 yesterday.
    f"""CREATE TEMP TABLE s_assign AS
        SELECT (c.c - 1) * {ASSIGNMENTS_PER_CLIENT} + k + 1 AS a, c.c, k, c.id AS client_id,
               cl.id AS clinician_id, c.tz, c.today, sd.start_day, kd.kind, hr.hour,
               ca.created_at, st.stamp,
               {_id("asg", "st.stamp", f"(c.c - 1) * {ASSIGNMENTS_PER_CLIENT} + k + 1")} AS id
        FROM s_client AS c
        JOIN s_clinician AS cl ON cl.n = c.clinician_n
        CROSS JOIN generate_series(0, {ASSIGNMENTS_PER_CLIENT - 1}) AS k,
        LATERAL (SELECT CASE WHEN k < 18 THEN -185 + 10 * k WHEN k = 18 THEN -5 ELSE -1 END
                          AS start_day) AS sd,
        LATERAL (SELECT CASE WHEN k = 19 THEN 'mood_log'
                             WHEN k = 18 THEN ({_sql_array(DAILY_KINDS)})[1 + c.c % 8]
                             ELSE ({_sql_array(ALL_KINDS)})[1 + (c.c + k) % 10]
                        END AS kind) AS kd,
        LATERAL (SELECT CASE kd.kind WHEN 'mood_log' THEN 20 WHEN 'mindfulness' THEN 8
                                     WHEN 'journal' THEN 21 WHEN 'activity_schedule' THEN 19
                                     ELSE 18 END AS hour) AS hr,
        -- Assigned in session the day before the series starts, mid-morning local time.
        LATERAL (SELECT ((c.today + sd.start_day - 1) + time '10:00') AT TIME ZONE c.tz
                        + (c.c % 3600) * interval '1 second' AS created_at) AS ca,
        LATERAL (SELECT {_ms("ca.created_at")} AS ms OFFSET 0) AS ms,
        -- The creation time's characters, shared by the ids of the rows created with it.
        LATERAL (SELECT {_b32("ms.ms")} AS stamp) AS st""",
    "CREATE INDEX ON s_assign (id)",
    "ANALYZE s_client",
    "ANALYZE s_assign",
]

TABLES = [
    """INSERT INTO clinicians (id, tenant_id, external_id, display_name, created_at, updated_at,
                                version)
        SELECT id, $2, 'vendor-clinician-' || n, 'Clinician ' || n,
               $1::timestamptz - interval '400 days' + n * interval '1 minute',
               $1::timestamptz - interval '400 days' + n * interval '1 minute', 1
        FROM s_clinician""",
    """INSERT INTO clients (id, tenant_id, external_id, display_name, time_zone, locale,
                            quiet_hours_start, quiet_hours_end, next_session_at,
                            reminders_muted, max_reminders_per_day, created_at, updated_at,
                            version)
       SELECT id, $2, 'vendor-client-' || c, NULL, tz,
              CASE WHEN c % 5 = 0 THEN 'de-DE' ELSE 'en-GB' END,
              CASE WHEN c % 3 = 0 THEN '22:00' END, CASE WHEN c % 3 = 0 THEN '07:00' END,
              ((today + 1 + c % 7) + time '15:00') AT TIME ZONE tz,
              c % 50 = 0, CASE WHEN c % 4 = 0 THEN 3 END, created_at, created_at, 1
       FROM s_client""",
    """INSERT INTO care_team_members (client_id, clinician_id, tenant_id, created_at)
       SELECT c.id, cl.id, $2, c.created_at
       FROM s_client AS c JOIN s_clinician AS cl ON cl.n = c.clinician_n""",
    """INSERT INTO assignments (id, tenant_id, client_id, clinician_id, template_id,
                                template_version_id, kind, title, instructions, purpose,
                                difficulty_step, status, schedule_type, rrule, start_local,
                                starts_at, due_at, opens_before_minutes, grace_minutes,
                                materialized_until, series_complete, ordinal_base,
                                reminder_policy, cancelled_at, ended_at, created_at, updated_at,
                                version)
       SELECT a.id, $2, a.client_id, a.clinician_id, tv.template_id, tv.id, a.kind, tv.name,
              tv.instructions,
              'So that ' || (ARRAY['evenings feel less heavy', 'you can get back to running',
                                   'the Monday dread has less grip',
                                   'you notice what helps'])[1 + a.a % 4],
              1 + a.a % 5,
              CASE WHEN a.k < 18 THEN 'completed' ELSE 'active' END,
              'recurring', 'FREQ=DAILY;COUNT=10',
              to_char((a.today + a.start_day) + make_time(a.hour, 0, 0), 'YYYY-MM-DD"T"HH24:MI'),
              a.created_at, NULL, 720, 720,
              ((a.today + a.start_day + 9) + make_time(a.hour, 0, 0)) AT TIME ZONE a.tz,
              true, 0, NULL, NULL,
              CASE WHEN a.k < 18 THEN ((a.today + a.start_day + 10) + make_time(a.hour, 0, 0))
                                      AT TIME ZONE a.tz END,
              a.created_at, a.created_at, 1
       FROM s_assign AS a
       JOIN template_versions AS tv
         ON tv.template_id = 'tpl_builtin_' || a.kind AND tv.number = 1""",
    # Occurrence o of assignment a: due at the kind's local hour on day start_day + o, its window
    # 12 hours either side. Closed windows are resolved by the dice; the open one is `open`.
    f"""INSERT INTO occurrences (id, tenant_id, assignment_id, client_id, ordinal, due_at,
                                 opens_at, closes_at, local_due, time_zone, status, created_at,
                                 updated_at)
        SELECT {_id("occ", "a.stamp", f"a.a * {OCCURRENCES_PER_ASSIGNMENT} + o")}, $2, a.id,
               a.client_id, o, d.due, d.due - interval '720 minutes',
               d.due + interval '720 minutes', to_char(l.local_ts, 'YYYY-MM-DD"T"HH24:MI'), a.tz,
               s.status, a.created_at,
               CASE WHEN s.status IN ('open', 'upcoming') THEN a.created_at
                    ELSE d.due + interval '720 minutes' END
        FROM s_assign AS a
        CROSS JOIN generate_series(0, {OCCURRENCES_PER_ASSIGNMENT - 1}) AS o,
        LATERAL (SELECT (a.today + a.start_day + o) + make_time(a.hour, 0, 0) AS local_ts) AS l,
        LATERAL (SELECT l.local_ts AT TIME ZONE a.tz AS due) AS d,
        LATERAL (SELECT {_dice(f"a.a * {OCCURRENCES_PER_ASSIGNMENT} + o")} % 100 AS r) AS h,
        LATERAL (SELECT CASE
                   WHEN d.due + interval '720 minutes' <= $1::timestamptz THEN
                     CASE WHEN h.r < 45 THEN 'completed' WHEN h.r < 50 THEN 'partial'
                          WHEN h.r < 54 THEN 'declined' ELSE 'missed' END
                   WHEN d.due - interval '720 minutes' <= $1::timestamptz THEN 'open'
                   ELSE 'upcoming' END AS status) AS s
        ORDER BY 1""",
    # One completion per completed, partial or declined occurrence, with answers for its kind.
    f"""INSERT INTO completions (id, tenant_id, occurrence_id, assignment_id, client_id, kind,
                                 status, answers, barriers, barrier_note, helpfulness, effort,
                                 minutes_spent, reflection, completed_at, time_zone, received_at,
                                 late, recorded_by_kind, recorded_by_id, in_session, score,
                                 severity, distress_flagged, distress_reasons, feedback,
                                 reviewed_by, reviewed_at, created_at, updated_at, version)
        SELECT {_id("cmp", _b32("tm.ms"), "n.n")}, $2, o.id, o.assignment_id, o.client_id,
               a.kind, st.status,
               CASE WHEN st.status = 'not_done' THEN NULL
                    WHEN a.kind IN ('phq9', 'gad7') THEN m.answers ELSE ans.answers END,
               CASE WHEN st.status = 'done' THEN '[]'::json
                    WHEN st.status = 'partial' THEN '["no_time"]'::json
                    WHEN bb.overwhelmed THEN '["felt_overwhelmed"]'::json
                    ELSE json_build_array((ARRAY['forgot', 'no_time', 'too_hard',
                                                 'not_relevant'])[1 + dd.d % 4]) END,
               NULL,
               CASE WHEN st.status <> 'not_done' THEN (dd.d / 7 % 11)::int END,
               CASE WHEN st.status <> 'not_done' THEN (dd.d / 11 % 11)::int END,
               CASE WHEN st.status <> 'not_done' THEN (5 + dd.d / 13 % 25)::int END,
               CASE WHEN dd.d % 10 = 0 THEN 'It helped more than I expected.' END,
               t.completed_at, o.time_zone, t.completed_at + interval '3 seconds',
               t.completed_at > o.closes_at, 'client', o.client_id, false,
               CASE WHEN st.status = 'done' AND a.kind IN ('phq9', 'gad7') THEN m.score END,
               CASE WHEN st.status = 'done' AND a.kind = 'phq9' THEN
                      CASE WHEN m.score <= 4 THEN 'minimal' WHEN m.score <= 9 THEN 'mild'
                           WHEN m.score <= 14 THEN 'moderate'
                           WHEN m.score <= 19 THEN 'moderately_severe' ELSE 'severe' END
                    WHEN st.status = 'done' AND a.kind = 'gad7' THEN
                      CASE WHEN m.score <= 4 THEN 'minimal' WHEN m.score <= 9 THEN 'mild'
                           WHEN m.score <= 14 THEN 'moderate' ELSE 'severe' END END,
               fl.flagged,
               CASE WHEN bb.overwhelmed AND st.status = 'not_done'
                      THEN '["barrier:felt_overwhelmed"]'::json
                    WHEN fl.flagged THEN '["answer:/item_9"]'::json ELSE '[]'::json END,
               CASE WHEN rv.reviewed THEN 'Thank you: let us look at this together.' END,
               CASE WHEN rv.reviewed THEN a.clinician_id END,
               CASE WHEN rv.reviewed THEN t.completed_at + interval '1 day' END,
               t.completed_at + interval '3 seconds',
               CASE WHEN rv.reviewed THEN t.completed_at + interval '1 day'
                    ELSE t.completed_at + interval '3 seconds' END, 1
        FROM occurrences AS o
        JOIN s_assign AS a ON a.id = o.assignment_id,
        LATERAL (SELECT a.a * {OCCURRENCES_PER_ASSIGNMENT} + o.ordinal AS n) AS n,
        LATERAL (SELECT {_dice("n.n * 31 + 7")} AS d) AS dd,
        LATERAL (SELECT CASE o.status WHEN 'completed' THEN 'done' WHEN 'partial' THEN 'partial'
                                      ELSE 'not_done' END AS status) AS st,
        -- Mostly within the window before the due time; one in twenty a day late.
        LATERAL (SELECT CASE WHEN dd.d % 20 = 0 THEN o.closes_at + interval '1 hour'
                             ELSE o.due_at - (dd.d % 600) * interval '1 minute'
                        END AS completed_at) AS t,
        LATERAL (SELECT {_ms("t.completed_at")} AS ms OFFSET 0) AS tm,
        LATERAL (SELECT dd.d % 7 = 0 AS overwhelmed) AS bb,
        LATERAL (SELECT (dd.d / 3 % 4)::int AS i1, (dd.d / 5 % 4)::int AS i2,
                        (dd.d / 17 % 4)::int AS i3, (dd.d / 19 % 4)::int AS i4,
                        (dd.d / 23 % 4)::int AS i5, (dd.d / 29 % 4)::int AS i6,
                        (dd.d / 37 % 4)::int AS i7, (dd.d / 41 % 3)::int AS i8,
                        CASE WHEN dd.d % 40 = 0 THEN 1 ELSE 0 END AS i9) AS it,
        LATERAL (SELECT CASE WHEN a.kind = 'phq9' THEN
                          json_build_object('item_1', it.i1, 'item_2', it.i2, 'item_3', it.i3,
                                            'item_4', it.i4, 'item_5', it.i5, 'item_6', it.i6,
                                            'item_7', it.i7, 'item_8', it.i8, 'item_9', it.i9,
                                            'difficulty', 'somewhat_difficult')
                        ELSE json_build_object('item_1', it.i1, 'item_2', it.i2, 'item_3', it.i3,
                                               'item_4', it.i4, 'item_5', it.i5, 'item_6', it.i6,
                                               'item_7', it.i7) END AS answers,
                        CASE WHEN a.kind = 'phq9'
                             THEN it.i1 + it.i2 + it.i3 + it.i4 + it.i5 + it.i6 + it.i7 + it.i8
                                  + it.i9
                             ELSE it.i1 + it.i2 + it.i3 + it.i4 + it.i5 + it.i6 + it.i7
                        END AS score) AS m,
        LATERAL (SELECT CASE a.kind
          WHEN 'mood_log' THEN json_build_object(
            'mood', dd.d % 11, 'emotions', json_build_array((ARRAY['calm', 'tired', 'anxious',
            'hopeful', 'sad', 'content'])[1 + dd.d % 6]), 'note', 'Walked at lunch')
          WHEN 'thought_record' THEN json_build_object(
            'situation', 'Meeting with my manager', 'automatic_thought', 'I will get it wrong',
            'emotion', 'anxious', 'emotion_intensity', dd.d % 101,
            'alternative_thought', 'I have prepared; mistakes can be fixed',
            'intensity_after', dd.d / 3 % 101)
          WHEN 'activity_schedule' THEN json_build_object(
            'activity', 'Short walk', 'planned', true, 'done', dd.d % 3 > 0,
            'mastery', dd.d % 11, 'pleasure', dd.d / 11 % 11)
          WHEN 'exposure' THEN json_build_object(
            'step', 'Take the bus two stops', 'suds_before', 40 + dd.d % 30,
            'suds_peak', 60 + dd.d % 40, 'suds_after', 20 + dd.d % 30,
            'duration_minutes', 10 + dd.d % 50, 'learning', 'It passed sooner than I feared')
          WHEN 'mindfulness' THEN json_build_object(
            'practice', 'Breathing space', 'minutes', 3 + dd.d % 20, 'attention', dd.d % 11)
          WHEN 'journal' THEN json_build_object('entries', json_build_array(
            json_build_object('good_thing', 'Coffee with a friend', 'why', 'I asked her'),
            json_build_object('good_thing', 'Finished the report')))
          WHEN 'skill_practice' THEN json_build_object(
            'skill', '5-4-3-2-1 grounding', 'how_it_went', 'Calmer after', 'confidence',
            dd.d % 11)
          ELSE json_build_object('material', 'Chapter 3', 'key_takeaway',
                                 'Avoidance keeps fear going') END AS answers) AS ans,
        LATERAL (SELECT st.status = 'done' AND a.kind = 'phq9' AND it.i9 > 0 OR
                        st.status = 'not_done' AND bb.overwhelmed AS flagged) AS fl,
        -- Older work has been reviewed, mostly; the last week's mostly not yet.
        LATERAL (SELECT t.completed_at < $1::timestamptz - interval '7 days'
                        AND dd.d % 10 < 8 AS reviewed) AS rv
        WHERE o.status IN ('completed', 'partial', 'declined')
        ORDER BY 1""",
    """INSERT INTO completion_revisions (id, completion_id, number, snapshot, recorded_by_kind,
                                         recorded_by_id, created_at)
       SELECT 'cmr_' || substr(c.id, 5), c.id, 1,
              json_build_object('status', c.status, 'answers', c.answers,
                                'barriers', c.barriers, 'barrier_note', c.barrier_note,
                                'helpfulness', c.helpfulness, 'effort', c.effort,
                                'minutes_spent', c.minutes_spent, 'reflection', c.reflection),
              'client', c.client_id, c.created_at
       FROM completions AS c
       ORDER BY 1""",
    # Every unresolved occurrence has its reminder; about 46 % of the resolved ones had one.
    f"""INSERT INTO reminders (id, tenant_id, client_id, assignment_id, occurrence_id, due_at,
                               local_due, time_zone, state, reason, lease_owner, lease_until,
                               sent_at, created_at, updated_at, version)
        SELECT {_id("rem", "a.stamp", f"a.a * {OCCURRENCES_PER_ASSIGNMENT} + o.ordinal")}, $2,
               o.client_id, o.assignment_id, o.id, r.due,
               to_char(r.due AT TIME ZONE o.time_zone, 'YYYY-MM-DD"T"HH24:MI'), o.time_zone,
               CASE WHEN r.due > $1::timestamptz THEN 'scheduled' ELSE 'sent' END, NULL, NULL,
               NULL, CASE WHEN r.due <= $1::timestamptz THEN r.due END, o.created_at,
               CASE WHEN r.due <= $1::timestamptz THEN r.due ELSE o.created_at END, 1
        FROM occurrences AS o
        JOIN s_assign AS a ON a.id = o.assignment_id,
        LATERAL (SELECT o.due_at - interval '1 hour' AS due) AS r
        WHERE o.status IN ('open', 'upcoming')
           OR {_dice(f"a.a * {OCCURRENCES_PER_ASSIGNMENT} + o.ordinal + 1")} % 100 < 46
        ORDER BY 1""",
    # The outbox, already fanned out: one event per assignment and per completion.
    """INSERT INTO events (id, tenant_id, type, occurred_at, client_id, subject, changed_fields,
                           sequence, fanned_out_at, endpoint_id)
       SELECT 'evt_' || substr(e.source_id, 5), $2, e.type, e.at, e.client_id, e.subject,
              '[]'::json, row_number() OVER (ORDER BY e.at, e.source_id), e.at, NULL
       FROM (SELECT id AS source_id, 'assignment.created' AS type, created_at AS at, client_id,
                    json_build_object('assignment_id', id) AS subject
             FROM assignments
             UNION ALL
             SELECT id, 'completion.created', created_at, client_id,
                    json_build_object('completion_id', id, 'occurrence_id', occurrence_id,
                                      'assignment_id', assignment_id)
             FROM completions) AS e
       ORDER BY 1""",
    "UPDATE tenants SET event_sequence = (SELECT count(*) FROM events) WHERE id = $2",
]

# Bulk loading is faster into tables without their secondary indexes and unique constraints:
# they are dropped here and rebuilt, from their own definitions, once the rows are in. Primary
# keys stay (foreign keys refer to them); rows go in in primary-key order instead.
BULK_TABLES = (
    "assignments",
    "occurrences",
    "completions",
    "completion_revisions",
    "reminders",
    "events",
)


@dataclass(frozen=True)
class Seeded:
    seconds: float
    counts: dict[str, int]
    caseload_clinician_id: str
    clinician_id: str
    """A clinician with about 20 clients (the assignment scenarios)."""
    clinician_client_ids: list[str]
    clinician_assignment_ids: list[str]
    homework_client_id: str
    homework_items: int


async def _secondary_indexes(connection: asyncpg.Connection) -> list[tuple[str, str]]:
    """(the statement that drops it, the statement that rebuilds it), for each index and unique
    constraint of the bulk tables but their primary keys."""
    indexes = await connection.fetch(
        """SELECT i.indexname, i.indexdef
           FROM pg_indexes AS i
           WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[])
             AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)""",
        list(BULK_TABLES),
    )
    uniques = await connection.fetch(
        """SELECT c.conrelid::regclass::text AS table_name, c.conname,
                  pg_get_constraintdef(c.oid) AS definition
           FROM pg_constraint AS c
           WHERE c.contype = 'u' AND c.conrelid::regclass::text = ANY($1::text[])""",
        list(BULK_TABLES),
    )
    return [(f'DROP INDEX "{r["indexname"]}"', r["indexdef"]) for r in indexes] + [
        (
            f'ALTER TABLE {r["table_name"]} DROP CONSTRAINT "{r["conname"]}"',
            f'ALTER TABLE {r["table_name"]} ADD CONSTRAINT "{r["conname"]}" {r["definition"]}',
        )
        for r in uniques
    ]


async def seed(dsn: str, tenant_id: str, now: datetime, log: object = print) -> Seeded:
    """Fill the (migrated, empty but for the tenant) database at `dsn`."""
    say = log if callable(log) else print
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET maintenance_work_mem = '512MB'")
        await connection.execute("SET work_mem = '64MB'")
        indexes = await _secondary_indexes(connection)
        for drop, _ in indexes:
            await connection.execute(drop)
        async with connection.transaction():
            # Coherent by construction: skip the per-row foreign-key triggers (superuser only;
            # without the privilege the seed is merely slower).
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                async with connection.transaction():
                    await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("SET LOCAL synchronous_commit = off")
            for statement in STAGING:
                await connection.execute(_bind(statement, now, tenant_id))
            for statement in TABLES:
                step = time.perf_counter()
                status = await connection.execute(_bind(statement, now, tenant_id))
                words = statement.split()
                table = words[2] if words[0] == "INSERT" else words[1]
                say(
                    f"  {table:<22} {status.split()[-1]:>10} rows  "
                    f"{time.perf_counter() - step:5.1f} s"
                )
        step = time.perf_counter()
        await _rebuild(dsn, [definition for _, definition in indexes])
        say(
            f"  {len(indexes)} secondary indexes and unique constraints rebuilt in "
            f"{time.perf_counter() - step:.1f} s"
        )
        step = time.perf_counter()
        await connection.execute("VACUUM ANALYZE")
        say(f"  VACUUM ANALYZE in {time.perf_counter() - step:.1f} s")
        return await _describe(connection, time.perf_counter() - started, now)
    finally:
        await connection.close()


def _bind(statement: str, now: datetime, tenant_id: str) -> str:
    """`$1` (now) and `$2` (the tenant) as literals: both are ours, and a statement that uses
    only one of them could not be prepared with both."""
    assert "'" not in tenant_id
    return statement.replace("$1::timestamptz", f"'{now.isoformat()}'::timestamptz").replace(
        "$2", f"'{tenant_id}'"
    )


async def _rebuild(dsn: str, definitions: list[str]) -> None:
    """Rebuild the indexes on two connections at once (the machine has two cores)."""
    import asyncio

    queue = list(definitions)

    async def worker() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SET maintenance_work_mem = '512MB'")
            await connection.execute("SET max_parallel_maintenance_workers = 0")
            while queue:
                await connection.execute(queue.pop(0))
        finally:
            await connection.close()

    await asyncio.gather(worker(), worker())


async def _describe(connection: asyncpg.Connection, seconds: float, now: datetime) -> Seeded:
    counts = {}
    for table in (
        "clients",
        "clinicians",
        "care_team_members",
        "assignments",
        "occurrences",
        "completions",
        "completion_revisions",
        "reminders",
        "events",
    ):
        counts[table] = await connection.fetchval(f"SELECT count(*) FROM {table}")
    caseload = await connection.fetchval(
        "SELECT clinician_id FROM care_team_members GROUP BY clinician_id "
        "HAVING count(*) = $1 LIMIT 1",
        CASELOAD_CLIENTS,
    )
    clinician = await connection.fetchval(
        "SELECT id FROM clinicians WHERE external_id = 'vendor-clinician-2'"
    )
    client_ids = [
        r["client_id"]
        for r in await connection.fetch(
            "SELECT client_id FROM care_team_members WHERE clinician_id = $1 ORDER BY client_id",
            clinician,
        )
    ]
    assignment_ids = [
        r["id"]
        for r in await connection.fetch(
            "SELECT id FROM assignments WHERE client_id = ANY($1::text[]) ORDER BY id", client_ids
        )
    ]
    # The homework scenario's client: the first of that clinician's, whose local day has open
    # work (every client's does, by construction; checked here).
    homework_client = client_ids[0]
    items = await connection.fetchval(
        """SELECT count(*) FROM occurrences AS o JOIN assignments AS a ON a.id = o.assignment_id
           JOIN clients AS c ON c.id = o.client_id
           WHERE o.client_id = $1 AND a.status = 'active'
             AND o.status IN ('open', 'started', 'upcoming', 'completed', 'partial')
             AND o.closes_at > (($2::timestamptz AT TIME ZONE c.time_zone)::date)::timestamp
                               AT TIME ZONE c.time_zone
             AND o.opens_at < (($2::timestamptz AT TIME ZONE c.time_zone)::date + 1)::timestamp
                              AT TIME ZONE c.time_zone""",
        homework_client,
        now,
    )
    return Seeded(
        seconds=seconds,
        counts=counts,
        caseload_clinician_id=caseload,
        clinician_id=clinician,
        clinician_client_ids=client_ids,
        clinician_assignment_ids=assignment_ids,
        homework_client_id=homework_client,
        homework_items=items,
    )
