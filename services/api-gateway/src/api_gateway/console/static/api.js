// The JSON API under the session cookie: every change carries the page's CSRF token.
const BASE = "/api/v1/automation";
const root = document.getElementById("console");
const csrf = root ? root.dataset.csrf : "";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `request failed (${status})`);
    this.status = status;
    this.field = body && body.field;
    this.code = body && body.code;
  }
}

// Calls the API; answers the parsed JSON body or throws ApiError with the server's reason.
export async function api(method, path, { params = {}, json, text, type, headers: own } = {}) {
  const query = new URLSearchParams(params).toString();
  const headers = { Accept: "application/json", ...own };
  let body;
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (text !== undefined) {
    headers["Content-Type"] = type || "text/plain";
    body = text;
  }
  const response = await fetch(`${BASE}${path}${query ? "?" + query : ""}`, {
    method, headers, body, credentials: "same-origin",
  });
  if (response.status === 401) {
    window.location.assign("/");
    throw new ApiError(401, { detail: "signed out" });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, params) => api("GET", path, { params });
export const post = (path, params, options = {}) => api("POST", path, { params, ...options });
