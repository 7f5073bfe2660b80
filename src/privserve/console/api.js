// The console talks to the server's own API with the signed-in key, held in this object
// only (never in storage or a cookie): no ambient credential, so no cross-site request
// can act as the user.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type;
    this.code = error.code;
  }

  static async from(response) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    return new ApiError(response.status, body);
  }
}

export class Api {
  #key;

  constructor(key) {
    this.#key = key;
  }

  #headers(json) {
    const headers = { Authorization: `Bearer ${this.#key}` };
    if (json) headers["Content-Type"] = "application/json";
    return headers;
  }

  async request(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: this.#headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) throw await ApiError.from(response);
    return response.json();
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body === undefined ? {} : body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  delete(path) { return this.request("DELETE", path); }

  // Server-sent events of a streamed completion, each parsed; ends at [DONE].
  async *stream(path, body, signal) {
    const response = await fetch(path, {
      method: "POST",
      headers: this.#headers(true),
      body: JSON.stringify(body),
      credentials: "omit",
      signal,
    });
    if (!response.ok) throw await ApiError.from(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new ApiError(500, parsed);
        yield parsed;
      }
    }
  }
}
