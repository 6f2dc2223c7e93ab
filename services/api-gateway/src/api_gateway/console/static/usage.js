// The Usage view, /sites/{id}/usage: the site's credits, money, runs and AI calls per UTC day
// over the last 30 days (GET usage), newest first, with the totals.
import { get } from "./api.js";
import { $, fill, h } from "./dom.js";
import * as views from "./views.js";

const COLUMNS = [
  ["Day", (d) => d.day], ["Credits", (d) => d.credits_charged], ["Money", money],
  ["Runs", (d) => d.runs_started], ["AI calls", (d) => d.calls], ["Images", (d) => d.images],
];

function money(line) {
  return line.cost_complete ? `$${line.cost_usd.toFixed(4)}` : `≥ $${line.cost_usd.toFixed(4)}`;
}

export async function show(siteId) {
  const report = await get("/usage", { site_id: siteId });
  const row = (cells, head) => h("tr", {}, cells.map((cell, i) =>
    h(i === 0 || head ? "th" : "td", { scope: head ? "col" : i === 0 ? "row" : null }, cell)));
  fill($("usage"),
    h("figure", { class: "chart" }, h("img", {
      id: "usage-chart", src: `/api/v1/automation/usage_chart.svg?site_id=${siteId}`,
      alt: `Credits and money per day from ${report.from_day} to ${report.to_day}; `
        + "the table below has the figures.",
    })),
    h("p", {}, `${report.from_day} to ${report.to_day}: ${report.total.credits_charged} credits, `
      + `${money(report.total)}, ${report.total.runs_started} runs.`),
    views.saved(report.total, "usage-saved"),
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Usage per day" }, h("table", { id: "usage-days" },
      h("caption", {}, "Per UTC day, newest first"),
      h("thead", {}, row(COLUMNS.map(([title]) => title), true)),
      h("tbody", {}, [...report.days].reverse()
        .map((d) => row(COLUMNS.map(([, cell]) => cell(d))))))));
}
