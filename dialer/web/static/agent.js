// The agent's console: the browser phone, the agent's state, the screen pop, dispositions,
// lead search and click-to-call. Everything goes through the public API (/v1/...) and the
// agent's event stream (GET /v1/agents/{agent_id}/events), with the signed-in session.
import { Api, announce, eventStream, formsReady, mountHeader, newKey } from "/static/shell.js";
import { Softphone } from "/static/softphone.js";

const $ = (id) => document.getElementById(id);
const api = new Api();
const session = await api.load();
mountHeader(api);
const agentId = session.agent_id;

// The dispositions offered, in hot-key order (Alt+1 ... Alt+9, Alt+0).
const DISPOSITIONS = [
  ["contacted", "Contacted"], ["appointment_set", "Appointment set"], ["callback", "Callback"],
  ["not_interested", "Not interested"], ["left_voicemail", "Left voicemail"], ["no_answer", "No answer"],
  ["wrong_number", "Wrong number"], ["nurture", "Nurture"], ["sale", "Sale"], ["do_not_call", "Do not call"],
];
const STATE_WORDS = {
  logging_in: "logging in", ready: "ready", reserved: "call coming", on_call: "on a call", wrap_up: "wrap-up",
  paused: "paused", logged_out: "logged out",
};
const CAMPAIGNS_KEY = "dialer.campaigns"; // the campaign ids of the last accepted log-in
const PENDING_KEY = "dialer.pendingDispositions"; // dispositions not yet accepted (offline), kept across reloads
const DRAFTS_KEY = "dialer.noteDrafts"; // this tab's unsent notes, per call (sessionStorage)
const MOST_DRAFTS = 20;

// What tests and the screen-pop benchmark read (no PHI: ids and times only).
window.consoleState = { pops: [], registered: false };

// ---- the phone ------------------------------------------------------------------------------------
let phone = null;
let nextAnswerAutomatic = false; // the nailed-up leg after "Log in" is answered by itself
let lastLine = "idle"; // the phone's call state last rendered, to announce its changes

function pill(element, text, kind) {
  element.textContent = text;
  element.className = `pill ${kind || ""}`;
}

function renderPhone(status) {
  const registrationKind = { registered: "ok", failed: "bad", reconnecting: "warn", connecting: "warn" };
  pill($("registration"), status.registration === "registered" ? "registered" : status.registration,
    registrationKind[status.registration]);
  pill($("microphone"), status.microphone, status.microphone === "denied" ? "bad" : status.microphone === "granted" ? "ok" : "");
  pill($("call-state"), status.call, status.call === "ringing" ? "warn" : status.call === "active" ? "ok" : "");
  $("caller").textContent = status.caller ? String(status.caller.name || status.caller.number || status.caller) : "";
  $("answer").disabled = status.call !== "ringing";
  $("hangup").disabled = !["ringing", "connecting", "active"].includes(status.call);
  $("mute").disabled = $("hold").disabled = status.call !== "active";
  $("mute").setAttribute("aria-pressed", String(status.muted));
  $("hold").setAttribute("aria-pressed", String(status.held));
  let problem = "";
  if (status.microphone === "denied") problem = "The browser refused the microphone: allow it for this site and reload.";
  else if (status.registration === "failed") problem = `The phone could not register: ${status.lastError || "refused"}.`;
  else if (status.registration === "reconnecting") {
    // Said in words, not only by the pill: until it registers again no call can reach this phone.
    problem = "Your phone lost its connection and is reconnecting: no call can reach you until it shows registered.";
  }
  $("phone-problem").textContent = problem;
  // A screen reader hears the line change, as a sighted agent sees the pill turn.
  if (status.call !== lastLine) {
    const heard = { ringing: "Your phone is ringing: Alt+A answers.", active: "Call connected.", ended: "Call ended." };
    if (heard[status.call] && !(status.call === "ringing" && (nextAnswerAutomatic || $("auto-answer").checked))) {
      announce(heard[status.call]);
    }
    lastLine = status.call;
  }
  window.consoleState.registered = status.registration === "registered";
  if (status.call === "ringing" && (nextAnswerAutomatic || $("auto-answer").checked)) {
    nextAnswerAutomatic = false;
    phone.answer();
  }
}

async function startPhone() {
  const answer = await api.get("/v1/session/sip");
  if (answer.status !== 200) {
    $("phone-problem").textContent = `No browser phone for this account: ${problemText(answer)}.`;
    return;
  }
  const login = answer.body;
  phone = new Softphone({
    wsUrl: login.ws_url, sipUri: login.sip_uri, username: login.username, password: login.password,
    audio: $("remote"), iceServers: login.ice_servers.map((urls) => ({ urls })),
  });
  window.phone = phone; // tests drive and read the phone as on the phone-check page
  phone.addEventListener("change", (event) => renderPhone(event.detail));
  renderPhone(phone.status());
  try {
    await phone.start();
  } catch (error) {
    $("phone-problem").textContent = `The phone did not start: ${error.message || error}.`;
  }
}

$("answer").addEventListener("click", () => phone?.answer());
$("hangup").addEventListener("click", () => phone?.hangUp());
$("mute").addEventListener("click", () => phone?.mute(!phone.muted));
$("hold").addEventListener("click", () => phone?.hold(!phone.held));
for (const key of document.querySelectorAll(".keypad button")) {
  key.addEventListener("click", () => phone?.sendDtmf(key.dataset.digit));
}

// ---- the agent's state ------------------------------------------------------------------------
let agentState = { state: "logged_out", since: null, wrap_up_until: null };

function renderState() {
  const state = agentState.state;
  const kind = { ready: "ok", on_call: "ok", paused: "warn", wrap_up: "warn", reserved: "warn" }[state];
  pill($("agent-state"), STATE_WORDS[state] || state, kind);
  const reason = state === "paused" && agentState.pause_reason ? ` (${agentState.pause_reason})` : "";
  $("agent-state").textContent += reason;
  $("ready").disabled = Boolean(working) || !["paused", "wrap_up"].includes(state);
  $("pause").disabled = Boolean(working) || !["ready", "wrap_up", "on_call", "reserved"].includes(state);
  $("logout").disabled = Boolean(working) || state === "logged_out";
  $("login-submit").disabled = Boolean(working);
  $("state-working").textContent = working || "";
}

// The dialer's refusals an agent can act on, in plain words (the API's message otherwise).
function agentProblemText(answer) {
  const error = answer.body?.error;
  if (error === "softphone_not_registered") {
    return "Your softphone is not registered — open the phone and sign in to it, then try again.";
  }
  if (error === "sip_endpoint_unknown") {
    const endpoint = (answer.body.message || "").match(/\b[A-Za-z]+\/[^\s,:]+/)?.[0];
    const named = endpoint ? ` (${endpoint})` : "";
    return `Your phone account${named} does not exist in the phone system — ask your administrator to set it up.`;
  }
  return problemText(answer);
}

// The dialer logged the agent out without the agent asking (a restart, its phone's line dropped,
// a supervisor): the pill alone turned to "logged out", and an agent who believed they were
// ready waited for calls that could not come. It is said in words, and to screen readers.
let loggingOut = false; // the agent's own "Log out" is on its way: that needs no words
const LOGGED_IN = ["ready", "reserved", "on_call", "wrap_up", "paused"];
function stateChanged(previous, next) {
  if (previous === next) return;
  if (next === "logged_out" && previous === "logging_in" && !loggingOut) {
    // A log-in that did not go through: a refusal says its own reason (the login's answer);
    // without one, the dialer could not keep its line to the phone open.
    if (!$("state-problem").textContent && !working) {
      $("state-problem").textContent = "The log-in did not go through: the dialer could not keep a line open to "
        + "your phone. Check that the phone shows registered, then log in again.";
    }
  } else if (next === "logged_out" && LOGGED_IN.includes(previous) && !loggingOut) {
    const words = "The dialer has logged you out (it may have restarted, your phone's line dropped, or a supervisor "
      + "logged you out): log in to your campaigns again to take calls.";
    $("state-problem").textContent = words;
    announce("You are logged out of the dialer.");
    loadCampaigns();
  } else if (next !== "logged_out") {
    if (previous === "logged_out") $("state-problem").textContent = "";
    if (next === "paused" && previous !== "paused") announce(`You are paused${agentState.pause_reason ? ` (${agentState.pause_reason})` : ""}.`);
    else if (next === "ready") announce("You are ready for calls.");
  }
}

function notLoggedIn(answer) {
  return answer.status === 404 && answer.body?.error === "not_logged_in";
}

// The agent has no session in the dialer (logged out elsewhere, by a supervisor, its phone hung
// up, a restart): the page shows it logged out, with the log-in form ready.
function showLoggedOut(words) {
  agentState = { state: "logged_out", since: null, wrap_up_until: null };
  renderState();
  $("state-problem").textContent = words;
  loadCampaigns();
}

// While the dialer has not answered (a slow server), the page says what it is doing and the
// state's buttons wait: a second click sent the action twice, and the second answer (refused:
// already logged in) showed as a problem over a log-in that had worked.
const WORKING_WORDS = { login: "Logging in…", ready: "Going ready…", pause: "Pausing…", logout: "Logging out…" };
let working = null;

async function agentAction(path, body) {
  if (working) return false;
  $("state-problem").textContent = "";
  working = WORKING_WORDS[path] || "Working…";
  renderState();
  // The dialer's own logged_out message may come after this answer: the agent asked for it.
  if (path === "logout") loggingOut = true;
  if (path === "login") loggingOut = false;
  let answer;
  try {
    answer = await api.post(`/v1/agents/${encodeURIComponent(agentId)}/${path}`, body);
  } finally {
    working = null;
    renderState();
  }
  if (notLoggedIn(answer) && path !== "login") {
    showLoggedOut(path === "logout" ? "" : "You are not logged in to the dialer any more: log in to your campaigns again.");
    if (path !== "logout") $("campaigns").focus();
    return false;
  }
  if (answer.status >= 300) {
    $("state-problem").textContent = agentProblemText(answer);
    return false;
  }
  if (olderThanShown(answer.body)) return true; // the stream already showed a newer state
  const previous = agentState.state;
  agentState = answer.body;
  renderState();
  stateChanged(previous, agentState.state);
  return true;
}

function typedCampaigns() {
  return $("campaigns").value.split(",").map((text) => text.trim()).filter(Boolean);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (working) return; // the log-in on its way says so; a second one would be refused
  const ids = typedCampaigns();
  if (!ids.length) {
    $("state-problem").textContent = "Name at least one campaign.";
    return;
  }
  nextAnswerAutomatic = true; // the dialer calls this phone once and keeps the line open
  agentAction("login", { campaign_ids: ids }).then((accepted) => {
    if (accepted) localStorage.setItem(CAMPAIGNS_KEY, ids.join(", "));
    else nextAnswerAutomatic = false;
  });
});
// The ids that last logged in are offered again, so they are picked once, not every morning.
if (!$("campaigns").value) $("campaigns").value = localStorage.getItem(CAMPAIGNS_KEY) || "";

// The campaigns this agent may log in to (GET /v1/agents/{id}/campaigns): picking one adds its
// id to the field; running ones first. Read again whenever the list is opened, so a campaign
// made since the page loaded is there.
const CAMPAIGN_ORDER = { running: 0, paused: 1, stopped: 2 };
const CAMPAIGN_WORDS = { running: "dialing", paused: "paused", stopped: "not dialing" };
let campaignsAsked = 0;

async function loadCampaigns() {
  const asked = ++campaignsAsked;
  const answer = await api.get(`/v1/agents/${encodeURIComponent(agentId)}/campaigns`);
  if (asked !== campaignsAsked) return;
  const pick = $("campaign-pick");
  const keep = pick.value;
  const first = new Option("Add a campaign…", "");
  if (answer.status !== 200) {
    pick.replaceChildren(first);
    $("campaign-note").textContent = `The list of campaigns did not load (${problemText(answer)}): type their ids.`;
    return;
  }
  const campaigns = [...answer.body.campaigns].sort((a, b) =>
    (CAMPAIGN_ORDER[a.status] ?? 3) - (CAMPAIGN_ORDER[b.status] ?? 3) || a.name.localeCompare(b.name));
  const options = campaigns.map((campaign) => {
    const words = `${campaign.name} (${campaign.dial_mode.replaceAll("_", " ")}, ${CAMPAIGN_WORDS[campaign.status] || campaign.status})`;
    const option = new Option(words, campaign.campaign_id);
    option.title = campaign.campaign_id;
    option.dataset.status = campaign.status;
    return option;
  });
  pick.replaceChildren(first, ...options);
  pick.value = options.some((option) => option.value === keep) ? keep : "";
  $("campaign-note").textContent = campaigns.length ? ""
    : "No campaign is open for you to log in to: ask your supervisor.";
}
$("campaign-pick").addEventListener("focus", loadCampaigns);
$("campaign-pick").addEventListener("change", () => {
  const id = $("campaign-pick").value;
  if (!id) return;
  const ids = typedCampaigns();
  if (!ids.includes(id)) $("campaigns").value = [...ids, id].join(", ");
  $("campaign-pick").value = "";
  $("campaigns").focus();
});
$("ready").addEventListener("click", () => agentAction("ready", {}));
$("pause").addEventListener("click", () => agentAction("pause", { reason: $("pause-code").value }));
$("logout").addEventListener("click", () => agentAction("logout", {}));

// An HTTP answer can arrive after a newer stream message (a slow server, a re-read on
// reconnecting): within one session (its leg, `channel_id`) a lower `version` is an older state,
// which must not replace the one shown. Another leg is another session: its state is shown.
function olderThanShown(body) {
  return typeof body?.version === "number" && typeof agentState.version === "number"
    && body.channel_id === agentState.channel_id && body.version < agentState.version;
}

async function loadState() {
  const answer = await api.get(`/v1/agents/${encodeURIComponent(agentId)}/state`);
  if (answer.status === 200 && olderThanShown(answer.body)) return;
  const previous = agentState.state;
  if (answer.status === 200) agentState = answer.body;
  else if (notLoggedIn(answer)) agentState = { state: "logged_out", since: null, wrap_up_until: null };
  renderState();
  stateChanged(previous, agentState.state);
  if (!current && agentState.call_id && ["on_call", "wrap_up"].includes(agentState.state)) {
    await restoreCall(agentState.call_id);
  }
}

// A reload (or signing in again after the session ended) mid-call or in wrap-up had no call on
// the screen, so the agent could not disposition it: the call is shown again from the CRM, as
// its screen pop showed it, and marked done when a disposition of it is already stored.
async function restoreCall(callId) {
  const call = await api.get(`/v1/calls/${encodeURIComponent(callId)}`);
  if (call.status !== 200 || !call.body.lead_id || current) return;
  const { lead_id: leadId, lead_number: number, direction, campaign_id: campaignId } = call.body;
  screenPop({ type: "screen_pop", call_id: callId, campaign_id: campaignId, direction,
    restored: true, lead: { lead_id: leadId, name: "", phone: number, phones: number ? [number] : [] } },
  performance.now());
  const stored = await api.get(`/v1/calls/${encodeURIComponent(callId)}/dispositions`);
  const last = stored.status === 200 ? stored.body.dispositions.at(-1) : null;
  if (last && current?.callId === callId) {
    current.disposed = true;
    keepDraft(callId, ""); // its notes went with the disposition
    $("notes").value = "";
    setDispositionsEnabled(false);
    $("dispo-result").textContent = `Saved: ${last.code.replaceAll("_", " ")}.`;
  }
}

// ---- unsent notes ----------------------------------------------------------------------------
// Notes typed but not yet sent with a disposition survive the page going to sign in (session
// expired, signed out in another tab) and a reload: each call's draft is kept in this tab's
// sessionStorage, shown again with its call, and dropped once its disposition is accepted.
// Drafts belong to the agent who typed them; another agent signing in on this tab starts clean.
function loadDrafts() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(DRAFTS_KEY) || "null");
    if (kept && kept.agentId === agentId && Array.isArray(kept.drafts)) return kept.drafts;
  } catch { /* unreadable: start clean */ }
  return [];
}
function draftOf(callId) { return loadDrafts().find(([id]) => id === callId)?.[1] || ""; }
function keepDraft(callId, notes) {
  const drafts = loadDrafts().filter(([id]) => id !== callId);
  if (notes.trim()) drafts.push([callId, notes]);
  sessionStorage.setItem(DRAFTS_KEY, JSON.stringify({ agentId, drafts: drafts.slice(-MOST_DRAFTS) }));
}
$("notes").addEventListener("input", () => { if (current) keepDraft(current.callId, $("notes").value); });

// ---- the current call and the screen pop -------------------------------------------------------
let current = null; // {callId, leadId, campaignId, dispositionKey, disposed}
let callTimerStart = null;

function two(number) { return String(number).padStart(2, "0"); }
// mm:ss, and h:mm:ss from an hour (a long pause read "for 75:12", minutes past a hundred).
function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600);
  const rest = `${two(Math.floor((whole % 3600) / 60))}:${two(whole % 60)}`;
  return hours ? `${hours}:${rest}` : rest;
}

setInterval(() => {
  $("call-timer").textContent = callTimerStart ? clock((Date.now() - callTimerStart) / 1000) : "";
  if (agentState.since) $("state-timer").textContent = `for ${clock((Date.now() - Date.parse(agentState.since)) / 1000)}`;
  if (agentState.state === "wrap_up" && agentState.wrap_up_until) {
    const left = Math.max(0, (Date.parse(agentState.wrap_up_until) - Date.now()) / 1000);
    $("wrap-up").textContent = `Wrap-up ends in ${Math.ceil(left)} s`;
  } else {
    $("wrap-up").textContent = "";
  }
  if (current?.zones) renderLocalTime(current.zones);
}, 250);

function text(id, value) { $(id).textContent = value === null || value === undefined || value === "" ? "-" : String(value); }

function zoneTime(zone, at = new Date()) {
  return new Intl.DateTimeFormat("en-US", { timeZone: zone, hour: "numeric", minute: "2-digit", weekday: "short",
    timeZoneName: "short" }).format(at);
}

function renderLocalTime(zones) {
  try {
    $("lead-time").textContent = zones.map((zone) => `${zoneTime(zone)} (${zone})`).join("; ");
  } catch {
    $("lead-time").textContent = zones.join(", ");
  }
}

function screenPop(message, receivedAt) {
  const lead = message.lead;
  const disposedBefore = current && current.callId === message.call_id;
  if (!disposedBefore) {
    const zones = lead.timezones?.length ? lead.timezones : lead.timezone_hint ? [lead.timezone_hint] : null;
    current = { callId: message.call_id, leadId: lead.lead_id, campaignId: message.campaign_id,
      inbound: message.direction === "inbound", dispositionKey: newKey(), disposed: false, zones };
  }
  $("script").replaceChildren();
  if (!disposedBefore) {
    callTimerStart = null; // a new call: its timer starts when it connects
    $("callback-date").value = ""; // and its callback picker starts on its lead's today
    $("notes").value = draftOf(message.call_id); // and its own notes (none, or those typed before a reload)
  }
  $("call-kind").textContent = message.direction === "inbound" ? `Inbound call${message.campaign_id ? ` (${message.campaign_id})` : ""}`
    : message.campaign_id ? `Campaign call (${message.campaign_id})` : "Click-to-call";
  if (current.zones) renderLocalTime(current.zones);
  fillCallbackTimes();
  pill($("call-progress"), "connecting", "warn");
  showLead(lead, { phones: lead.phones, address: lead.address });
  $("wrap").hidden = false;
  $("dispo-result").textContent = "";
  setDispositionsEnabled(true);
  // A disposition of this call kept unsent (offline, then a reload) is the call's disposition:
  // its key is reused and the buttons wait for it, as a second choice would store a second row.
  const kept = pendingDispositions().find((entry) => entry.callId === message.call_id);
  if (kept) {
    current.dispositionKey = kept.key;
    setDispositionsEnabled(false);
    $("dispo-result").textContent = `Not sent yet: ${kept.words || kept.body.code.replaceAll("_", " ")} is kept and `
      + "sent when the dialer answers.";
  }
  offerDispositions(message.call_id);
  $("lead-name").focus(); // keyboard and screen-reader users land on the pop
  announce(message.restored ? "Your current call is shown again." : `Screen pop: ${lead.name}`);
  const renderedAt = performance.now();
  if (!message.restored) {
    window.consoleState.pops.push({ call_id: message.call_id, lead_id: lead.lead_id, received_ms: receivedAt,
      rendered_ms: renderedAt, rendered_epoch_ms: performance.timeOrigin + renderedAt });
  }
  // An inbound caller the CRM did not know has only a number: the form takes their details.
  const unknownCaller = message.direction === "inbound" && lead.name === lead.phone;
  $("new-lead").hidden = !unknownCaller;
  if (unknownCaller) {
    $("new-lead").reset();
    $("new-lead-result").textContent = "";
    $("lead-name").textContent = `New caller ${lead.phone}`;
  }
  loadRecord(lead.lead_id);
  if (message.direction === "inbound") {
    // No dial, so no dialing decision: the caller called the agency.
    $("script").textContent = "Inbound call: greet the caller with your name and the agency's; this call is recorded.";
  } else {
    loadScript(message.call_id);
  }
}

function showLead(lead, extra = {}) {
  $("pop").hidden = false;
  if ($("pop").dataset.leadId !== lead.lead_id) {
    // Another lead: nothing of the previous one may stay on the screen.
    $("lead-consents").textContent = "loading...";
    $("lead-calls").replaceChildren();
    $("lead-time").textContent = "-";
    $("dial-problem").textContent = "";
  }
  $("lead-name").textContent = lead.name || [lead.first_name, lead.last_name].filter(Boolean).join(" ") || "Unknown caller";
  $("pop").dataset.leadId = lead.lead_id;
  renderPhones(lead.lead_id, extra.phones || lead.phones || [lead.phone]);
  text("lead-address", extra.address || lead.address);
  text("lead-state", [lead.state, lead.zip].filter(Boolean).join(" "));
  text("lead-stage", lead.pipeline_stage);
  text("lead-email", lead.email);
}

function renderPhones(leadId, phones) {
  const list = $("lead-phones");
  list.replaceChildren();
  phones.forEach((number, index) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = number;
    const call = document.createElement("button");
    call.type = "button";
    call.textContent = "Call";
    call.setAttribute("aria-label", `Call ${number}`);
    call.addEventListener("click", () => clickToCall(leadId, index === 0 ? null : number));
    item.append(label, call);
    list.append(item);
  });
}

// An agent may read a lead once a call of theirs names it; the CRM row follows the pop within a
// moment, so a 404 is asked again for a few seconds.
async function getSoon(path, seconds = 8) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const answer = await api.get(path);
    if (answer.status !== 404 || Date.now() > deadline) return answer;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function loadRecord(leadId) {
  const answer = await getSoon(`/v1/leads/${encodeURIComponent(leadId)}`);
  if ($("pop").dataset.leadId !== leadId) return;
  if (answer.status === 404 && current?.inbound && current.leadId === leadId) {
    $("lead-consents").textContent = "none: a caller the CRM does not know (take their name and details in the notes)";
    return;
  }
  if (answer.status !== 200) {
    // Not "loading..." forever: the agent learns the record is missing and why.
    $("lead-consents").textContent = `the lead's record did not load: ${problemText(answer)}`;
    return;
  }
  const lead = answer.body;
  const address = [lead.address_line1, lead.address_line2, lead.city].filter(Boolean).join(", ");
  showLead({ ...lead, name: [lead.first_name, lead.last_name].filter(Boolean).join(" ") || lead.phones[0] },
    { phones: lead.phones, address });
  if (lead.timezone_hint && current && !current.zones) current.zones = [lead.timezone_hint];
  const consents = $("lead-consents");
  consents.replaceChildren();
  for (const consent of lead.consents) {
    const item = document.createElement("li");
    const state = consent.revoked_at ? "revoked" : consent.expires_at && Date.parse(consent.expires_at) < Date.now() ? "expired" : "on file";
    item.textContent = `${consent.kind.toUpperCase()} ${state}, ${consent.obtained_at.slice(0, 10)} (${consent.source})`;
    consents.append(item);
  }
  if (!lead.consents.length) consents.textContent = "none on file";
  await loadHistory(leadId);
}

// What a refused or failed API call says, in words: the problem's own message, else its status.
function problemText(answer) {
  return answer.body?.message || (answer.status ? `the dialer answered ${answer.status}` : "the dialer does not answer");
}

function historyNote(words) {
  const cell = document.createElement("td");
  cell.colSpan = 5;
  cell.className = "muted";
  cell.textContent = words;
  const row = document.createElement("tr");
  row.append(cell);
  return row;
}

// The agent hears its own calls' recordings here (the API hands out only those, and audits each).
function recordingCell(call) {
  const cell = document.createElement("td");
  if (!call.recording_id) {
    cell.textContent = "no";
    return cell;
  }
  const play = document.createElement("button");
  play.type = "button";
  play.className = "play-recording";
  play.textContent = "Play";
  play.setAttribute("aria-label", `Play the recording of the call of ${new Date(call.requested_at).toLocaleString("en-US")}`);
  play.addEventListener("click", () => {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "auto";
    audio.src = `/v1/recordings/${encodeURIComponent(call.recording_id)}/audio`;
    audio.addEventListener("error", () => { cell.textContent = "recording unavailable"; });
    cell.replaceChildren(audio);
    audio.play().catch(() => {}); // the controls stay for a browser that wants a second click
    audio.focus();
  });
  cell.append(play);
  return cell;
}

async function loadHistory(leadId) {
  const answer = await api.get(`/v1/calls?lead_id=${encodeURIComponent(leadId)}&limit=6`);
  const body = $("lead-calls");
  if (answer.status !== 200) {
    body.replaceChildren(historyNote(`The lead's calls did not load: ${problemText(answer)}`));
    return;
  }
  body.replaceChildren();
  if (!answer.body.calls.length) body.append(historyNote("No calls yet."));
  for (const call of answer.body.calls) {
    const dispositions = await api.get(`/v1/calls/${encodeURIComponent(call.call_id)}/dispositions`);
    const last = dispositions.status === 200 ? dispositions.body.dispositions.at(-1) : null;
    const row = document.createElement("tr");
    row.dataset.callId = call.call_id;
    const when = new Date(call.requested_at).toLocaleString("en-US", { month: "numeric", day: "numeric",
      year: "2-digit", hour: "numeric", minute: "2-digit", timeZoneName: "short" }); // the agent's own zone, named
    for (const value of [when, call.outcome || "in progress", last?.code || "-", last?.notes || ""]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    row.append(recordingCell(call));
    body.append(row);
  }
}

async function loadScript(callId) {
  const answer = await getSoon(`/v1/calls/${encodeURIComponent(callId)}/decision`, 20);
  const script = $("script");
  if (!current || current.callId !== callId) return;
  script.replaceChildren();
  if (answer.status !== 200) {
    script.textContent = "No compliance notices for this call.";
    return;
  }
  const decision = answer.body;
  if (decision.timezones?.length) current.zones = decision.timezones.map((zone) => String(zone));
  fillCallbackTimes();
  for (const notice of decision.notices) {
    const item = document.createElement("li");
    item.textContent = notice.text || notice.message || notice.script || notice.code;
    script.append(item);
  }
  if (!decision.notices.length) script.textContent = "No notices: greet the lead and give your name and agency.";
}

let historyTimer = null;
function refreshHistorySoon(leadId) {
  // The CRM row of a call follows its events by a moment; one re-read per burst of changes.
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => loadHistory(leadId), 800);
}

function callState(message) {
  // A click-to-call that failed because the agent's own phone could not be called says why.
  if (message.state === "ended" && message.problem) {
    $("dial-problem").textContent = `Not dialed: ${agentProblemText({ body: { error: message.problem } })}`;
    announce("The call failed: your phone could not be called.");
  }
  if (!current || current.callId !== message.call_id) return;
  const words = { requested: "starting", agent_ringing: "your phone rings", lead_ringing: "the lead's phone rings",
    bridged: "connected", ended: "ended" };
  pill($("call-progress"), words[message.state] || message.state.replaceAll("_", " "),
    message.state === "bridged" ? "ok" : message.state === "ended" ? "" : "warn");
  // The call's timer runs from the moment agent and lead are connected.
  if (message.state === "bridged" && !callTimerStart) callTimerStart = Date.now();
  if (message.state === "ended") callTimerStart = null;
  refreshHistorySoon(current.leadId);
}

$("new-lead").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const body = {};
  for (const [name, value] of new FormData($("new-lead"))) if (String(value).trim()) body[name] = String(value).trim();
  const answer = await api.post(`/v1/calls/${encodeURIComponent(current.callId)}/caller`, body);
  if (answer.status !== 202) {
    $("new-lead-result").textContent = `Not saved: ${problemText(answer)}`;
    return;
  }
  $("new-lead-result").textContent = "Saved.";
  $("new-lead").hidden = true;
  announce("The caller's details are saved.");
  const leadId = current.leadId;
  // The record follows through the CRM's outbox within a moment.
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const lead = await api.get(`/v1/leads/${encodeURIComponent(leadId)}`);
    if (lead.status === 200 && lead.body.first_name) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  loadRecord(leadId);
});

// ---- dispositions -----------------------------------------------------------------------------
function setDispositionsEnabled(enabled) {
  for (const button of $("dispositions").querySelectorAll("button")) button.disabled = !enabled;
}

// The buttons: the call's campaign's own set when it has one (asked per call), else the common
// ones above. Hot keys follow the buttons' order (Alt+1 ... Alt+9, Alt+0).
const LABELS = Object.fromEntries(DISPOSITIONS);
function renderDispositions(codes) {
  const buttons = codes.map((code, index) => {
    const button = document.createElement("button");
    const label = LABELS[code] || code.charAt(0).toUpperCase() + code.slice(1).replaceAll("_", " ");
    button.type = "button";
    button.dataset.code = code;
    if (index < 10) {
      const key = (index + 1) % 10;
      button.textContent = `${label} (Alt+${key})`;
      button.setAttribute("aria-keyshortcuts", `Alt+${key}`);
    } else {
      button.textContent = label;
    }
    button.addEventListener("click", () => dispose(code));
    return button;
  });
  $("dispositions").replaceChildren(...buttons);
}
renderDispositions(DISPOSITIONS.map(([code]) => code));

async function offerDispositions(callId) {
  const answer = await getSoon(`/v1/calls/${encodeURIComponent(callId)}/disposition-codes`, 10);
  if (answer.status !== 200 || current?.callId !== callId) return;
  renderDispositions(answer.body.from_campaign ? answer.body.codes : DISPOSITIONS.map(([code]) => code));
  setDispositionsEnabled(!current.disposed && !pendingDispositions().some((entry) => entry.callId === callId));
}

// The callback picker offers only the times the gate would allow a call to the lead: the server
// applies the gate's own calling windows (federal, the campaign's, the lead's states' hours and
// no-call holidays, in every zone the lead may be in), and refuses any other callback time.
function callbackOption(value, text) {
  const option = document.createElement("option");
  option.value = value;
  option.textContent = text;
  return option;
}

let callbackAsked = 0; // the latest request: an older answer arriving late is dropped

async function fillCallbackTimes() {
  const select = $("callback-time");
  const input = $("callback-date");
  const asked = ++callbackAsked;
  if (!current) {
    input.value = "";
    select.replaceChildren(callbackOption("", "no call to call back"));
    return;
  }
  const callId = current.callId;
  const date = input.value;
  const query = date ? `?date=${encodeURIComponent(date)}` : "";
  select.replaceChildren(callbackOption("", "finding the lead's calling hours…"));
  const answer = await getSoon(`/v1/calls/${encodeURIComponent(callId)}/callback-times${query}`);
  if (asked !== callbackAsked || !current || current.callId !== callId) return;
  select.replaceChildren();
  if (answer.status !== 200) {
    select.append(callbackOption("", "calling hours unavailable: try again"));
    return;
  }
  const { date: listed, times, zones } = answer.body;
  // The input shows the day whose times are listed: asked without one, the server lists the
  // lead's today in its zone (not the browser's, nor UTC's), which is also the earliest day.
  if (!date) current.callbackToday = listed;
  input.min = current.callbackToday || "";
  input.value = listed;
  const zone = zones[0] || Intl.DateTimeFormat().resolvedOptions().timeZone;
  current.callbackZone = zone;
  const local = new Intl.DateTimeFormat("en-US", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const own = new Intl.DateTimeFormat("en-US", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  // The lead's time first (what the agent says to the lead); the agent's own beside it when the
  // clocks differ, so "09:00" is not taken for the agent's nine o'clock.
  for (const at of times) {
    const when = new Date(at);
    const theirs = `${local.format(when)} (${zone})`;
    select.append(callbackOption(at, sameClock(zone, when) ? theirs
      : `${theirs} = ${own.format(when)} ${ownZoneName(when)} your time`));
  }
  if (!times.length) select.append(callbackOption("", "no time left in the window that day"));
}
$("callback-date").addEventListener("change", fillCallbackTimes);

// Kept in localStorage, which every agent signing in on this browser shares: each is sent only
// by the agent who made it (another agent's session is refused it, and the refusal dropped it, so
// a shared desk lost the previous shift's last disposition, notes and all).
function allPending() {
  try { return JSON.parse(localStorage.getItem(PENDING_KEY) || "[]"); } catch { return []; }
}
function pendingDispositions() { return allPending().filter((entry) => (entry.agentId ?? agentId) === agentId); }
function savePending(items) {
  const others = allPending().filter((entry) => (entry.agentId ?? agentId) !== agentId);
  localStorage.setItem(PENDING_KEY, JSON.stringify([...others, ...items]));
}

// Saved exactly once: one Idempotency-Key per call, so a double click, a retry after a network
// failure or a resend after a reload all get the first answer and store nothing twice.
async function dispose(code) {
  if (!current) return;
  const body = { code };
  const notes = $("notes").value.trim();
  if (notes) body.notes = notes;
  if (code === "callback") {
    if (!$("callback-time").value) {
      $("dispo-result").textContent = "Pick a callback time first.";
      $("callback-date").focus();
      return;
    }
    body.callback_at = $("callback-time").value;
  }
  const item = { callId: current.callId, key: current.dispositionKey, body, agentId,
    words: dispositionWords(code, body.callback_at) };
  const pending = pendingDispositions().filter((entry) => entry.key !== item.key);
  savePending([...pending, item]);
  setDispositionsEnabled(false);
  $("dispo-result").textContent = "Saving...";
  await send(item);
}

// What a disposition says once saved; a callback names its time, in the lead's zone and in the
// agent's own ("callback" alone left the agent unsure which of the half-hours went).
function dispositionWords(code, callbackAt) {
  const words = code.replaceAll("_", " ");
  if (!callbackAt) return words;
  const at = new Date(callbackAt);
  const zone = current?.callbackZone;
  const format = (timeZone) => new Intl.DateTimeFormat("en-US", { timeZone, weekday: "short", month: "short",
    day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(at);
  const own = `${format(undefined)} ${ownZoneName(at)} your time`;
  return zone && !sameClock(zone, at) ? `${words} ${format(zone)} (${zone}), ${own}` : `${words} ${own}`;
}

function ownZoneName(at) {
  return new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(at)
    .find((part) => part.type === "timeZoneName")?.value || "";
}

// Whether a zone's wall clock reads as the agent's own at `at` (then one time is said, not two).
function sameClock(zone, at) {
  const format = (timeZone) => new Intl.DateTimeFormat("en-US", { timeZone, dateStyle: "short", timeStyle: "short" })
    .format(at);
  return format(zone) === format(undefined);
}

// A disposition's outcome is said under the call it belongs to; one sent later (offline, then
// back) for a call no longer on the screen is said in the status line, not under the next
// call's buttons, where "Saved: ..." read as that call being done.
function dispositionSays(item, words) {
  if (current && current.callId === item.callId) $("dispo-result").textContent = words;
  else announce(`Previous call: ${words}`);
}

// A previous call's disposition the dialer refused once it could be sent (its callback time had
// passed meanwhile, say) cannot be chosen again on this screen: the page keeps it in view, with
// the notes typed for it, until the agent has dealt with it, so neither goes unnoticed.
function refusedEarlier(item, reason) {
  const box = $("earlier-problem");
  const notes = item.body.notes ? ` Your notes: “${item.body.notes}”.` : "";
  box.querySelector("span").textContent = `The disposition of an earlier call (${item.words || item.body.code}, `
    + `call ${item.callId}) was not saved: ${reason}.${notes} Tell your supervisor, or call the lead back from its record.`;
  box.hidden = false;
}
$("earlier-dismiss").addEventListener("click", () => { $("earlier-problem").hidden = true; });

async function send(item) {
  const answer = await api.post(`/v1/calls/${encodeURIComponent(item.callId)}/disposition`, item.body,
    { idempotencyKey: item.key });
  if (answer.status === 0 || answer.status >= 500) {
    dispositionSays(item, "Offline: the disposition is kept and will be sent when the dialer answers.");
    setTimeout(() => send(item), 2000);
    return;
  }
  if (answer.status === 401) {
    // The session ended (expired, signed out in another tab): the page goes to sign in and comes
    // back here, where the kept disposition is sent again with its key. Dropping it lost the
    // agent's notes of the call.
    dispositionSays(item, "Your session ended: sign in again and the disposition is sent then.");
    return;
  }
  savePending(pendingDispositions().filter((entry) => entry.key !== item.key));
  const words = item.words || item.body.code.replaceAll("_", " ");
  if (answer.status === 202) {
    dispositionSays(item, `Saved: ${words}.`);
    keepDraft(item.callId, "");
    if (current && current.callId === item.callId) {
      current.disposed = true;
      $("notes").value = "";
    }
    announce(`Disposition saved: ${words}`);
  } else if (current && current.callId === item.callId) {
    dispositionSays(item, `Not saved: ${problemText(answer)}`);
    setDispositionsEnabled(true);
  } else {
    refusedEarlier(item, problemText(answer));
  }
}

// ---- search and click-to-call ----------------------------------------------------------------
$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("search-text").value.trim();
  if (!query) {
    $("search-results").textContent = "Type a name, a phone number or an e-mail address first.";
    $("search-text").focus();
    return;
  }
  const field = query.includes("@") ? "email" : /^[\d\s()+.-]+$/.test(query) ? "phone" : "name";
  const list = $("search-results");
  list.textContent = "Searching…"; // a slow answer is not taken for no answer, nor the last search's
  const answer = await api.get(`/v1/leads?${field}=${encodeURIComponent(query)}&limit=20`);
  list.replaceChildren();
  if (answer.status !== 200) {
    list.textContent = `The search failed: ${problemText(answer)}`;
    return;
  }
  if (!answer.body.leads.length) list.textContent = "No lead of yours matches.";
  const found = answer.body.leads.length;
  announce(found ? `${found} lead${found === 1 ? "" : "s"} found.` : "No lead of yours matches.");
  for (const lead of answer.body.leads) {
    const item = document.createElement("li");
    const name = [lead.first_name, lead.last_name].filter(Boolean).join(" ") || lead.phones[0];
    const label = document.createElement("span");
    label.textContent = `${name} ${lead.state || ""}`;
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Open";
    open.setAttribute("aria-label", `Open ${name}`);
    open.addEventListener("click", () => {
      showLead({ ...lead, name }, { phones: lead.phones,
        address: [lead.address_line1, lead.city].filter(Boolean).join(", ") });
      loadRecord(lead.lead_id);
      $("lead-name").focus();
    });
    item.append(label, open);
    list.append(item);
  }
});

async function clickToCall(leadId, number) {
  $("dial-problem").textContent = "";
  const body = number ? { phone: number, agent_id: agentId } : { lead_id: leadId, agent_id: agentId };
  const answer = await api.post("/v1/calls", body, { idempotencyKey: newKey() });
  if (answer.status === 202) {
    announce("Calling: answer your phone when it rings.");
    return;
  }
  const problem = answer.body || {};
  if (problem.error === "compliance_blocked") {
    const reasons = (problem.reasons || []).map((reason) => reason.message).join("; ");
    $("dial-problem").textContent = `Not dialed: the compliance check blocked this call. ${reasons}`;
  } else {
    $("dial-problem").textContent = `Not dialed: ${problem.message || answer.status}`;
  }
}

// ---- keyboard -------------------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  if (!event.altKey || event.ctrlKey || event.metaKey) return;
  const key = event.key.toLowerCase();
  if (key === "a") phone?.answer();
  else if (key === "h") phone?.hangUp();
  else if (/^[0-9]$/.test(key)) {
    const index = key === "0" ? 9 : Number(key) - 1;
    const button = $("dispositions").querySelectorAll("button")[index];
    if (button && !button.disabled && !$("wrap").hidden) button.click();
  } else return;
  event.preventDefault();
});

// ---- one console per agent ---------------------------------------------------------------------
// The same agent's console open in a second tab (or window) of this browser registers the same
// phone twice and gets every screen pop twice: a call rings in one tab while the notes are typed
// in the other, and closing "the extra tab" may hang up the agent's line. Each tab tells the
// others it is there; both say so, in words, until one is closed.
const tabId = newKey();
const otherTabs = new Set();
const tabs = "BroadcastChannel" in window ? new BroadcastChannel(`dialer.agent-console.${agentId}`) : null;
function renderOtherTabs() {
  $("tabs-problem").hidden = otherTabs.size === 0;
  $("tabs-problem").textContent = otherTabs.size
    ? "Your console is also open in another tab or window: close all but one. Calls may ring there, and notes "
      + "typed in one are not in the other."
    : "";
}
if (tabs) {
  tabs.onmessage = ({ data }) => {
    if (!data || data.tabId === tabId) return;
    if (data.type === "here" || data.type === "hello") {
      const known = otherTabs.has(data.tabId);
      otherTabs.add(data.tabId);
      if (data.type === "hello") tabs.postMessage({ type: "here", tabId });
      if (!known) renderOtherTabs();
    } else if (data.type === "gone") {
      otherTabs.delete(data.tabId);
      renderOtherTabs();
    }
  };
  tabs.postMessage({ type: "hello", tabId });
  window.addEventListener("pagehide", () => tabs.postMessage({ type: "gone", tabId }));
  // A tab brought back from the back-forward cache says hello again.
  window.addEventListener("pageshow", (event) => { if (event.persisted) tabs.postMessage({ type: "hello", tabId }); });
}

// ---- the event stream -------------------------------------------------------------------------
let streamOpened = false; // the first opening needs no re-read: the page reads the state as it starts
eventStream(`/v1/agents/${encodeURIComponent(agentId)}/events`, (message, receivedAt) => {
  if (message.type === "screen_pop") screenPop(message, receivedAt);
  else if (message.type === "agent_state" && !olderThanShown(message)) {
    const previous = agentState.state;
    agentState = message;
    renderState();
    stateChanged(previous, agentState.state);
    // Campaign calls have no call_state messages: the agent's state tells their progress.
    if (current && message.call_id === current.callId) {
      if (message.state === "on_call") {
        pill($("call-progress"), "connected", "ok");
        if (!callTimerStart) callTimerStart = Date.now();
      }
      if (message.state === "wrap_up") { pill($("call-progress"), "ended", ""); callTimerStart = null; }
      refreshHistorySoon(current.leadId);
    }
  }
  else if (message.type === "call_state") callState(message);
}, (state) => {
  pill($("stream"), state === "open" ? "live" : "reconnecting", state === "open" ? "ok" : "warn");
  // The agent's stream starts with `subscribed` only, not the state: what changed while it was
  // down (wrap-up over, paused by the supervisor, a restart's log-out) is read again.
  if (state === "open" && streamOpened) loadState();
  streamOpened ||= state === "open";
});

formsReady(); // every form's handler is attached: its buttons may send it now
await loadState();
loadCampaigns();
fillCallbackTimes();
for (const item of pendingDispositions()) send(item); // sent while offline before a reload
await startPhone();
