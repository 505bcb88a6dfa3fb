/**
 * The whole flow against a running Homework API, typed end to end by the generated schema:
 *
 *   system token → clinician and client → care team → clinician and client tokens →
 *   assign a mood log (as the clinician) → the client's today → complete it (as the client) →
 *   the client's adherence (as the clinician).
 *
 *   HOMEWORK_URL=http://127.0.0.1:8000 HOMEWORK_CLIENT_ID=oac_… HOMEWORK_CLIENT_SECRET=hws_… \
 *     npx tsx examples/flow.ts
 *
 * It imports the package by its name, as an app that installed it would: Node resolves
 * `@homework/api-client` to this folder's own build (dist/, `npm run build`) through the
 * `exports` of package.json.
 *
 * Exits 1 on any unexpected status, printing the problem's type, title and request id (never
 * a body we sent: problem details do not echo input).
 */
import { randomUUID } from "node:crypto";

import {
  createHomeworkClient,
  getToken,
  TokenError,
  type HomeworkClient,
  type Schemas,
} from "@homework/api-client";

/** What every openapi-fetch call resolves to: `data` on success, else `error`. */
interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

class UnexpectedStatus extends Error {
  override name = "UnexpectedStatus";
}

/** The call's `data` if it answered `status`, else an {@link UnexpectedStatus}. */
async function expectStatus<T>(step: string, status: number, call: Promise<Result<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (response.status !== status || data === undefined) {
    throw new UnexpectedStatus(
      `${step}: expected ${status}, got ${response.status} ${describe(error)}`.trimEnd(),
    );
  }
  return data;
}

function describe(error: unknown): string {
  if (typeof error !== "object" || error === null) {
    return "";
  }
  const problem = error as Partial<Schemas["ProblemDetail"]>;
  const fields = (problem.errors ?? []).map((e) => `${e.pointer} ${e.code}`).join(", ");
  return [problem.type, problem.title, problem.detail, fields, problem.request_id]
    .filter((part) => typeof part === "string" && part !== "")
    .join(" | ");
}

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    throw new Error(`set ${name}`);
  }
  return value;
}

/** A fresh Idempotency-Key: a retry of the same POST would reuse it. */
function idempotent(): { header: { "Idempotency-Key": string } } {
  return { header: { "Idempotency-Key": randomUUID() } };
}

async function main(): Promise<void> {
  const baseUrl = env("HOMEWORK_URL", "http://127.0.0.1:8000");
  const clientId = env("HOMEWORK_CLIENT_ID");
  const clientSecret = env("HOMEWORK_CLIENT_SECRET");
  const run = randomUUID().slice(0, 8);

  // 1. The vendor backend's system token (OAuth 2.0 client credentials).
  const systemToken = await getToken(baseUrl, clientId, clientSecret, {
    grant_type: "client_credentials",
  });
  const system: HomeworkClient = createHomeworkClient(baseUrl, systemToken.access_token);

  // 2. A clinician and a client, known by our own (unique) external ids.
  const clinicianIn: Schemas["ClinicianCreate"] = {
    external_id: `ts-example-clinician-${run}`,
    display_name: "Dr Example",
  };
  const clinician: Schemas["ClinicianOut"] = await expectStatus(
    "create clinician",
    201,
    system.POST("/v1/clinicians", { body: clinicianIn, params: idempotent() }),
  );
  const clientIn: Schemas["ClientCreate"] = {
    external_id: `ts-example-client-${run}`,
    time_zone: "Europe/Berlin",
    locale: "en-GB",
    quiet_hours: { start: "22:00", end: "07:00" },
  };
  const client: Schemas["ClientOut"] = await expectStatus(
    "create client",
    201,
    system.POST("/v1/clients", { body: clientIn, params: idempotent() }),
  );

  // 3. Put them on one care team.
  const careTeam: Schemas["CareTeamOut"] = await expectStatus(
    "add to care team",
    201,
    system.POST("/v1/clients/{client_id}/care-team", {
      params: { path: { client_id: client.id } },
      body: { clinician_id: clinician.id },
    }),
  );

  // 4. Exchange for a clinician token and a client token (RFC 8693).
  const clinicianToken = await getToken(baseUrl, clientId, clientSecret, {
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token: clinician.id,
    subject_token_type: "urn:homework:token-type:clinician-id",
  });
  const clientToken = await getToken(baseUrl, clientId, clientSecret, {
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token: client.id,
    subject_token_type: "urn:homework:token-type:client-id",
  });
  const asClinician = createHomeworkClient(baseUrl, clinicianToken.access_token);
  const asClient = createHomeworkClient(baseUrl, clientToken.access_token);

  // 5. The clinician previews a mood log due once in an hour (an instant with an offset), and
  //    assigns it: the same body, nothing saved by the preview.
  const dueAt = new Date(Date.now() + 60 * 60 * 1000);
  dueAt.setUTCMilliseconds(0);
  const assignmentIn: Schemas["AssignmentCreate"] = {
    client_id: client.id,
    template_id: "tpl_builtin_mood_log",
    title: "Evening mood check",
    purpose: "To see what lifts your mood, as we agreed",
    schedule: { type: "once", due_at: dueAt.toISOString().replace(/\.000Z$/, "+00:00") },
  };
  const preview: Schemas["AssignmentPreview"] = await expectStatus(
    "preview the assignment",
    200,
    asClinician.POST("/v1/assignments/preview", {
      body: assignmentIn,
      params: { query: { days: 1 } },
    }),
  );
  const shown = preview.occurrences.map((occurrence) => Date.parse(occurrence.due_at));
  if (shown.length !== 1 || shown[0] !== dueAt.getTime()) {
    throw new UnexpectedStatus(`the preview shows ${JSON.stringify(preview.occurrences)}`);
  }
  const assignment: Schemas["AssignmentOut"] = await expectStatus(
    "assign homework",
    201,
    asClinician.POST("/v1/assignments", { body: assignmentIn, params: idempotent() }),
  );

  // 6. The client's today: the occurrence to complete, what it asks and why.
  const today: Schemas["Homework"] = await expectStatus(
    "read /v1/me/homework",
    200,
    asClient.GET("/v1/me/homework"),
  );
  const item: Schemas["HomeworkItem"] | undefined = today.items.find(
    (candidate) => candidate.assignment_id === assignment.id,
  );
  if (item === undefined) {
    throw new UnexpectedStatus(`/v1/me/homework does not list assignment ${assignment.id}`);
  }

  // 7. The client completes it.
  const completionIn: Schemas["CompletionCreate"] = {
    occurrence_id: item.occurrence.id,
    status: "done",
    answers: { mood: 6 },
    helpfulness: 8,
  };
  const completion: Schemas["CompletionOut"] = await expectStatus(
    "complete the occurrence",
    201,
    asClient.POST("/v1/completions", { body: completionIn, params: idempotent() }),
  );

  // 8. The clinician reads the client's adherence. The default window is the last 28 days up
  //    to now, which would leave out work due later today: this one runs to the day after.
  const day = 24 * 60 * 60 * 1000;
  const adherence: Schemas["AdherenceOut"] = await expectStatus(
    "read adherence",
    200,
    asClinician.GET("/v1/clients/{client_id}/adherence", {
      params: {
        path: { client_id: client.id },
        query: {
          from: new Date(Date.now() - day).toISOString(),
          to: new Date(dueAt.getTime() + day).toISOString(),
        },
      },
    }),
  );
  const overall: Schemas["AdherenceFigures"] = adherence.overall;
  if (overall.completed < 1) {
    throw new UnexpectedStatus(`adherence counts ${overall.completed} completed occurrences`);
  }

  const percent = (rate: number | null): string =>
    rate === null ? "n/a" : `${Math.round(rate * 100)}%`;
  console.log(
    [
      `clinician   ${clinician.id} (${clinician.external_id})`,
      `client      ${client.id} (${client.external_id}, ${client.time_zone})`,
      `care team   ${careTeam.clinicians.map((member) => member.id).join(", ")}`,
      `tokens      clinician scope "${clinicianToken.scope}"; client expires in ${clientToken.expires_in}s`,
      `assignment  ${assignment.id} "${assignment.title}" (${assignment.kind}), ${assignment.status}`,
      `today       ${today.date} in ${today.time_zone}: ${today.items.length} item(s); occurrence ${item.occurrence.id} due ${item.occurrence.local_due} local, ${item.occurrence.status}`,
      `completion  ${completion.id} ${completion.status}, helpfulness ${completion.helpfulness ?? "n/a"}, late ${completion.late}, distress flagged ${completion.distress_flagged}`,
      `adherence   completed ${overall.completed}/${overall.counted} (${percent(overall.completion_rate)}), on time ${percent(overall.on_time_rate)}, streak ${overall.current_streak}, mean helpfulness ${overall.mean_helpfulness ?? "n/a"}`,
    ].join("\n"),
  );
  console.log("example flow: OK");
}

main().catch((error: unknown) => {
  if (error instanceof UnexpectedStatus || error instanceof TokenError) {
    console.error(`example flow failed: ${error.message}`);
  } else {
    console.error("example flow failed:", error);
  }
  process.exit(1);
});
