// Talking to the Actorflow API: the key from sessionStorage as a Bearer header, JSON in and out.

const KEY = "actorflow.key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An answer that was not 2xx: the API's own error body is kept whole (`details` included). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// Called on any 401, so the app can return to the sign-in page with the reason.
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

function headers(extra) {
  const h = {...extra};
  const k = key.get();
  if (k) h["Authorization"] = `Bearer ${k}`;
  return h;
}

export async function call(method, path, body) {
  const init = {method, headers: headers({Accept: "application/json"}), cache: "no-store"};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, {error: `could not reach the server: ${e.message}`});
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = {error: text}; }
  if (response.status === 401) {
    onUnauthorized(data && data.error);
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  get: (p) => call("GET", p),
  post: (p, b) => call("POST", p, b === undefined ? {} : b),
  put: (p, b) => call("PUT", p, b),
  patch: (p, b) => call("PATCH", p, b),
  del: (p) => call("DELETE", p),
};

export const wfPath = (id) => `/api/workflows/${encodeURIComponent(id)}`;
export const exPath = (id, eid) => `${wfPath(id)}/executions/${encodeURIComponent(eid)}`;

/**
 * Read an SSE answer with fetch (EventSource can neither POST nor send headers).
 * Calls onEvent(event, id) for each `data:` event; resolves {lastId, ended} when the
 * stream closes; `ended` says whether an end event (execution_completed/error) came.
 */
export async function stream(method, path, body, onEvent, {signal, lastEventId} = {}) {
  const init = {method, headers: headers({Accept: "text/event-stream"}), signal, cache: "no-store"};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  if (lastEventId !== undefined && lastEventId !== null) init.headers["Last-Event-ID"] = String(lastEventId);
  const response = await fetch(path, init);
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401) onUnauthorized(data && data.error);
    throw new ApiError(response.status, data);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", id = null, data = [], lastId = lastEventId ?? null, ended = false;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1));
      if (line === "") {
        if (data.length) {
          const event = JSON.parse(data.join("\n"));
          if (id !== null) lastId = id;
          if (event.type === "execution_completed" || event.type === "error") ended = true;
          onEvent(event, id);
        }
        id = null; data = [];
      } else if (line.startsWith(":")) {
        // keep-alive comment
      } else {
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "data") data.push(val);
        else if (name === "id") id = Number(val);
      }
    }
  }
  return {lastId, ended};
}
