// What every console page shares: the signed-in session, API calls with the CSRF token, the
// page header (who is signed in, sign out, sign out everywhere) and a reconnecting event stream.
// Pages are clients of the public API only (/v1/...), with the session cookie the browser keeps.

/** The API, as the signed-in person. */
export class Api {
  constructor() {
    this.session = null; // GET /v1/session: username, role, agent_id, csrf_token, expires_at
  }

  /** Load the session; without one, go to the sign-in page (and come back here after). */
  async load() {
    const answer = await this.request("GET", "/v1/session");
    if (answer.status !== 200) {
      redirectToSignIn({ ended: false }); // no session yet: a first visit, or the page reloaded after one ended
      return new Promise(() => {}); // the page is leaving
    }
    this.session = answer.body;
    return this.session;
  }

  /**
   * One API call. Resolves to {status, body, headers} (body: parsed JSON, or null); never throws
   * for an HTTP status, so a page can show a problem's `message` in words. A network failure
   * resolves to {status: 0, body: {message}}.
   */
  async request(method, path, body = undefined, { idempotencyKey = null } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && this.session) headers["X-CSRF-Token"] = this.session.csrf_token;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { status: 0, body: { message: "the dialer does not answer (network)" }, headers: new Headers() };
    }
    let parsed = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) parsed = await response.json().catch(() => null);
    if (response.status === 401 && path !== "/v1/sessions" && path !== "/v1/session") redirectToSignIn();
    return { status: response.status, body: parsed, headers: response.headers };
  }

  get(path) { return this.request("GET", path); }
  post(path, body = {}, options = {}) { return this.request("POST", path, body, options); }

  async signOut(everywhere = false) {
    if (everywhere) await this.request("POST", "/v1/session/sign-out-everywhere", {});
    else await this.request("DELETE", "/v1/session");
    window.location.assign("/signin");
  }
}

// Several requests (and the event stream) can learn at once that the session ended: the page
// goes to sign in once, since a second assign() would abort the first navigation.
let goingToSignIn = false;
// A page brought back from the back-forward cache did not go: it may go again.
window.addEventListener("pageshow", (event) => { if (event.persisted) goingToSignIn = false; });

// The sign-in page says why the person is there when a session ended under a page in use (not
// on a first visit), and that what they had not sent is kept: they were thrown out mid-task.
export const SESSION_ENDED_KEY = "dialer.sessionEnded";

export function redirectToSignIn({ ended = true } = {}) {
  if (goingToSignIn) return;
  goingToSignIn = true;
  if (ended) sessionStorage.setItem(SESSION_ENDED_KEY, "1");
  const next = window.location.pathname + window.location.search;
  window.location.assign(`/signin?next=${encodeURIComponent(next)}`);
}

/** Fill the page's <header class="shell">: who is signed in, and the two sign-out buttons. */
export function mountHeader(api) {
  const who = document.getElementById("shell-user");
  if (who) who.textContent = `${api.session.username} (${api.session.role})`;
  document.getElementById("shell-sign-out")?.addEventListener("click", () => api.signOut(false));
  document.getElementById("shell-sign-out-everywhere")?.addEventListener("click", () => api.signOut(true));
  if (api.session.expires_at) watchExpiry(Date.parse(api.session.expires_at));
}

// A session lasts a fixed time from signing in (12 hours): one that ran out mid-call sent the
// person to sign in without warning. From 15 minutes before, the page says when it ends, in the
// person's own time, and what to do.
const EXPIRY_WARNING_MS = 15 * 60 * 1000;

function watchExpiry(endsAt) {
  if (!Number.isFinite(endsAt)) return;
  let note = null;
  const check = () => {
    const left = endsAt - Date.now();
    if (left > EXPIRY_WARNING_MS) return;
    if (!note) {
      note = document.createElement("p");
      note.id = "shell-expiry";
      note.className = "notice";
      note.setAttribute("role", "alert");
      document.getElementById("shell-status")?.after(note);
    }
    const at = new Date(endsAt).toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", timeZoneName: "short" });
    const minutes = Math.max(0, Math.ceil(left / 60000));
    note.textContent = `Your session ends at ${at} (in ${minutes} minute${minutes === 1 ? "" : "s"}). Between calls, `
      + "sign out and sign in again to keep working; notes and a disposition not yet sent are kept.";
  };
  check();
  setInterval(check, 20000);
}

/**
 * A WebSocket on the API (same origin; the session cookie authenticates it) that reconnects by
 * itself (after 0.5, 1, 2, 5, then every 5 s). `onMessage(message)` gets every parsed message;
 * `onState("open" | "closed")` the connection's state. A stream that does not start with the
 * full state (the agent's starts with `subscribed`) has its page re-read it on "open". A lost connection and its
 * return are said in the status line; a page whose session ended meanwhile (signed out in
 * another tab, expired) goes to the sign-in page instead of retrying a refused stream forever.
 */
export function eventStream(path, onMessage, onState = () => {}) {
  const delays = [500, 1000, 2000, 5000];
  let attempt = 0;
  let socket = null;
  let stopped = false;
  let lost = false; // said "reconnecting" in the status line, so say when it is back
  let retry = null; // the timer of the next attempt
  // Leaving the page closes the socket too: that is no lost connection.
  window.addEventListener("pagehide", () => { stopped = true; });
  // A network that goes away silently (Wi-Fi dropped) can leave the socket open for minutes: the
  // page showed "live" while nothing could reach it. The browser knows it is offline: that is
  // said at once. Back online, a socket that survived is used again (the page re-reads what
  // changed, as after a reconnect); one that closed meanwhile is reopened now, not after the
  // next back-off delay.
  window.addEventListener("offline", () => {
    if (stopped) return;
    announce("This computer lost its network: nothing reaches this page until it is back. Unsent notes and "
      + "dispositions are kept.");
    onState("closed");
  });
  window.addEventListener("online", () => {
    if (stopped) return;
    if (socket?.readyState === WebSocket.OPEN) {
      announce("Reconnected to the dialer: the page is up to date again.");
      onState("open");
    } else if (!socket || socket.readyState === WebSocket.CLOSED) {
      clearTimeout(retry);
      attempt = 0;
      connect();
    }
  });
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${window.location.host}${path}`);
    socket.onopen = () => {
      attempt = 0;
      if (lost) announce("Reconnected to the dialer: the page is up to date again.");
      lost = false;
      onState("open");
    };
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      onMessage(message, performance.now());
    };
    socket.onclose = async () => {
      onState("closed");
      if (stopped) return;
      if (!lost) announce("Lost the connection to the dialer: reconnecting...");
      lost = true;
      // A browser is not told why a WebSocket upgrade was refused: ask whether the session lives.
      const session = await fetch("/v1/session", { credentials: "same-origin", cache: "no-store",
        headers: { Accept: "application/json" } }).catch(() => null);
      if (session?.status === 401) {
        stopped = true;
        redirectToSignIn();
        return;
      }
      clearTimeout(retry);
      retry = setTimeout(connect, delays[Math.min(attempt, delays.length - 1)]);
      attempt += 1;
    };
  };
  connect();
  return { close() { stopped = true; socket?.close(); } };
}

/**
 * Enable the page's form buttons (`data-until-ready`): they are disabled in the HTML until the
 * page's script has attached its handlers, because a form sent before that would go the
 * browser's own way, a full page load with its fields in the URL (a password, a lead's phone).
 * A disabled default button also stops Enter in a field from sending the form.
 */
export function formsReady() {
  for (const button of document.querySelectorAll("button[data-until-ready]")) {
    button.disabled = false;
    button.removeAttribute("data-until-ready");
  }
  document.body.dataset.ready = "true";
}

/** A random key for Idempotency-Key (one per action, reused by its retries). */
export function newKey() {
  return crypto.randomUUID();
}

/** Announce `text` to screen readers and show it in the page's status line. */
export function announce(text) {
  const line = document.getElementById("shell-status");
  if (line) line.textContent = text;
}
