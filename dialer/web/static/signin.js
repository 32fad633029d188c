// The sign-in form: POST /v1/sessions (JSON), then on to the page asked for (same site only).
import { SESSION_ENDED_KEY, formsReady } from "/static/shell.js";

const form = document.getElementById("signin");
const problem = document.getElementById("problem");
const button = form.querySelector("button[type=submit]");

if (sessionStorage.getItem(SESSION_ENDED_KEY)) {
  sessionStorage.removeItem(SESSION_ENDED_KEY);
  document.getElementById("ended").hidden = false;
}

function nextPage() {
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  // Only a path on this site: never an open redirect to another one.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (button.disabled) return; // signing in already (a slow server): once is enough
  problem.textContent = "";
  const body = { username: form.username.value.trim(), password: form.password.value };
  let response;
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    response = await fetch("/v1/sessions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    response = null;
  }
  if (response?.status === 201) {
    window.location.assign(nextPage()); // the button stays "Signing in…" while the console loads
    return;
  }
  button.disabled = false;
  button.textContent = "Sign in";
  if (!response) {
    problem.textContent = "The dialer does not answer; try again.";
    return;
  }
  const answer = await response.json().catch(() => ({}));
  if (response.status === 429) {
    const wait = Math.ceil(Number(response.headers.get("Retry-After") || "60") / 60);
    problem.textContent = `Too many wrong passwords: signing in as this user is paused for about ${wait} minute(s).`;
  } else if (response.status === 401) {
    problem.textContent = "The user name or password is wrong.";
  } else {
    problem.textContent = answer.message || `Signing in failed (${response.status}).`;
  }
  form.password.value = "";
  form.password.focus();
});
formsReady(); // the button works from now on (until then, nothing could send the password)
