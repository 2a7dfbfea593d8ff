// A typescript-fetch client generated from Gatehouse's OpenAPI document, used as a Pegasus
// front end would (issue 16): log in, create an organization, a project, an environment and a
// variable, read it back, change it, list, export. Run by ../typescript_client.py, which
// generates ./client, compiles this with tsc and validates the recorded responses.
import {
  AuthApi,
  Configuration,
  EnvironmentsApi,
  OrganizationsApi,
  ProjectsApi,
  VariablesApi,
  type Middleware,
} from "./client";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };
declare function require(name: string): { appendFileSync(path: string, data: string): void };

const base = process.env.GATEHOUSE_URL ?? "";
const record = process.env.RESPONSES_FILE ?? "";
const fs = require("fs");

/** Writes every response (method, URL, status, content type, body) for the schema check. */
const recorder: Middleware = {
  async post({ init, url, response }) {
    const body = await response.clone().text();
    const line = {
      method: (init.method ?? "GET").toLowerCase(),
      url,
      status: response.status,
      content_type: response.headers.get("content-type") ?? "",
      body,
    };
    fs.appendFileSync(record, JSON.stringify(line) + "\n");
    return response;
  },
};

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function main(): Promise<void> {
  const anon = new Configuration({ basePath: base, middleware: [recorder] });
  const answer = await new AuthApi(anon).authLoginCreate({
    loginRequest: { email: process.env.GATEHOUSE_EMAIL, password: process.env.GATEHOUSE_PASSWORD ?? "" },
  });
  // The answer is the login or, for a 2FA account, `otp_required`: this account has no 2FA.
  if (!("token" in answer)) throw new Error(`login asked for a second factor: ${JSON.stringify(answer)}`);
  const login = answer;
  check(typeof login.token === "string" && login.token.length === 40, "login token");

  const conf = new Configuration({
    basePath: base,
    apiKey: () => `Token ${login.token}`,
    middleware: [recorder],
  });
  const org = await new OrganizationsApi(conf).organizationsCreate({
    organizationCreateRequest: { name: "Generated TypeScript" },
  });
  const projects = new ProjectsApi(conf);
  const project = await projects.projectsCreate({
    projectCreateRequest: { name: "tsclient", organization: org.id },
  });
  const env = await new EnvironmentsApi(conf).environmentsCreate({
    environmentCreateRequest: { name: "staging", project: project.id },
  });
  const variables = new VariablesApi(conf);
  const value = 'multi\nline "quoted" $HOME';
  const created = await variables.variablesCreate({
    variableCreateRequest: { key: "API_TOKEN", environment: env.id, value },
  });
  const read = await variables.variablesRetrieve({ id: created.id });
  check(read.key === "API_TOKEN" && read.decryptedValue === value, `read back ${JSON.stringify(read)}`);
  const changed = await variables.variablesPartialUpdate({
    id: created.id,
    variableUpdateRequest: { value: "second" },
  });
  check(changed.decryptedValue === "second" && changed.version === 2, "partial update");
  const page = await projects.projectsList({ organization: org.id });
  check(page.count === 1 && page.results[0]?.id === project.id, "projects list");
  const vars = await variables.environmentsVariablesList({ id: env.id });
  check(vars.results.length === 1, "variables list");
  const exported = await variables.environmentsExportRetrieve({ id: env.id });
  check(exported.includes("API_TOKEN=second"), `export: ${exported}`);
  console.log("typescript client: all calls ok");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
