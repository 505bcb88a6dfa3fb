// Compiled (strict, no emit) by test-package.sh in the scratch app: the declarations an ES
// module gets from the installed tarball (dist/index.d.ts), with the DOM's fetch types and no
// @types/node, as in a browser app.
import {
  createHomeworkClient,
  getToken,
  type HomeworkClient,
  type Schemas,
} from "@homework/api-client";

export async function templates(
  baseUrl: string,
  clientId: string,
  clientSecret: string,
): Promise<Schemas["TemplateOut"][]> {
  const token = await getToken(baseUrl, clientId, clientSecret, { grant_type: "client_credentials" });
  const api: HomeworkClient = createHomeworkClient(baseUrl, token.access_token);
  const { data, error, response } = await api.GET("/v1/templates", { params: { query: { limit: 10 } } });
  if (data === undefined) {
    const problem: Schemas["ProblemDetail"] | undefined = error;
    throw new Error(`${response.status} ${problem?.title ?? ""}`);
  }
  return data.data;
}

export function typedPaths(api: HomeworkClient): void {
  // @ts-expect-error: not a path of the API (so the paths are typed, not `any`)
  void api.GET("/v1/no-such-path");
  // @ts-expect-error: `limit` is a number
  void api.GET("/v1/templates", { params: { query: { limit: "ten" } } });
}
