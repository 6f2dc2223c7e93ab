// The History view: /sites/{id}/history?status=&trigger=&from=&to=&offset= lists the runs the
// filters match, a page at a time; /sites/{id}/history/{run_id} is one run's detail (its
// figures, cost per stage and log). The filters live in the address.
import { get } from "./api.js";
import { $, fill, h } from "./dom.js";
import * as views from "./views.js";

const PAGE = 20;
const FILTERS = ["status", "trigger", "from", "to"];

export async function show(siteId, vocabulary, runId) {
  const base = `/sites/${siteId}`;
  $("history-list").hidden = Boolean(runId);
  if (runId) return detail(runId, `${base}/history`);
  fill($("run-detail"));
  const params = new URLSearchParams(window.location.search);
  const statuses = vocabulary.run_statuses.filter((s) => s !== "rejected");
  fill($("history-status"), h("option", { value: "" }, "any"),
    statuses.map((s) => h("option", { value: s }, s)));
  const query = { site_id: siteId, limit: PAGE, offset: Number(params.get("offset")) || 0 };
  for (const name of FILTERS) {
    $(`history-${name}`).value = params.get(name) || "";
    if (params.get(name)) query[name] = params.get(name);
  }
  const { runs, total } = await get("/history", query);
  fill($("history").tBodies[0], runs.length
    ? runs.map((run) => views.historyRow(run, base))
    : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs match.")));
  const older = query.offset + runs.length < total;
  fill($("history-more"), older ? h("a", { href: filtered(siteId, query.offset + PAGE) },
    `Older runs (${total - query.offset - runs.length} more)`) : null);
}

// The address of the list with the form's filters, from `offset` on.
export function filtered(siteId, offset = 0) {
  const next = new URLSearchParams();
  for (const name of FILTERS) {
    if ($(`history-${name}`).value) next.set(name, $(`history-${name}`).value);
  }
  if (offset) next.set("offset", offset);
  return `/sites/${siteId}/history${String(next) ? `?${next}` : ""}`;
}

// The run's timeline (an SVG the server draws from the run's events), its figures and cost per
// stage, the items that failed with their reasons, and its log. Without the cost figures or
// the timeline the rest still opens.
async function detail(runId, back) {
  const [run, log, cost, timeline] = await Promise.all([
    get("/run", { run_id: runId }), get("/logs", { run_id: runId, lines: 200 }),
    get("/run_cost", { run_id: runId }).catch(() => null),
    get("/run_timeline", { run_id: runId }).catch(() => null),
  ]);
  fill($("run-detail"), views.runDetail(run, log.lines, back, cost, timeline && [
    h("figure", { class: "chart" },
      h("img", { id: "timeline", src: `/api/v1/automation/run_timeline.svg?run_id=${runId}`,
        alt: timelineText(timeline) }),
      h("figcaption", {}, `Timeline of ${runId}: stages, pauses, waits, items in flight`)),
    h("h4", {}, "Failed items"),
    timeline.failed_items.length
      ? h("ul", { id: "failed-items" }, timeline.failed_items.map((f) => h("li", {},
        `Stage ${f.stage}: ${f.title} (#${f.item_id}): ${f.error}`)))
      : h("p", { class: "muted", id: "failed-items" }, "No item failed."),
  ]));
  $("detail-h").focus();
}

// What the timeline shows, in words, for who cannot see it.
function timelineText(t) {
  const stages = t.stages.map((s) => `stage ${s.stage} ${s.status} from ${s.started_at} to `
    + `${s.ended_at || "now"}`);
  return `Timeline: ${stages.join("; ") || "no stage started"}; ${t.pauses.length} pauses, `
    + `${t.waits.length} waits for the provider, `
    + `${t.provider_batch_waits.length} for the provider's batch.`;
}
