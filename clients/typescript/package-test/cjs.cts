// Compiled by test-package.sh beside esm.mts: the declarations a CommonJS module gets from
// `require` (dist/index.d.cts).
import { TokenError, createHomeworkClient, type TokenResponse } from "@homework/api-client";

export async function me(baseUrl: string, token: TokenResponse): Promise<string[]> {
  const { data } = await createHomeworkClient(baseUrl, token.access_token).GET("/v1/me/homework");
  return data?.items.map((item) => item.title) ?? [];
}

export function describe(error: unknown): string {
  return error instanceof TokenError ? `${error.status} ${error.error}` : String(error);
}
