/**
 * A typed client for the Homework API.
 *
 * Every path, parameter, request body and response below comes from `./schema.d.ts`, which
 * `make client` generates from the committed OpenAPI document (openapi/openapi.json): when the
 * API changes, regenerate and let the compiler show what moved.
 */
import createClient, { type Client, type ClientOptions } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

/** Every named schema of the API: `Schemas["ClientOut"]`, `Schemas["CompletionCreate"]`, … */
export type Schemas = components["schemas"];

/** The openapi-fetch client: `client.GET("/v1/clients/{client_id}", { params: { path: … } })`. */
export type HomeworkClient = Client<paths>;

/** RFC 9457 problem details: the body of every error from `/v1/…`. */
export type Problem = Schemas["ProblemDetail"];

/** A FHIR OperationOutcome: the body of every error from `/fhir/R4/…`. */
export type OperationOutcome = Schemas["OperationOutcome"];

/** The body of a successful `POST /oauth/token`. */
export type TokenResponse = Schemas["TokenResponse"];

/** RFC 6749 section 5.2: the body of a failed `POST /oauth/token`. */
export type OAuthErrorBody = Schemas["OAuthErrorBody"];

/** The form `POST /oauth/token` takes, less the client credentials (sent as HTTP Basic). */
export type TokenForm = Omit<
  operations["create_token"]["requestBody"]["content"]["application/x-www-form-urlencoded"],
  "client_id" | "client_secret"
>;

/** Options passed through to openapi-fetch (a custom `fetch`, `querySerializer`, …). */
export type HomeworkClientOptions = Omit<ClientOptions, "baseUrl" | "headers">;

/**
 * A client whose every request carries `Authorization: Bearer <token>`.
 *
 * ```ts
 * const api = createHomeworkClient("http://127.0.0.1:8000", token);
 * const { data, error } = await api.GET("/v1/clients/{client_id}", {
 *   params: { path: { client_id: "clt_…" } },
 * });
 * ```
 */
export function createHomeworkClient(
  baseUrl: string,
  token: string,
  options: HomeworkClientOptions = {},
): HomeworkClient {
  return createClient<paths>({
    ...options,
    baseUrl: trimSlash(baseUrl),
    headers: { Authorization: `Bearer ${token}` },
  });
}

/** `POST /oauth/token` answered with something other than 200. */
export class TokenError extends Error {
  readonly status: number;
  /** `invalid_client`, `invalid_grant`, `invalid_scope`, `invalid_request`, …, or a problem's `type`. */
  readonly error: string;
  readonly errorDescription: string;

  constructor(status: number, body: OAuthErrorBody | Problem | undefined) {
    // OAuth errors (RFC 6749 section 5.2), except the 413 problem of the body size limit,
    // which answers before any route does.
    const oauth = body !== undefined && "error" in body ? body : undefined;
    const problem = body !== undefined && "type" in body ? body : undefined;
    const error = oauth?.error ?? problem?.type ?? "unexpected_response";
    const description =
      oauth?.error_description ?? problem?.detail ?? problem?.title ?? `HTTP ${status}`;
    super(`token request failed (${status} ${error}): ${description}`);
    this.name = "TokenError";
    this.status = status;
    this.error = error;
    this.errorDescription = description;
  }
}

/**
 * Get an access token from `POST /oauth/token` (a form-encoded body; the client credentials
 * go in HTTP Basic, each part form-urlencoded first as RFC 6749 section 2.3.1 says).
 *
 * ```ts
 * // the vendor backend's system token
 * const system = await getToken(url, clientId, clientSecret, { grant_type: "client_credentials" });
 * // a short-lived token for one client (RFC 8693 token exchange)
 * const client = await getToken(url, clientId, clientSecret, {
 *   grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
 *   subject_token: "clt_…",
 *   subject_token_type: "urn:homework:token-type:client-id",
 * });
 * ```
 *
 * Throws a {@link TokenError} unless the server answers 200.
 */
export async function getToken(
  baseUrl: string,
  clientId: string,
  clientSecret: string,
  form: TokenForm,
  options: HomeworkClientOptions = {},
): Promise<TokenResponse> {
  const api = createClient<paths>({ ...options, baseUrl: trimSlash(baseUrl) });
  const basic = btoa(`${formEncode(clientId)}:${formEncode(clientSecret)}`);
  const { data, error, response } = await api.POST("/oauth/token", {
    body: form,
    headers: {
      Authorization: `Basic ${basic}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    bodySerializer: toFormBody,
  });
  if (data === undefined || response.status !== 200) {
    throw new TokenError(response.status, error);
  }
  return data;
}

/** The form as `application/x-www-form-urlencoded`, leaving out fields that are not set. */
function toFormBody(form: TokenForm): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) {
    if (typeof value === "string") {
      params.append(name, value);
    }
  }
  return params.toString();
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, "+");
}

function trimSlash(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, "");
}
