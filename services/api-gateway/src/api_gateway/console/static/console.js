// The site page: loads what the API knows, follows the active run live, and wires the controls.
// While a run is followed, the run and its current stage are what the stream's snapshots say
// (runs/{id}/events?snapshot=true, folded on the server from the run's events): the page renders
// each as it comes and merges nothing. The read model is read when no stream brings the run.
import { ApiError, get, post } from "./api.js";
import { showDisabledWebhooks } from "./banner.js";
import { $, fill, h, say } from "./dom.js";
import * as content from "./content.js";
import * as history from "./history.js";
import { RunStream } from "./live.js";
import * as panels from "./panels.js";
import * as usage from "./usage.js";
import * as views from "./views.js";

const { siteId } = JSON.parse($("console").dataset.boot);
const vocabulary = await get("/vocabulary");
const POLL_MS = 10000;      // only while the live stream is down
const IDLE_CHECK_MS = 30000; // notices runs started elsewhere (schedule, API)
const ACTIVE = new Set(vocabulary.active_statuses);
const dismissedKey = `console.dismissed.${siteId}`;

const state = {
  run: null,          // RunDetail of the active run, or of the last one shown
  processing: null,   // ProcessingState of that run's current stage
  overview: null, estimate: null, stream: null, poll: null, refreshing: null,
  reading: null,      // the one request a snapshot may cost: in flight, or null
  retrying: false,    // a retry_failed call is in flight
  resumeWhenFunded: false, // the site's setting: a run paused for credits resumes by itself
};

const isActive = () => state.run && ACTIVE.has(state.run.status);
const following = () => state.stream && !state.stream.down;

// ---- rendering -------------------------------------------------------------------------

// Before the first snapshot of a run just started: its first stage, nothing counted yet.
function processing() {
  const p = state.processing;
  if (p && p.run_id === state.run.run_id) return p;
  const stage = vocabulary.stages[Math.max(state.run.current_stage, 1) - 1];
  return {
    stage_number: stage.number, stage_name: stage.name, stage_type: stage.type,
    stage_status: "pending", total_items: 0, processed_items: 0, failed_items: 0,
    percentage: 0, currently_processing: [], up_next: [], remaining_count: 0,
  };
}

function renderProcessing() {
  const card = $("processing");
  const body = $("processing-body");
  if (isActive()) {
    const p = processing();
    const run = state.run;
    Object.assign(card.dataset, {
      state: run.status, stage: p.stage_number, total: p.total_items,
      processed: p.processed_items + p.failed_items,
    });
    fill(body, views.processingCard(p, run, run.status === "paused" && state.resumeWhenFunded
      && (run.pause_reason || "").startsWith("insufficient_credits")));
  } else if (state.run && localStorage.getItem(dismissedKey) !== state.run.run_id) {
    card.dataset.state = "finished";
    fill(body, views.resultCard(state.run, dismiss));
  } else {
    card.dataset.state = "idle";
    fill(body, h("p", { class: "muted" }, "No run is active. Run now starts one."));
  }
}

function dismiss() {
  localStorage.setItem(dismissedKey, state.run.run_id);
  renderProcessing();
  $("run-now").focus();
}

function renderStages() {
  if (!state.overview) return;
  const results = state.run ? state.run.stages : [];
  // The cards are built anew on every update: a Retry button that had the focus gets it back.
  const focused = document.activeElement && document.activeElement.dataset.retry;
  fill($("stages"), state.overview.stages.map((stage) => views.stageCard(stage,
    results.find((r) => r.stage_number === stage.stage_number), retry)));
  const again = focused && retryButton(focused);
  if (again) again.focus();
  $("retry-all").hidden = !state.overview.stages.some((stage) => stage.held_back > 0);
}

const retryButton = (stage) => $("stages").querySelector(`[data-retry="${stage}"]`);

function renderControls() {
  const e = state.estimate;
  const active = isActive();
  let reason = "";
  if (active) reason = `Run ${state.run.run_id} is ${state.run.status}; one run at a time.`;
  else if (e && !e.sufficient) {
    reason = `Not enough credits: starting needs ${e.required} (1.2 × ${e.checked_credits}, `
      + `the ${e.start_check} work), the balance is ${e.balance}.`;
  }
  $("run-now").disabled = Boolean(reason);
  $("run-now-reason").textContent = reason;
  if (e) {
    $("estimate").textContent = `Estimate ${e.estimated_credits} credits `
      + `(with what earlier stages will make: ${e.projected_credits}) · balance ${e.balance}`
      + (e.runs_out_at_stage ? ` · runs out in stage ${e.runs_out_at_stage}` : "");
    const money = views.moneyText(e.money);
    $("estimate-money").textContent = money;
    $("config-money").textContent = money; // beside the AI mode in the configuration
  }
  $("pause").disabled = !(active && state.run.status === "running");
  $("resume").disabled = !(active && state.run.status === "paused");
  $("cancel").disabled = !active;
}

function render() {
  renderProcessing();
  renderStages();
  renderControls();
}

// ---- loading ---------------------------------------------------------------------------

async function loadOverview() {
  [state.overview, state.estimate] = await Promise.all([
    get("/pipeline_overview", { site_id: siteId }), get("/estimate", { site_id: siteId }),
  ]);
}

// The run from the read model: the active one (then followed live), else the last one. A run
// the page followed and the read model no longer calls active has ended while the stream was
// down: it is read once more, finished.
async function loadRun() {
  if (following()) return; // the stream's snapshots bring the run
  const current = await get("/current_run", { site_id: siteId });
  if (current.run) {
    state.run = current.run;
    state.processing = await get("/current_processing", {
      site_id: siteId, run_id: current.run.run_id,
    }).catch(() => null);
    follow(current.run.run_id);
  } else if (state.stream) {
    ended(await get("/run", { run_id: state.stream.runId }));
  } else {
    const { runs } = await get("/history", { site_id: siteId, limit: 1 });
    state.run = runs.length ? await get("/run", { run_id: runs[0].run_id }) : null;
  }
}

async function loadLog() {
  if (!state.run) return;
  const lines = $("log-lines").value;
  const log = await get("/logs", { run_id: state.run.run_id, lines }).catch(() => null);
  if (!log) return;
  const pre = $("log");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.textContent = log.lines.length ? log.lines.join("\n") : "The log is not written yet.";
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// Reloads the page from the read model; calls that arrive meanwhile fold into one more reload.
function refresh() {
  if (state.refreshing) { state.again = true; return state.refreshing; }
  state.refreshing = (async () => {
    try {
      await Promise.all([loadRun(), loadOverview()]);
      render();
      await loadLog();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    } finally {
      state.refreshing = null;
      if (state.again) { state.again = false; setTimeout(refresh, 250); }
    }
  })();
  return state.refreshing;
}

// ---- live ------------------------------------------------------------------------------

function follow(runId) {
  if (state.stream && state.stream.runId === runId) return;
  if (state.stream) state.stream.close();
  state.stream = new RunStream(runId, ACTIVE, { onSnapshot, onUp: streamUp, onDown: streamDown });
}

function streamUp() {
  say($("live-status"), "Live");
  clearInterval(state.poll);
  state.poll = null;
}

function streamDown() {
  say($("live-status"), "Reconnecting… (checking every 10 s)", "error");
  if (!state.poll) state.poll = setInterval(refresh, POLL_MS);
}

// One snapshot: rendered as it is. It costs at most one request, never two at once: the stage
// figures when the run moved to another stage or changed status, else the log's tail.
function onSnapshot(snapshot) {
  if (!snapshot) { // the stream knew only that the run had finished
    get("/run", { run_id: state.stream.runId }).then(ended, () => null);
    return;
  }
  const before = state.run;
  state.run = snapshot.run;
  state.processing = snapshot.processing;
  if (!ACTIVE.has(snapshot.run.status)) { ended(snapshot.run); return; }
  render();
  const moved = !before || before.current_stage !== state.run.current_stage
    || before.status !== state.run.status;
  if (state.reading) return;
  state.reading = (moved ? get("/pipeline_overview", { site_id: siteId }).then((overview) => {
    state.overview = overview;
    renderStages();
  }) : loadLog()).catch(() => null).finally(() => { state.reading = null; });
}

// The run has ended: its result card, then once the panels that the run changed.
function ended(run) {
  if (state.stream) state.stream.close();
  state.stream = null;
  clearInterval(state.poll);
  state.poll = null;
  state.run = run;
  say($("live-status"), "Run ended");
  say($("run-message"), "");
  render();
  loadOverview().then(render, () => null);
  loadLog();
  panels.loadReview(siteId);
}

// ---- actions ---------------------------------------------------------------------------

async function act(button, work) {
  const message = $("run-message");
  button.disabled = true;
  try {
    say(message, await work());
  } catch (error) {
    say(message, error.message, "error");
  } finally {
    if (following()) renderControls(); // the stream's next snapshot brings the change
    else await refresh();
  }
}

async function runNow() {
  const started = await post("/run_now", { site_id: siteId });
  localStorage.removeItem(dismissedKey);
  state.run = { run_id: started.run_id, status: "running", current_stage: 1, stages: [] };
  state.processing = null;
  follow(started.run_id);
  render();
  return `Run ${started.run_id} started (estimate ${started.estimated_credits} credits).`;
}

async function control(verb) {
  const done = await post(`/${verb}`, { run_id: state.run.run_id });
  if (ACTIVE.has(done.status)) state.run.status = done.status; // an end comes as a snapshot
  render();
  return `Run ${done.run_id} is ${done.status}.`;
}

// Lets the stages pick again what they hold back after failures: one stage's, or all (stage
// null). The answer says how many; the focus stays on the button, or goes to the heading of
// the cards when the button went with what it released.
async function retry(stage, button) {
  if (state.retrying) return;
  state.retrying = true;
  button.disabled = true;
  const message = $("stages-message");
  const params = stage ? { site_id: siteId, stage } : { site_id: siteId };
  try {
    const { released } = await post("/retry_failed", params);
    say(message, releasedText(released, stage));
  } catch (error) {
    say(message, error.message, "error");
  } finally {
    state.retrying = false;
    button.disabled = false;
    await loadOverview().then(render, () => null);
    const again = stage ? retryButton(stage) : $("retry-all");
    (again && !again.hidden ? again : $("stages-h")).focus();
  }
}

function releasedText(released, stage) {
  const where = stage ? ` of stage ${stage}` : "";
  if (!released) return `Released 0 items${where}: nothing was held back.`;
  const items = released === 1 ? "1 item" : `${released} items`;
  return `Released ${items}${where}; runs will pick ${released === 1 ? "it" : "them"} again.`;
}

// ---- views -----------------------------------------------------------------------------
// Each view of the page has its own address under /sites/{id} (the run at the root; content,
// history and a run's detail, config, usage). Links between them move through
// history.pushState, so back and forward work; an address opened afresh shows the same view.
const base = `/sites/${siteId}`;
const shown = {
  run: () => {},
  content: () => content.show(siteId, vocabulary),
  history: (runId) => history.show(siteId, vocabulary, runId),
  config: () => {},
  usage: () => usage.show(siteId),
};

function route(moved) {
  const [name, detail] = window.location.pathname.slice(base.length + 1).split("/");
  const view = name || "run";
  for (const section of document.querySelectorAll("main [data-view]")) {
    section.hidden = section.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("nav.views a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const title = document.querySelector(`nav.views a[data-view="${view}"]`).textContent;
  document.title = `${title} · ${document.title.split(" · ").slice(1).join(" · ")}`;
  $("view-name").textContent = view === "run" ? "" : `· ${title}`;
  Promise.resolve(shown[view](detail)).then(() => {
    const heading = document.querySelector(`[data-view="${view}"] h2`);
    if (moved && heading && !(detail && view === "history")) heading.focus();
  }).catch((error) => say($("live-status"), error.message, "error"));
}

function go(address) {
  window.history.pushState(null, "", address);
  route(true);
}

// A click on a link to another view of this page (not to review or webhooks, their own pages).
function followLink(event) {
  const link = event.target.closest("a[href]");
  if (!link || event.button || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const url = new URL(link.href, window.location.href);
  const view = url.pathname.slice(base.length + 1).split("/")[0];
  if (url.origin !== window.location.origin || !(url.pathname === base
    || (url.pathname.startsWith(`${base}/`) && view in shown))) return;
  event.preventDefault();
  go(url.pathname + url.search);
}

function wire() {
  $("run-now").addEventListener("click", (e) => act(e.currentTarget, runNow));
  for (const verb of ["pause", "resume", "cancel"]) {
    $(verb).addEventListener("click", (e) => act(e.currentTarget, () => control(verb)));
  }
  $("retry-all").addEventListener("click", (e) => retry(null, e.currentTarget));
  $("log-lines").addEventListener("change", loadLog);
  $("import-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("import-file").files[0];
    if (file && (await panels.importKeywords(siteId, file))) await refresh();
  });
  $("config-form").addEventListener("submit", (e) => {
    e.preventDefault();
    panels.saveConfig(siteId, vocabulary).then((config) => {
      if (config) state.resumeWhenFunded = config.resume_when_funded;
    });
  });
  $("content-search").addEventListener("submit", (e) => {
    e.preventDefault();
    go(content.searched(siteId));
  });
  $("history-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    go(history.filtered(siteId));
  });
  document.addEventListener("click", followLink);
  window.addEventListener("popstate", () => route(false));
  setInterval(() => { if (!state.stream) refresh(); }, IDLE_CHECK_MS);
}

wire();
route(false);
refresh().then(() => { if (!state.stream) say($("live-status"), "Idle"); });
panels.loadReview(siteId);
panels.loadConfig(siteId, vocabulary).then((config) => {
  state.resumeWhenFunded = config.resume_when_funded;
});
showDisabledWebhooks();
