// Talking to tractcast through the same origin (nginx): JSON in, JSON out.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: "not_json", message: text.slice(0, 200) };
  }
}

/** GET a JSON resource; throws ApiError on any status but 2xx. */
export async function getJSON(path, params) {
  const url = params ? `${path}?${new URLSearchParams(params)}` : path;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await readBody(response);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** POST to an admin route with the bearer token; never throws on an HTTP status. */
export async function postAdmin(path, token, body) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
  const init = { method: "POST", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  return { status: response.status, ok: response.ok, body: await readBody(response) };
}
