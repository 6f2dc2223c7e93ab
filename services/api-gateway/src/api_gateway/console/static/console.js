// The site page: loads what the API knows, follows the active run live, and wires the controls.
import { ApiError, get, post } from "./api.js";
import { showDisabledWebhooks } from "./banner.js";
import { $, fill, h, say } from "./dom.js";
import { RunStream } from "./live.js";
import * as panels from "./panels.js";
import * as views from "./views.js";

const { siteId } = JSON.parse($("console").dataset.boot);
const vocabulary = await get("/vocabulary");
const POLL_MS = 10000;      // only while the live stream is down
const IDLE_CHECK_MS = 30000; // notices runs started elsewhere (schedule, API)
const ACTIVE = new Set(vocabulary.active_statuses);
const dismissedKey = `console.dismissed.${siteId}`;

const state = {
  run: null,          // RunDetail of the active run, or of the last one shown
  processing: null,   // ProcessingState from the read model
  live: null,         // {runId, stage, total, settled: Set} counted from the stream
  overview: null, estimate: null, stream: null, poll: null, refreshing: null,
  behind: 0,          // reloads in a row where the read model lagged what the stream said
  retrying: false,    // a retry_failed call is in flight
  resumeWhenFunded: false, // the site's setting: a run paused for credits resumes by itself
};
const MAX_BEHIND = 40; // then the read model is believed, stream or not

const isActive = () => state.run && ACTIVE.has(state.run.status);

// ---- rendering -------------------------------------------------------------------------

function progress() {
  const run = state.run;
  const p = state.processing && state.processing.run_id === run.run_id ? state.processing : null;
  const live = state.live && state.live.runId === run.run_id ? state.live : null;
  const stage = Math.max(p ? p.stage_number : 0, live ? live.stage : 0, run.current_stage);
  const fromServer = p && p.stage_number === stage ? p : null;
  const fromStream = live && live.stage === stage ? live : null;
  const info = state.overview ? state.overview.stages[stage - 1] : null;
  return {
    run_status: run.status, pause_reason: run.pause_reason, stage_number: stage,
    resumes_by_itself: run.status === "paused" && state.resumeWhenFunded
      && (run.pause_reason || "").startsWith("insufficient_credits"),
    stage_name: info ? info.stage_name : `Stage ${stage}`,
    stage_type: info ? info.stage_type : "AI",
    stage_status: fromServer ? fromServer.stage_status : fromStream ? "running" : "pending",
    total: Math.max(fromServer ? fromServer.total_items : 0, fromStream ? fromStream.total : 0),
    settled: Math.max(
      fromServer ? fromServer.processed_items + fromServer.failed_items : 0,
      fromStream ? fromStream.settled.size : 0),
    currently_processing: fromServer ? fromServer.currently_processing : [],
    up_next: fromServer ? fromServer.up_next : [],
    remaining_count: fromServer ? fromServer.remaining_count : 0,
    waiting_for_provider: fromServer ? fromServer.waiting_for_provider : null,
  };
}

function renderProcessing() {
  const card = $("processing");
  const body = $("processing-body");
  if (isActive()) {
    const p = progress();
    Object.assign(card.dataset, {
      state: p.run_status, stage: p.stage_number, processed: p.settled, total: p.total,
    });
    fill(body, views.processingCard(p));
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
  const now = isActive() ? progress().stage_number : 0;
  // The cards are built anew on every update: a Retry button that had the focus gets it back.
  const focused = document.activeElement && document.activeElement.dataset.retry;
  fill($("stages"), state.overview.stages.map((stage) => {
    const result = results.find((r) => r.stage_number === stage.stage_number);
    const running = stage.stage_number === now && (!result || result.status === "pending");
    return views.stageCard(stage, running ? { ...result, status: "running" } : result, retry);
  }));
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

async function loadRun() {
  const current = await get("/current_run", { site_id: siteId });
  if (!current.run) state.behind = 0; // no active run: nothing left to catch up with
  if (current.run) {
    const heard = state.live && state.live.runId === current.run.run_id ? state.live.status : null;
    if (heard && current.run.status !== heard && state.behind < MAX_BEHIND) {
      // The stream said paused or resumed before the read model wrote it: keep what was heard
      // and look again shortly, or the card would show the older status until the next event.
      current.run.status = heard;
      state.behind += 1;
    } else {
      state.behind = 0;
    }
    state.run = current.run;
    state.processing = await get("/current_processing", {
      site_id: siteId, run_id: current.run.run_id,
    }).catch(() => null);
    follow(current.run.run_id);
  } else if (isActive() && state.stream && state.live.ended === undefined) {
    const run = await get("/run", { run_id: state.run.run_id }).catch(() => null);
    if (run && !ACTIVE.has(run.status)) finish(run.run_id);
  } else if (!state.stream) {
    const history = await loadHistory();
    state.run = history.length ? await get("/run", { run_id: history[0].run_id }) : null;
  }
}

async function loadHistory() {
  const { runs } = await get("/history", { site_id: siteId });
  fill($("history").tBodies[0], runs.length
    ? runs.map((run) => views.historyRow(run, openDetail))
    : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs yet.")));
  return runs;
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

// Reloads the run's view; calls that arrive meanwhile fold into one more reload afterwards.
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
      if (state.again || state.behind) { state.again = false; setTimeout(refresh, 250); }
    }
  })();
  return state.refreshing;
}

// A reload that starts after a change: one begun before it would show the old state.
async function refreshAfterChange() {
  await state.refreshing;
  await refresh();
}

// ---- live ------------------------------------------------------------------------------

function follow(runId) {
  if (state.stream && state.stream.runId === runId) return;
  if (state.stream) state.stream.close();
  state.live = { runId, stage: 0, total: 0, settled: new Set(), status: null };
  state.stream = new RunStream(runId, vocabulary,
    { onEvent, onUp: streamUp, onDown: streamDown });
}

function streamUp(afterDrop) {
  say($("live-status"), "Live");
  clearInterval(state.poll);
  state.poll = null;
  if (afterDrop) refresh(); // what happened while it was down
}

function streamDown() {
  say($("live-status"), "Reconnecting… (checking every 10 s)", "error");
  if (!state.poll) state.poll = setInterval(refresh, POLL_MS);
}

function onEvent(type, event) {
  const live = state.live;
  const data = event.data || {};
  if (type === "automation.stage.started") {
    if (data.stage !== live.stage) Object.assign(live, { stage: data.stage, settled: new Set() });
    live.total = data.items.length;
  } else if (type.endsWith("item-processed") || type.endsWith("item-failed")) {
    if (data.stage > live.stage) Object.assign(live, { stage: data.stage, settled: new Set() });
    if (data.stage === live.stage) {
      live.settled.add(data.item.id);
      if (data.total !== undefined) live.total = data.total;
    }
  } else if (type === "automation.run.paused" || type === "automation.run.resumed") {
    live.status = type.endsWith("paused") ? "paused" : "running";
    if (state.run) state.run.status = live.status;
  }
  if (isActive()) { renderProcessing(); renderStages(); }
  if (live.ended || !(type in vocabulary.run_endings || type === "run.finished")) refresh();
  else finish(live.runId);
}

// The stream (or a reload) said the run ended; the read model follows a moment later. Once
// per run: the stream and a reload can both notice the end. A dismissal made meanwhile holds,
// as it names the run it dismissed.
async function finish(runId) {
  if (!state.live || state.live.runId !== runId || state.live.ended) return;
  state.live.ended = true;
  if (state.stream) state.stream.close();
  state.stream = null;
  say($("live-status"), "Run ended");
  say($("run-message"), "");
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const run = await get("/run", { run_id: runId }).catch(() => null);
    if (run && !ACTIVE.has(run.status)) {
      state.run = run;
      await loadOverview();
      render();
      await Promise.all([loadLog(), loadHistory(), panels.loadReview(siteId)]);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250 * Math.min(attempt + 1, 8)));
  }
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
    await refreshAfterChange();
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
  state.run.status = done.status;
  if (state.live && state.live.runId === done.run_id && ACTIVE.has(done.status)) {
    state.live.status = done.status;
  }
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
    await refreshAfterChange();
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

// The run's figures, its cost per stage and its log. Without the cost figures the rest still
// opens: the table then says they could not be read.
async function openDetail(runId) {
  const [run, log, cost] = await Promise.all([
    get("/run", { run_id: runId }), get("/logs", { run_id: runId, lines: 200 }),
    get("/run_cost", { run_id: runId }).catch(() => null),
  ]);
  const close = () => fill($("run-detail"));
  fill($("run-detail"), views.runDetail(run, log.lines, close, cost));
  $("detail-h").focus();
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
  setInterval(() => { if (!state.stream) refresh(); }, IDLE_CHECK_MS);
}

wire();
refresh().then(() => { if (!state.stream) say($("live-status"), "Idle"); });
panels.loadReview(siteId);
panels.loadConfig(siteId, vocabulary).then((config) => {
  state.resumeWhenFunded = config.resume_when_funded;
});
loadHistory();
showDisabledWebhooks();
