// What the page shows, built from the API's answers: stage cards, the processing card, history.
import { h, seconds, when } from "./dom.js";

const STAGE_STATUS = { pending: "pending", running: "active", completed: "done", failed: "failed" };
const ENDED = { completed: "Run completed", cancelled: "Run cancelled", failed: "Run failed" };

export function stageCard(stage, result, onRetry) {
  const status = result ? STAGE_STATUS[result.status] : "pending";
  const ran = result && result.started_at;
  return h("li", { class: `stage status-${status}`, "data-stage": stage.stage_number },
    h("div", { class: "stage-head" },
      h("span", { class: "stage-no" }, stage.stage_number),
      h("span", { class: "stage-name" }, stage.stage_name)),
    h("div", { class: "stage-meta" },
      h("span", { class: `tag type-${stage.stage_type.toLowerCase()}` }, stage.stage_type),
      h("span", { class: `tag status-${status}` }, status)),
    h("dl", { class: "figures" },
      h("dt", {}, "Pending now"), h("dd", {}, stage.pending),
      ran && [
        h("dt", {}, "In / out"), h("dd", {}, `${result.items_in} / ${result.items_out}`),
        h("dt", {}, "Credits"), h("dd", {}, result.credits_used),
        h("dt", {}, "Time"), h("dd", {}, seconds(result.elapsed_seconds)),
      ]),
    stage.held_back > 0 ? heldBack(stage, onRetry) : null);
}

// Items the stage no longer picks on its own (failed too often; a failed image at once), and
// the button that lets the stage pick them again.
function heldBack(stage, onRetry) {
  const n = stage.stage_number;
  const count = stage.held_back;
  const text = n === 6
    ? `${count} failed ${count === 1 ? "image" : "images"} held back`
    : `${count} held back after repeated failures`;
  return h("div", { class: "held" },
    h("p", { id: `held-${n}` }, text),
    h("button", {
      type: "button", class: "secondary", "data-retry": n, "aria-label": `Retry stage ${n}`,
      "aria-describedby": `held-${n}`, onclick: (e) => onRetry(n, e.currentTarget),
    }, "Retry"));
}

const LISTED = 5;

function items(title, list) {
  const more = list.length - LISTED;
  return h("div", { class: "items" },
    h("h3", {}, title),
    list.length
      ? h("ul", {}, list.slice(0, LISTED).map((item) => h("li", {}, item.title || `#${item.id}`)),
        more > 0 ? h("li", { class: "muted" }, `and ${more} more`) : null)
      : h("p", { class: "muted" }, "none"));
}

// The current stage as current_processing answers it (p: ProcessingState), of the run (for its
// pause reason); resumes: the run waits for credits and resumes by itself once they are added.
export function processingCard(p, run, resumes) {
  const settled = p.processed_items + p.failed_items;
  const paused = run.status === "paused";
  const empty = p.total_items === 0 && p.stage_status !== "pending";
  return [
    h("div", { class: "proc-head" },
      h("strong", {}, `Stage ${p.stage_number} · ${p.stage_name}`),
      h("span", { class: `tag type-${p.stage_type.toLowerCase()}` }, p.stage_type),
      h("span", { class: `tag run-${run.status}`, id: "run-state" },
        paused ? "Paused" : "Running"),
      paused && run.pause_reason && run.pause_reason !== "requested"
        ? h("span", { class: "muted" }, run.pause_reason) : null),
    resumes
      ? h("p", { class: "muted", id: "resumes-by-itself" },
        "Resumes by itself once credits are added.") : null,
    p.waiting_for_provider ? providerWait(p.waiting_for_provider) : null,
    p.waiting_for_provider_batch ? providerBatchWait(p.waiting_for_provider_batch) : null,
    empty
      ? h("p", { class: "empty", id: "no-items" }, "No items to process in this stage.")
      : [
        h("div", {
          class: `bar${paused ? " paused" : ""}`, role: "progressbar",
          "aria-label": `Stage ${p.stage_number} progress`, "aria-valuemin": 0,
          "aria-valuemax": 100, "aria-valuenow": p.percentage,
          "aria-valuetext": `${settled} of ${p.total_items} items`,
        }, h("span", { style: { width: `${p.percentage}%` } })),
        h("p", { class: "counts", id: "proc-counts" }, `${settled} / ${p.total_items} items · `
          + `${p.percentage}% · ${p.remaining_count} remaining`),
      ],
    h("div", { class: "item-lists" },
      items("In progress", p.currently_processing),
      items("Up next", p.up_next)),
  ];
}

// The provider holds the stage's calls back: nothing fails or is charged meanwhile.
function providerWait(wait) {
  return h("p", { class: "reason", id: "provider-wait", role: "status" },
    `Waiting for the AI provider (${wait.provider} ${wait.model}) since ${when(wait.since)}: `
    + `${wait.reason}. Items wait; none fails and nothing is charged for waiting.`);
}

// An economy run's batch waits for the provider's batch: answers come within 24 hours.
function providerBatchWait(wait) {
  return h("p", { class: "reason", id: "provider-batch-wait", role: "status" },
    `Waiting for the provider's batch: ${wait.completed} of ${wait.total} answered, `
    + `${wait.failed} failed — ${wait.status} since ${when(wait.since)}. `
    + "Answers come within 24 hours; nothing is charged until they do.");
}

const BASIS = {
  site: "the site's", account: "the account's", site_and_account: "the site's and the account's",
};

// The estimate's money (GET estimate's `money`): the pending work at the standard price and in
// economy, or which stages have no history to price it from.
export function moneyText(money) {
  if (money.basis === "no_pending_work") return "No pending AI work to price.";
  const stages = money.stages_without_history;
  if (money.standard_usd === null) {
    return `AI cost of the pending work: unknown, no priced calls in the last `
      + `${money.window_days} days for stage${stages.length > 1 ? "s" : ""} ${stages.join(", ")}.`;
  }
  return `AI cost of the pending work: $${money.standard_usd.toFixed(4)} standard, `
    + `$${money.economy_usd.toFixed(4)} economy (from ${BASIS[money.basis]} calls of the last `
    + `${money.window_days} days).`;
}

export function resultCard(run, onDismiss) {
  const elapsed = run.started_at && run.ended_at
    ? (new Date(run.ended_at) - new Date(run.started_at)) / 1000 : null;
  const done = run.stages.filter((s) => s.started_at);
  return [
    h("div", { class: "proc-head" },
      h("strong", { id: "run-result" }, ENDED[run.status] || `Run ${run.status}`),
      h("span", { class: `tag run-${run.status}` }, run.status)),
    h("p", {}, `${run.run_id} · ${run.credits_used} credits · ${seconds(elapsed)}`),
    run.error ? h("p", { class: "error" }, run.error) : null,
    h("ul", { class: "result-stages" }, done.map((s) =>
      h("li", {}, `${s.stage_number}. ${s.stage_name}: ${s.items_in} in, ${s.items_out} out, `
        + `${s.credits_used} credits`))),
    h("button", { type: "button", class: "secondary", id: "dismiss", onclick: onDismiss },
      "Dismiss"),
  ];
}

export function historyRow(run, base) {
  return h("tr", {},
    h("td", {}, h("a", {
      href: `${base}/history/${run.run_id}`, "aria-label": `Details of ${run.run_id}`,
    }, run.run_id)),
    h("td", {}, h("span", { class: `tag run-${run.status}` }, run.status)),
    h("td", {}, run.trigger),
    h("td", {}, when(run.started_at)),
    h("td", {}, when(run.ended_at)),
    h("td", {}, run.credits_used));
}

export function runDetail(run, lines, back, cost, timeline) {
  return h("article", { class: "detail", "aria-labelledby": "detail-h" },
    h("div", { class: "section-head" },
      h("h3", { id: "detail-h", tabindex: "-1" }, `Run ${run.run_id}`),
      h("a", { href: back }, "All runs")),
    h("p", {}, `${run.status} · ${run.trigger} · started ${when(run.started_at)} · `
      + `ended ${when(run.ended_at)} · ${run.credits_used} credits`),
    run.error ? h("p", { class: "error" }, run.error) : null,
    timeline,
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Stages of the run" }, h("table", { id: "run-stages" },
      h("thead", {}, h("tr", {}, ["Stage", "Status", "In", "Out", "Failed", "Credits", "Time"]
        .map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, run.stages.map((s) => h("tr", {},
        h("td", {}, `${s.stage_number}. ${s.stage_name}`),
        h("td", {}, STAGE_STATUS[s.status] + (s.partial ? " (partial)" : "")),
        h("td", {}, s.items_in), h("td", {}, s.items_out), h("td", {}, s.failed_items),
        h("td", {}, s.credits_used), h("td", {}, seconds(s.elapsed_seconds))))))),
    costTable(run.run_id, cost),
    cost ? saved(cost.total, "run-saved") : null,
    h("h4", {}, "Log"),
    h("pre", { class: "log", tabindex: "0", "aria-label": `Log of ${run.run_id}` },
      lines.length ? lines.join("\n") : "No log written yet."));
}

// What the AI providers charged per stage, beside the credits billed. A stage with a call the
// price table could not price says "unknown": a partial sum must not pass for the whole.
function costTable(runId, cost) {
  if (!cost) return h("p", { class: "muted", id: "cost-missing" }, "Cost figures unavailable.");
  const columns = ["Stage", "Calls", "Retries", "Tokens in / out", "Images", "Money", "Credits",
    "Waited"];
  return h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": `Cost of ${runId}` },
    h("table", { class: "cost", id: "run-cost" },
    h("caption", {}, `Cost of ${runId}`),
    h("thead", {}, h("tr", {}, columns.map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, cost.stages.map((s) => costRow(`${s.stage_number}. ${s.stage_name}`, s))),
    h("tfoot", {}, costRow("Total", cost.total))));
}

// What the provider's batch interface saved (economy runs), when it saved anything: `line` is
// a cost line of run_cost or usage.
export function saved(line, id) {
  if (!(line.saved_usd > 0)) return null;
  const calls = line.provider_batch_calls === 1 ? "1 call" : `${line.provider_batch_calls} calls`;
  return h("p", { class: "saved", id },
    `Saved $${line.saved_usd.toFixed(4)} through the provider's batch interface (${calls}).`);
}

function costRow(label, line) {
  return h("tr", {},
    h("th", { scope: "row" }, label),
    h("td", {}, count(line.calls)),
    h("td", {}, retries(line)),
    h("td", {}, `${count(line.input_tokens)} / ${count(line.output_tokens)}`),
    h("td", {}, count(line.images)),
    h("td", {}, money(line)),
    h("td", {}, count(line.credits)),
    h("td", {}, seconds(line.waited_seconds)));
}

const RETRY_WORDS = {
  rate_limited: "rate limited", unavailable: "unavailable", refused: "refused", fatal: "fatal",
};

function retries(line) {
  const parts = Object.entries(line.retries_by_outcome)
    .filter(([, n]) => n > 0).map(([outcome, n]) => `${n} ${RETRY_WORDS[outcome] || outcome}`);
  return parts.length ? `${line.retries} (${parts.join(", ")})` : String(line.retries);
}

function money(line) {
  return line.cost_complete ? `$${line.cost_usd.toFixed(4)}` : "unknown";
}

function count(n) {
  return n.toLocaleString();
}
