// The supervisor's console: wallboard (live through /v1/events), monitoring from this page's
// own browser phone (listen / whisper / barge on one leg, switching without redialing), the
// KPI dashboards (GET /v1/reports/...), the pipeline board and recordings search with a seeking
// player. A client of the documented API only; `window.supervisorState` is for tests.
import { Api, announce, eventStream, formsReady, mountHeader } from "/static/shell.js";
import { Softphone } from "/static/softphone.js";
import uPlot from "/static/vendor/uplot-1.6.32/dist/uPlot.esm.js";

const api = new Api();
const state = {
  agents: new Map(), // agent_id -> agent_state (from the stream or the snapshot)
  calls: [], // the live calls, as the stream last sent them
  board: null, // GET /v1/wallboard
  firstSeen: {}, // call_id -> Date.now() when its row was first drawn
  monitor: null, // the monitor session this page runs
  phone: null,
  endpoint: null,
  kpis: null,
  pipeline: null,
  recordings: [],
  nextRecordings: null,
  streamOpen: false,
  boardProblem: null, // {since, reason} while GET /v1/wallboard fails
};
window.supervisorState = state;

const $ = (selector) => document.querySelector(selector);
const KPI_TILES = [
  ["dials", "Dials"], ["contacts", "Contacts", "contact_rate"], ["appts_set", "Appts set", "appt_set_rate"],
  ["appts_held", "Appts held", "appt_held_rate"], ["app_pending", "App pending", "app_rate"],
  ["issued", "Closes (issued)", "close_rate"], ["connected", "Connected"], ["abandoned", "Abandoned", "abandon_rate"],
  ["talk_seconds", "Talk time"], ["average_handle_seconds", "AHT"], ["occupancy", "Occupancy"],
  ["speed_to_lead_median_seconds", "Speed-to-lead (median)"],
];
const SECONDS = new Set(["talk_seconds", "average_handle_seconds", "speed_to_lead_median_seconds", "wrap_seconds",
  "busy_seconds", "available_seconds"]);
const RATES = new Set(["occupancy", "contact_rate", "appt_set_rate", "appt_held_rate", "app_rate", "close_rate",
  "abandon_rate", "answer_rate", "contact_to_close"]);
const DISPOSITIONS = ["no_answer", "busy", "answering_machine", "left_voicemail", "wrong_number",
  "disconnected_number", "contacted", "callback", "not_interested", "appointment_set", "appointment_held", "sale",
  "policy_issued", "nurture", "lost", "do_not_call"];

// ---- small helpers ---------------------------------------------------------------------------
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

function since(iso) {
  return (Date.now() - Date.parse(iso)) / 1000;
}

function shown(name, value) {
  if (value === null || value === undefined) return "–";
  if (RATES.has(name)) return `${(value * 100).toFixed(1)} %`;
  if (SECONDS.has(name)) return duration(value);
  return String(value);
}

// An empty table says so in words (its `data-empty`), not just headers over nothing.
// Rows are given with a key (`data-key`) and are kept in place while their content is the same:
// a table rebuilt under the pointer or the keyboard lost the click (pressed on one button,
// released on its replacement) and the focus (a Listen button reached by Tab went away within a
// second), so a keyboard user could not monitor a call at all.
function fillRows(table, rows) {
  const body = table.querySelector("tbody");
  if (!rows.length && table.dataset.empty) {
    const columns = table.querySelectorAll("thead th").length || 1;
    rows = [el("tr", { class: "empty", "data-key": "empty" }, el("td", { colspan: columns, class: "muted" }, table.dataset.empty))];
  }
  const focused = body.contains(document.activeElement) ? document.activeElement : null;
  const focusedRow = focused?.closest("tr")?.dataset.key;
  const focusedMode = focused?.dataset.mode;
  const kept = new Map([...body.children].map((row) => [row.dataset.key, row]));
  const wanted = rows.map((row) => {
    const old = row.dataset.key === undefined ? null : kept.get(row.dataset.key);
    // A row with a `data-signature` (what it shows, but for the times the clock ticks in place)
    // is the same row while that is; any other row while it is equal node for node.
    const same = old && (row.dataset.signature !== undefined
      ? old.dataset.signature === row.dataset.signature : old.isEqualNode(row));
    return same ? old : row;
  });
  const keep = new Set(wanted);
  for (const row of [...body.children]) if (!keep.has(row)) row.remove();
  wanted.forEach((row, index) => { if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null); });
  // A row that did change (its state, its monitors) is a new node: its button gets the focus back.
  if (focused && !document.body.contains(focused) && focusedRow !== undefined) {
    const row = [...body.children].find((candidate) => candidate.dataset.key === focusedRow);
    const again = focusedMode ? row?.querySelector(`[data-mode="${focusedMode}"]`) : row?.querySelector("button, a");
    again?.focus();
  }
}

// A table whose figures did not load says so in its body, instead of keeping older figures.
function failedTable(table, words) {
  const columns = table.querySelectorAll("thead th").length || 1;
  table.querySelector("tbody").replaceChildren(el("tr", { class: "failed" },
    el("td", { colspan: columns, class: "problem" }, words)));
}

// What a refused or failed API call says, in words: the problem's own message, else its status.
function problemText(answer, what) {
  const reason = answer.body?.message || (answer.status ? `the dialer answered ${answer.status}` : "the dialer does not answer");
  return `${what}: ${reason}`;
}

function csvDownload(name, header, rows) {
  const cell = (value) => {
    let text = value === null || value === undefined ? "" : String(value);
    if (/^[=+\-@]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const text = [header, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `${name}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---- tabs --------------------------------------------------------------------------------------
const loaders = {};
function showTab(name) {
  for (const button of document.querySelectorAll("nav.tabs button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tab === name));
  }
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `tab-${name}`;
  state.tab = name;
  loaders[name]?.();
}

// ---- wallboard ---------------------------------------------------------------------------------
function renderAgents() {
  const agents = [...state.agents.values()].filter((agent) => agent.state !== "logged_out")
    .sort((a, b) => a.agent_id.localeCompare(b.agent_id));
  const board = new Map((state.board?.alerts || []).filter((a) => a.code === "wrap_up_overrun")
    .map((a) => [a.agent_id, a]));
  fillRows($("#agents"), agents.map((agent) => {
    const over = board.has(agent.agent_id);
    return el("tr", {
      "data-agent-id": agent.agent_id, "data-key": agent.agent_id,
      "data-signature": JSON.stringify([agent.state, agent.since, agent.call_id, agent.pause_reason,
        agent.campaign_ids, over]),
    },
    el("td", {}, agent.agent_id),
    el("td", { class: `state-${agent.state}` }, agent.state.replaceAll("_", " ")),
    el("td", { class: over ? "num over" : "num", "data-since": agent.since }, duration(since(agent.since))),
    el("td", {}, agent.call_id || ""),
    el("td", {}, agent.pause_reason || ""),
    el("td", {}, (agent.campaign_ids || []).join(", ")));
  }));
}

// Listening in is offered on a connected call while the list is live: a call from a list that
// stopped updating may have ended, or be another's by now.
function monitorButtons(call) {
  const mine = state.monitor && state.monitor.call_id === call.call_id && state.monitor.state !== "ended";
  const live = !isStale();
  const why = !live ? "the list is not live: wait for it to reconnect" : call.connected ? null : "not connected yet";
  return ["listen", "whisper", "barge"].map((mode) => el("button", {
    type: "button", "data-mode": mode, "aria-pressed": String(Boolean(mine && state.monitor.mode === mode)),
    disabled: !call.connected || !live, title: why || `${mode} on this call`,
    "aria-label": `${mode[0].toUpperCase()}${mode.slice(1)} on ${call.agent_id || call.call_id}'s call`,
    onclick: () => monitorCall(call.call_id, mode),
  }, mode[0].toUpperCase() + mode.slice(1)));
}

function renderCalls() {
  const now = Date.now();
  const rows = state.calls.map((call) => {
    if (!(call.call_id in state.firstSeen)) state.firstSeen[call.call_id] = now;
    const mine = state.monitor && state.monitor.call_id === call.call_id && state.monitor.state !== "ended"
      ? state.monitor.mode : null;
    return el("tr", {
      "data-call-id": call.call_id, "data-key": call.call_id, "data-connected": String(call.connected),
      "data-signature": JSON.stringify([call.agent_id, call.lead_number, call.campaign_id, call.state, call.started_at,
        call.connected, call.monitors, mine, isStale()]),
    },
    el("td", {}, call.call_id), el("td", {}, call.agent_id || ""), el("td", {}, call.lead_number),
    el("td", {}, call.campaign_id || ""), el("td", {}, call.state),
    el("td", { class: "num", "data-started": call.started_at }, duration(since(call.started_at))),
    el("td", {}, (call.monitors || []).map((m) => `${m.endpoint} ${m.mode}`).join("; ")),
    el("td", {}, monitorButtons(call)));
  });
  fillRows($("#calls"), rows);
}

// The times in state and the calls' durations tick in place, every second, while the lists are
// live; a list that is not live keeps the times it had (they would count on for calls that ended).
function tickTimes() {
  if (isStale()) return;
  for (const cell of document.querySelectorAll("#calls td[data-started]")) {
    cell.textContent = duration(since(cell.dataset.started));
  }
  for (const cell of document.querySelectorAll("#agents td[data-since]")) {
    cell.textContent = duration(since(cell.dataset.since));
  }
}

function renderBoard() {
  const board = state.board;
  if (!board) return;
  $("#alerts").replaceChildren(...board.alerts.map((alert) => el("div", {
    class: `alert ${alert.severity}`, "data-code": alert.code, role: alert.severity === "critical" ? "alert" : null,
  }, alert.message)));
  fillRows($("#waiting"), board.waiting.map((call) => el("tr", { "data-key": call.call_id }, el("td", {}, call.call_id),
    el("td", {}, call.campaign_id || ""), el("td", {}, call.direction), el("td", {}, call.lead_number),
    el("td", { class: "num" }, duration(call.waiting_seconds)))));
  $("#campaigns").dataset.empty = $("#running-only").checked ? "No campaign is running." : "No campaign yet.";
  fillRows($("#campaigns"), shownCampaigns().map((campaign) => {
    const window30 = campaign.abandon_30_days;
    const status = campaign.running ? (campaign.paused ? "paused" : "running") : "stopped";
    const left = campaign.leads_left;
    const control = campaign.running
      ? el("button", { type: "button", onclick: () => pauseCampaign(campaign.campaign_id, !campaign.paused),
        "aria-label": `${campaign.paused ? "Resume" : "Pause"} ${campaign.name}` },
      campaign.paused ? "Resume" : "Pause")
      : "";
    // Keyed: a row whose figures did not change is kept, so its Pause button keeps the focus.
    return el("tr", { "data-campaign-id": campaign.campaign_id, "data-key": campaign.campaign_id },
      el("td", {}, `${campaign.name} (${campaign.campaign_id})`), el("td", {}, status),
      el("td", {}, campaign.pacer ? `${campaign.dial_mode} / ${campaign.pacer}` : campaign.dial_mode),
      el("td", { class: "num" }, campaign.lines), el("td", { class: "num" }, campaign.hopper),
      el("td", { class: "num" }, campaign.today.dials), el("td", { class: "num" }, campaign.today.answered),
      el("td", { class: "num" }, campaign.today.people ?? ""),
      el("td", { class: "num" }, campaign.today.connected), el("td", { class: "num" }, campaign.today.abandoned),
      el("td", { class: window30.rate >= window30.limit ? "num over" : "num" },
        `${(window30.rate * 100).toFixed(2)} % of ${window30.live_answers} (limit 3 %)`),
      el("td", {}, `due ${left.due}, later ${left.scheduled}, callbacks ${left.callback}, done ${left.done}`),
      el("td", {}, Object.entries(campaign.blocked).map(([reason, count]) => `${reason} ${count}`).join(", ")),
      el("td", {}, control));
  }));
}

// Every campaign of the agency is listed (its day's figures and 30-day abandon rate matter when
// stopped too); a wall screen may show only those dialing now. The choice is kept per browser.
const RUNNING_ONLY_KEY = "dialer.wallboard.runningOnly";
const WALL_KEY = "dialer.wallboard.large";
function shownCampaigns() {
  const campaigns = state.board?.campaigns || [];
  return $("#running-only").checked ? campaigns.filter((campaign) => campaign.running) : campaigns;
}

// ---- what is not up to date ------------------------------------------------------------------
// A wallboard whose dialer stopped answering kept showing its last calls and agents, their times
// counting on, as if live: a supervisor could take a call that had ended for one going on, or
// barge on it. What is not up to date says so above the lists, greyed, since when (in the
// supervisor's own time), and monitoring waits until the lists are live again.
function isStale() {
  return !state.streamOpen && state.boardProblem !== null;
}

// The short name of the supervisor's own zone at `at` ("EST"): a time on the page says whose it is.
function zoneName(at) {
  return new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(at)
    .find((part) => part.type === "timeZoneName")?.value || "";
}

function clockTime(at) {
  return new Date(at).toLocaleTimeString("en-US", { hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short" });
}

function renderStaleness() {
  const note = $("#wallboard-problem");
  const problem = state.boardProblem;
  const stale = isStale();
  if (!problem) {
    note.hidden = true;
    note.textContent = "";
  } else if (stale) {
    note.hidden = false;
    note.textContent = `Not live since ${clockTime(problem.since)}: ${problem.reason}. The calls, agents and `
      + "figures below are as they were then; listening in waits until they are live again. Reconnecting...";
  } else {
    note.hidden = false;
    note.textContent = `The waiting calls and campaign figures are not up to date since ${clockTime(problem.since)}: `
      + `${problem.reason}. Live calls and agents still update. Trying again every 3 s.`;
  }
  for (const id of ["#calls", "#agents"]) $(id).classList.toggle("stale", stale);
  // "No live calls." is a fact only while the list is live: otherwise it says what is known.
  const known = state.everLoaded ? `when last known (${clockTime(problem?.since ?? Date.now())})` : null;
  $("#calls").dataset.empty = !stale ? "No live calls." : known ? `No live calls ${known}.`
    : "Not known: the dialer has not answered since this page opened.";
  $("#agents").dataset.empty = !stale ? "No agent is logged in." : known ? `No agent was logged in ${known}.`
    : "Not known: the dialer has not answered since this page opened.";
  renderAgents();
  for (const id of ["#waiting", "#campaigns"]) $(id).classList.toggle("stale", problem !== null);
  renderCalls(); // the monitor buttons follow
}

async function loadBoard() {
  const answer = await api.get("/v1/wallboard");
  if (answer.status !== 200) {
    const reason = answer.body?.message || (answer.status ? `the dialer answered ${answer.status}` : "the dialer does not answer");
    state.boardProblem = { since: state.boardProblem?.since ?? Date.now(), reason };
    announce(problemText(answer, "The wallboard did not load"));
    renderStaleness();
    return;
  }
  const line = document.getElementById("shell-status");
  if (line.textContent.startsWith("The wallboard did not load")) announce("The wallboard loads again.");
  state.board = answer.body;
  state.everLoaded = true;
  if (!state.streamOpen) {
    state.calls = answer.body.calls;
    for (const agent of answer.body.agents) state.agents.set(agent.agent_id, agent);
  }
  const wasProblem = state.boardProblem !== null;
  state.boardProblem = null;
  if (wasProblem) renderStaleness();
  renderCalls();
  renderAgents(); // its wrap-up overruns come from the board's alerts
  renderBoard();
  const agentIds = new Set([...state.agents.keys()]);
  $("#agent-ids").replaceChildren(...[...agentIds].map((id) => el("option", { value: id })));
  $("#campaign-ids").replaceChildren(...answer.body.campaigns.map((c) => el("option", { value: c.campaign_id })));
}

function onStream(message) {
  if (message.type === "snapshot") {
    state.everLoaded = true;
    state.agents = new Map(message.agents.map((agent) => [agent.agent_id, agent]));
    state.calls = message.calls;
    renderAgents();
    renderCalls();
  } else if (message.type === "agent_state") {
    state.agents.set(message.agent_id, message);
    renderAgents();
  } else if (message.type === "calls") {
    state.calls = message.calls;
    renderCalls();
  } else if (message.type === "campaigns") {
    loadBoard(); // the runtime's figures changed: the database's may have too
  }
}

async function pauseCampaign(campaignId, paused) {
  const answer = await api.post(`/v1/campaigns/${encodeURIComponent(campaignId)}/${paused ? "pause" : "resume"}`);
  announce(answer.status === 200 ? `${campaignId} ${paused ? "paused" : "resumed"}`
    : problemText(answer, `${campaignId} was not ${paused ? "paused" : "resumed"}`));
  loadBoard();
}

// ---- monitoring --------------------------------------------------------------------------------
async function ensurePhone() {
  if (state.phone) return state.phone;
  const answer = await api.get("/v1/session/supervisor-phone");
  if (answer.status !== 200) throw new Error(answer.body?.message || "no phone for monitoring");
  const login = answer.body;
  const phone = new Softphone({
    wsUrl: login.ws_url, sipUri: login.sip_uri, username: login.username, password: login.password,
    audio: $("#monitor-audio"), autoAnswer: true,
    iceServers: login.ice_servers.map((url) => ({ urls: url })),
  });
  phone.addEventListener("change", () => {
    const status = phone.status();
    $("#phone-state").textContent = `phone: ${status.registration}${status.call !== "idle" ? `, ${status.call}` : ""}`;
    $("#phone-state").className = `pill ${status.registration === "registered" ? "ok" : "warn"}`;
  });
  state.phone = phone;
  state.endpoint = login.endpoint;
  window.phone = phone; // the browser tests read its status and WebRTC stats
  await phone.start();
  const deadline = Date.now() + 10000;
  while (phone.status().registration !== "registered" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return phone;
}

// One monitoring request at a time: a second click while the first waits for the phone or the
// dialer (a slow server) started a second leg on the same call.
let monitorBusy = false;

async function monitorCall(callId, mode) {
  if (monitorBusy) {
    announce("Monitoring: the last request is still on its way.");
    return;
  }
  monitorBusy = true;
  try {
    await startMonitor(callId, mode);
  } finally {
    monitorBusy = false;
  }
}

async function startMonitor(callId, mode) {
  if (!state.phone) announce("Connecting your browser phone for monitoring…");
  let phone;
  try {
    phone = await ensurePhone();
  } catch (error) {
    announce(`Monitoring needs your browser phone: ${String(error.message || error)}`);
    return;
  }
  if (phone.status().registration !== "registered") {
    // The dialer would call a phone that is not there: said now, not as a monitor that never rings.
    announce("Monitoring needs your browser phone, and it has not registered: check the microphone permission "
      + "and the network, then try again.");
    return;
  }
  const current = state.monitor;
  let answer;
  if (current && current.call_id === callId && !["ended", "ending"].includes(current.state)) {
    answer = await api.post(`/v1/monitors/${current.monitor_id}/mode`, { mode });
  } else {
    if (current && !["ended", "ending"].includes(current.state)) {
      await api.request("DELETE", `/v1/monitors/${current.monitor_id}`);
    }
    answer = await api.post(`/v1/calls/${encodeURIComponent(callId)}/monitor`, { endpoint: state.endpoint, mode });
  }
  if (answer.status !== 202) {
    announce(problemText(answer, "Monitoring refused"));
    return;
  }
  state.monitor = { ...(state.monitor || {}), ...answer.body, mode_active: false };
  const agent = state.calls.find((call) => call.call_id === callId)?.agent_id;
  const doing = { listen: "Listening to", whisper: "Whispering to the agent on", barge: "Barging in on" }[mode] || mode;
  announce(`${doing} ${agent ? `${agent}'s call` : callId}: the dialer calls your browser phone.`);
  renderCalls();
  followMonitor();
}

let following = null;
function followMonitor() {
  if (following) return;
  following = setInterval(async () => {
    if (!state.monitor) return;
    const answer = await api.get(`/v1/monitors/${state.monitor.monitor_id}`);
    if (answer.status !== 200) return;
    state.monitor = answer.body;
    const m = answer.body;
    $("#monitor-status").textContent = `${m.call_id}: ${m.mode} (${m.state}${m.mode_active ? ", active" : ""})`;
    $("#monitor-stop").disabled = m.state === "ended";
    if (m.state === "ended") {
      $("#monitor-status").textContent = `${m.call_id}: ended (${m.end_reason || ""})`;
      clearInterval(following);
      following = null;
      renderCalls();
    }
  }, 400);
}

async function stopMonitor() {
  if (!state.monitor) return;
  await api.request("DELETE", `/v1/monitors/${state.monitor.monitor_id}`);
}

// ---- KPIs --------------------------------------------------------------------------------------
function reportQuery(extra = {}) {
  const parameters = new URLSearchParams({ period: $("#kpi-period").value });
  if ($("#kpi-period").value === "range") {
    if ($("#kpi-from").value) parameters.set("from", $("#kpi-from").value);
    if ($("#kpi-to").value) parameters.set("to", $("#kpi-to").value);
  }
  if ($("#kpi-agent").value.trim()) parameters.set("agent_id", $("#kpi-agent").value.trim());
  if ($("#kpi-campaign").value.trim()) parameters.set("campaign_id", $("#kpi-campaign").value.trim());
  for (const [name, value] of Object.entries(extra)) parameters.set(name, value);
  return parameters.toString();
}

let chart = null;
function drawChart(series) {
  const xs = series.map((point) => Date.parse(`${point.at}Z`) / 1000); // local wall time, drawn as such
  const data = [xs, series.map((p) => p.dials), series.map((p) => p.connected), series.map((p) => p.contacts),
    series.map((p) => p.appts_set)];
  const target = $("#kpi-chart");
  const width = Math.max(320, target.clientWidth - 10);
  const options = {
    width, height: 220, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    series: [{}, { label: "Dials", stroke: "#0b5cad" }, { label: "Connected", stroke: "#1d6b2f" },
      { label: "Contacts", stroke: "#8a4b00" }, { label: "Appts set", stroke: "#a4161a" }],
    axes: [{}, { size: 40 }],
  };
  if (chart) chart.destroy();
  target.replaceChildren();
  chart = new uPlot(options, data, target);
}

function drawFunnel(kpis) {
  const steps = [["Dials", kpis.dials], ["Contacts", kpis.contacts], ["Appts set", kpis.appts_set],
    ["Appts held", kpis.appts_held], ["App pending", kpis.app_pending], ["Issued", kpis.issued]];
  const top = Math.max(1, ...steps.map(([, value]) => value));
  $("#kpi-funnel").replaceChildren(...steps.map(([label, value], index) => el("div", { class: "funnel-row" },
    el("span", {}, label),
    el("div", { class: "funnel-bar", style: null, "data-width": String(Math.round((100 * value) / top)) }),
    el("span", { class: "num" }, index ? `${value}` : `${value}`))));
  for (const bar of document.querySelectorAll(".funnel-bar")) bar.style.width = `${bar.dataset.width}%`;
}

const TABLE_COLUMNS = ["key", "dials", "connected", "contacts", "appts_set", "appts_held", "app_pending", "issued",
  "contact_rate", "appt_set_rate", "close_rate", "talk_seconds", "average_handle_seconds", "occupancy",
  "speed_to_lead_median_seconds"];
function fillKpiTable(table, rows) {
  table.querySelector("thead").replaceChildren(el("tr", {}, TABLE_COLUMNS.map((name) => el("th", {},
    name === "key" ? "" : name.replaceAll("_", " ")))));
  fillRows(table, rows.map((row) => el("tr", { "data-key": row.key }, TABLE_COLUMNS.map((name) => el("td", {
    class: name === "key" ? null : "num", "data-kpi": name,
  }, name === "key" ? (row.key || "(no agent)") : shown(name, row[name]))))));
}

let kpiRequest = 0;
async function loadKpis() {
  const query = reportQuery();
  const mine = ++kpiRequest;
  // The downloads follow the filters asked for at once, before (and whether or not) the figures load.
  $("#csv-agents").href = `/v1/reports/agents?${reportQuery({ format: "csv" })}`;
  $("#csv-campaigns").href = `/v1/reports/campaigns?${reportQuery({ format: "csv" })}`;
  $("#csv-series").href = `/v1/reports/agency?${reportQuery({ format: "csv" })}`;
  const [agency, agents, campaigns] = await Promise.all([
    api.get(`/v1/reports/agency?${query}`), api.get(`/v1/reports/agents?${query}`),
    api.get(`/v1/reports/campaigns?${query}`)]);
  if (mine !== kpiRequest) return; // a later request (other filters) is on its way: it draws
  if (agency.status !== 200) {
    // The figures of the filters asked before stayed on the screen under the new filters, as if
    // they answered them: they go, and the page says why in their place.
    const words = problemText(agency, "The figures did not load");
    announce(words);
    $("#kpi-period-text").textContent = "";
    $("#kpi-tiles").replaceChildren(el("p", { class: "problem", role: "alert", id: "kpi-problem" }, words));
    $("#kpi-funnel").replaceChildren();
    if (chart) { chart.destroy(); chart = null; }
    $("#kpi-chart").replaceChildren();
    for (const table of ["#kpi-agents", "#kpi-campaigns"]) failedTable($(table), words);
    return;
  }
  const { period, kpis, series } = agency.body;
  state.kpis = agency.body;
  $("#kpi-period-text").textContent = `${period.first_day} to ${period.last_day} (${period.timezone})`;
  $("#kpi-tiles").replaceChildren(...KPI_TILES.map(([name, label, rate]) => el("div", { class: "tile" },
    el("div", { class: "label" }, label),
    el("div", { class: "value", "data-kpi": name }, shown(name, kpis[name])),
    rate ? el("div", { class: "sub" }, `${shown(rate, kpis[rate])}`) : null)));
  drawFunnel(kpis);
  drawChart(series);
  if (agents.status === 200) fillKpiTable($("#kpi-agents"), agents.body.rows);
  else failedTable($("#kpi-agents"), problemText(agents, "The figures per agent did not load"));
  if (campaigns.status === 200) fillKpiTable($("#kpi-campaigns"), campaigns.body.rows);
  else failedTable($("#kpi-campaigns"), problemText(campaigns, "The figures per campaign did not load"));
  state.kpisLoaded = Date.now();
}

// ---- pipeline ----------------------------------------------------------------------------------
function ageText(seconds) {
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400 * 2) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

async function loadPipeline() {
  const parameters = new URLSearchParams({ per_stage: "25" });
  if ($("#pipeline-campaign").value.trim()) parameters.set("campaign_id", $("#pipeline-campaign").value.trim());
  $("#csv-pipeline").href = `/v1/reports/pipeline?${parameters}&format=csv`;
  const answer = await api.get(`/v1/reports/pipeline?${parameters}`);
  if (answer.status !== 200) {
    announce(problemText(answer, "The pipeline did not load"));
    return;
  }
  const before = new Map();
  for (const column of state.pipeline?.stages || []) for (const lead of column.leads) before.set(lead.lead_id, column.stage);
  state.pipeline = answer.body;
  $("#board").replaceChildren(...answer.body.stages.map((column) => el("div", {
    class: "column", "data-stage": column.stage,
  }, el("h3", {}, `${column.label} `, el("span", { class: "count" }, column.count)),
  el("div", { class: "meta" }, column.count ? `avg ${ageText(column.average_age_seconds)}, oldest ${ageText(column.oldest_age_seconds)}` : "empty"),
  column.leads.map((lead) => el("div", {
    class: before.size && before.get(lead.lead_id) !== column.stage ? "card fresh" : "card",
    "data-lead-id": lead.lead_id,
  }, el("div", {}, lead.name), el("div", { class: "age" }, `${ageText(lead.age_seconds)} in stage`))))));
}

// ---- recordings --------------------------------------------------------------------------------
function recordingQuery() {
  const parameters = new URLSearchParams({ limit: "25" });
  const set = (name, value) => { if (value) parameters.set(name, value); };
  set("lead_id", $("#rec-lead").value.trim());
  set("agent_id", $("#rec-agent").value.trim());
  set("campaign_id", $("#rec-campaign").value.trim());
  set("disposition", $("#rec-disposition").value);
  set("min_seconds", $("#rec-min").value);
  set("max_seconds", $("#rec-max").value);
  if ($("#rec-since").value) parameters.set("since", new Date(`${$("#rec-since").value}T00:00:00`).toISOString());
  if ($("#rec-until").value) {
    const end = new Date(`${$("#rec-until").value}T00:00:00`);
    end.setDate(end.getDate() + 1);
    parameters.set("until", end.toISOString());
  }
  if (parameters.size === 1) parameters.set("since", new Date(Date.now() - 7 * 86400000).toISOString());
  return parameters;
}

function renderRecordings() {
  fillRows($("#recordings"), state.recordings.map((recording) => el("tr", { "data-recording-id": recording.recording_id },
    el("td", {}, new Date(recording.recorded_at).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" })
      + ` ${zoneName(new Date(recording.recorded_at))}`), el("td", {}, recording.call_id || ""),
    el("td", {}, recording.lead_id || ""), el("td", { class: "num" }, duration(recording.duration_seconds)),
    el("td", {}, recording.audio_url
      ? el("button", { type: "button", onclick: () => play(recording),
        "aria-label": `Play the recording of call ${recording.call_id || recording.recording_id}` }, "Play")
      : "purged"))));
  $("#rec-more").hidden = !state.nextRecordings;
}

async function searchRecordings(more = false) {
  const url = more ? state.nextRecordings : `/v1/recordings?${recordingQuery()}`;
  const answer = await api.get(url);
  if (answer.status !== 200) {
    announce(problemText(answer, "The recordings search failed"));
    return;
  }
  state.recordings = more ? [...state.recordings, ...answer.body.recordings] : answer.body.recordings;
  state.nextRecordings = answer.body.next;
  renderRecordings();
}

function play(recording) {
  // The stored audio (Opus in Ogg) answers Range requests, so the player seeks without
  // downloading the whole call; every hand-out is audited by the API.
  const player = $("#player");
  player.src = recording.audio_url;
  player.play().catch(() => {});
  $("#player-text").textContent = `Playing ${recording.recording_id} (call ${recording.call_id || "?"})`;
  state.playing = recording.recording_id;
}

// ---- start -------------------------------------------------------------------------------------
async function main() {
  await api.load();
  mountHeader(api);
  for (const button of document.querySelectorAll("nav.tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  loaders.kpis = loadKpis;
  loaders.pipeline = loadPipeline;
  $("#kpi-form").addEventListener("submit", (event) => { event.preventDefault(); loadKpis(); });
  $("#pipeline-form").addEventListener("submit", (event) => { event.preventDefault(); loadPipeline(); });
  $("#rec-form").addEventListener("submit", (event) => { event.preventDefault(); searchRecordings(); });
  $("#rec-more").addEventListener("click", () => searchRecordings(true));
  formsReady(); // the forms' handlers are attached: their buttons may send them now
  $("#monitor-stop").addEventListener("click", stopMonitor);
  $("#rec-disposition").append(...DISPOSITIONS.map((code) => el("option", { value: code }, code.replaceAll("_", " "))));
  $("#running-only").checked = localStorage.getItem(RUNNING_ONLY_KEY) === "1";
  // Large text for a screen on the wall, read from across the room; kept per browser (the wall's
  // own), and asked for by `?wall=1` in the screen's address too.
  const wall = new URLSearchParams(window.location.search).get("wall") === "1"
    || localStorage.getItem(WALL_KEY) === "1";
  $("#wall-mode").checked = wall;
  document.body.classList.toggle("wall", wall);
  $("#wall-mode").addEventListener("change", () => {
    localStorage.setItem(WALL_KEY, $("#wall-mode").checked ? "1" : "0");
    document.body.classList.toggle("wall", $("#wall-mode").checked);
  });
  $("#running-only").addEventListener("change", () => {
    localStorage.setItem(RUNNING_ONLY_KEY, $("#running-only").checked ? "1" : "0");
    renderBoard();
  });
  for (const button of document.querySelectorAll("button.csv[data-csv]")) {
    button.addEventListener("click", () => exportTable(button.dataset.csv));
  }
  eventStream("/v1/events?interval=0.25", onStream, (status) => {
    state.streamOpen = status === "open";
    if (!state.streamOpen && state.ready) loadBoard(); // the board's own answer tells whether the dialer is there
    renderStaleness();
    $("#stream-state").textContent = `live: ${status === "open" ? "on" : "reconnecting"}`;
    $("#stream-state").className = `pill ${status === "open" ? "ok" : "warn"}`;
  });
  await loadBoard();
  setInterval(loadBoard, 3000);
  setInterval(tickTimes, 1000); // times in state and durations
  setInterval(() => { if (state.tab === "pipeline") loadPipeline(); }, 3000);
  state.ready = true;
  const wanted = new URLSearchParams(window.location.search).get("tab");
  showTab(wanted || "wallboard");
}

function exportTable(name) {
  const tables = {
    calls: () => [["call_id", "agent_id", "lead_number", "campaign_id", "state", "started_at"],
      state.calls.map((c) => [c.call_id, c.agent_id, c.lead_number, c.campaign_id, c.state, c.started_at])],
    waiting: () => [["call_id", "campaign_id", "direction", "lead_number", "waiting_seconds"],
      (state.board?.waiting || []).map((c) => [c.call_id, c.campaign_id, c.direction, c.lead_number, c.waiting_seconds])],
    agents: () => [["agent_id", "state", "since", "call_id", "pause_reason"],
      [...state.agents.values()].map((a) => [a.agent_id, a.state, a.since, a.call_id, a.pause_reason])],
    campaigns: () => [["campaign_id", "running", "paused", "dial_mode", "lines", "hopper", "dials", "answered",
      "people", "connected", "abandoned", "abandon_rate_30_days"],
    shownCampaigns().map((c) => [c.campaign_id, c.running, c.paused, c.dial_mode, c.lines, c.hopper,
      c.today.dials, c.today.answered, c.today.people, c.today.connected, c.today.abandoned, c.abandon_30_days.rate])],
    recordings: () => [["recording_id", "recorded_at", "call_id", "lead_id", "duration_seconds"],
      state.recordings.map((r) => [r.recording_id, r.recorded_at, r.call_id, r.lead_id, r.duration_seconds])],
  };
  const [header, rows] = tables[name]();
  csvDownload(name, header, rows);
}

main();
