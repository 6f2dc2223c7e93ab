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

// The run's figures, its cost per stage and its log. Without the cost figures the rest still
// opens: the table then says they could not be read.
async function detail(runId, back) {
  const [run, log, cost] = await Promise.all([
    get("/run", { run_id: runId }), get("/logs", { run_id: runId, lines: 200 }),
    get("/run_cost", { run_id: runId }).catch(() => null),
  ]);
  fill($("run-detail"), views.runDetail(run, log.lines, back, cost));
  $("detail-h").focus();
}
