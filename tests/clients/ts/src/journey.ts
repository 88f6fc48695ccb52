/**
 * What a client does through the types generated from /openapi.json: register, log in, read
 * its profile, call an action, walk a paged list, meet a validation problem. `tsc` compiles it
 * strictly, so a schema a TypeScript client cannot use fails the build; the test then runs it
 * against a served app: `node build/src/journey.js BASE_URL` prints one JSON line.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "../generated/schema.js";

type Problem = components["schemas"]["Problem"];
declare const process: { argv: string[] }; // node's, without a @types/node dependency

const baseUrl = process.argv[2];
if (baseUrl === undefined) {
  throw new Error("usage: node build/src/journey.js BASE_URL");
}
const api = createClient<paths>({ baseUrl });

function fail(step: string, problem: unknown): never {
  throw new Error(`${step}: ${JSON.stringify(problem)}`);
}

const name = `ts${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const email = `${name}@example.com`;
const password = "a long passphrase for the typed client 42";

const registered = await api.POST("/public/register", {
  body: { email, username: name, password },
});
if (registered.data === undefined) fail("register", registered.error);

const login = await api.POST("/public/login", { body: { email, password } });
if (login.data === undefined) fail("login", login.error);
const headers = { Authorization: `Bearer ${login.data.access_token}` };

const me = await api.GET("/userauth/me", { headers });
if (me.data === undefined) fail("me", me.error);

for (const title of ["one", "two", "three"]) {
  const made = await api.POST("/actions/notes.create", { body: { title }, headers });
  if (made.data === undefined) fail("notes.create", made.error);
}

const titles: string[] = [];
let cursor: string | null = null;
let pages = 0;
do {
  const page: Awaited<ReturnType<typeof listPage>> = await listPage(cursor);
  if (page.data === undefined) fail("notes.list", page.error);
  titles.push(...page.data.result.items.map((note) => note.title));
  cursor = page.data.result.next_cursor;
  pages += 1;
} while (cursor !== null);

function listPage(after: string | null) {
  const body = after === null ? { limit: 2 } : { limit: 2, cursor: after };
  return api.POST("/actions/notes.list", { body, headers });
}

const refused = await api.POST("/actions/notes.create", { body: { title: "" }, headers });
const problem = refused.error as Problem | undefined;

console.log(
  JSON.stringify({
    username: me.data.user.username,
    expected: name,
    titles,
    pages,
    refused: { status: refused.response.status, code: problem?.code },
  }),
);
