// api.js: every request to the server's /api routes. Builds the URLs, sends JSON, and turns an error answer
// ({"error": message}, or FastAPI's {"detail": ...}) into an ApiError carrying the server's words and status.
// Every call takes an optional AbortSignal so a page can cancel what it asked for when it is left.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** True for the rejection of a fetch or wait cancelled through its AbortSignal. */
export const isAbort = (err) => Boolean(err) && err.name === "AbortError";

/** "/api" + path + the query of `params` (undefined and null values left out): for links, images and audio. */
export function apiUrl(path, params) {
  const kept = Object.entries(params || {}).filter(([, v]) => v !== undefined && v !== null);
  const query = new URLSearchParams(kept.map(([k, v]) => [k, String(v)])).toString();
  return "/api" + path + (query ? "?" + query : "");
}

function errorMessage(body, status, statusText) {
  if (body && typeof body === "object") {
    if (body.error) return String(body.error);
    if (typeof body.detail === "string") return body.detail;
    if (body.detail !== undefined) return JSON.stringify(body.detail);
  }
  if (typeof body === "string" && body.trim() && body.length < 300) return body.trim();
  return statusText || `the server answered with status ${status}`;
}

/** The parsed answer (JSON, else text) of one request; throws ApiError on an error status. */
export async function request(path, { method = "GET", params, json, body, signal } = {}) {
  const init = { method, signal, headers: {} };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["content-type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const r = await fetch(apiUrl(path, params), init);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(errorMessage(data, r.status, r.statusText), r.status);
  return data;
}

export const get = (path, params, { signal } = {}) => request(path, { params, signal });
export const post = (path, json, { signal } = {}) => request(path, { method: "POST", json, signal });
