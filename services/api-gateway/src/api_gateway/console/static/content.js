// The Content view, /sites/{id}/content?kind=&q=&status=&offset=: a page of one listing
// (keywords, clusters, ideas, tasks, articles, images) with search and paging. Everything it
// shows is in the address, so back and forward and a bookmark show the same page.
import { get } from "./api.js";
import { $, fill, h } from "./dom.js";

const PAGE = 50;
const articleLink = (base) => (c) => h("a", { href: `${base}/review/${c.id}` }, c.title);
const KINDS = {
  keywords: ["Keywords", [["Keyword", (k) => k.text], ["Volume", (k) => k.volume],
    ["Difficulty", (k) => k.difficulty ?? "—"]]],
  clusters: ["Clusters", [["Cluster", (c) => c.name], ["Keywords", (c) => c.keyword_count]]],
  ideas: ["Ideas", [["Idea", (i) => i.title], ["Cluster", (i) => i.cluster_id]]],
  tasks: ["Tasks", [["Task", (t) => t.title], ["Idea", (t) => t.idea_id]]],
  content: ["Articles", [["Article", null], ["Words", (c) => c.word_count],
    ["Run", (c) => c.run_id || "—"]]],
  images: ["Images", [["Image", (i) => (i.url ? h("img", {
    src: i.url, alt: i.prompt, width: 96, height: 72, loading: "lazy" }) : "—")],
  ["Kind", (i) => i.kind], ["Prompt", (i) => i.prompt]]],
};

export async function show(siteId, vocabulary) {
  const base = `/sites/${siteId}`;
  const params = new URLSearchParams(window.location.search);
  const kind = KINDS[params.get("kind")] ? params.get("kind") : "keywords";
  const [label, columns] = KINDS[kind];
  const q = params.get("q") || "";
  const status = params.get("status") || "";
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const at = (changes) => {
    const next = new URLSearchParams({ kind, q, status, offset, ...changes });
    for (const [name, value] of [...next]) if (!value || value === "0") next.delete(name);
    return `${base}/content?${next}`;
  };
  fill($("content-kinds"), Object.entries(KINDS).map(([name, [title]]) => h("li", {},
    h("a", { href: at({ kind: name, q: "", status: "", offset: 0 }),
      "aria-current": name === kind ? "page" : null }, title))));
  $("content-q").value = q;
  fill($("content-status"), h("option", { value: "" }, "any"),
    vocabulary.content_statuses[kind]
      .map((s) => h("option", { value: s, selected: s === status }, s)));
  $("content-search").dataset.kind = kind;

  const query = { site_id: siteId, limit: PAGE, offset };
  if (q) query.q = q;
  if (status) query.status = status;
  const page = await get(`/${kind}`, query);
  const table = $("content-table");
  fill(table.tHead, h("tr", {}, [...columns.map(([title]) => title), "Status"]
    .map((title) => h("th", { scope: "col" }, title))));
  fill(table.tBodies[0], page.items.length
    ? page.items.map((item) => h("tr", {}, columns.map(([, cell]) =>
      h("td", {}, (cell || articleLink(base))(item))), h("td", {}, item.status)))
    : h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" },
      `No ${label.toLowerCase()} ${q || status ? "match" : "yet"}.`)));
  const last = offset + page.items.length;
  $("content-count").textContent = page.total
    ? `${label}: ${offset + 1}–${last} of ${page.total}` : "";
  pager($("content-newer"), offset > 0 && at({ offset: Math.max(0, offset - PAGE) }));
  pager($("content-older"), last < page.total && at({ offset: last }));
}

// The search form leads to the address of its first page.
export function searched(siteId) {
  const form = new FormData($("content-search"));
  const next = new URLSearchParams({ kind: $("content-search").dataset.kind });
  for (const name of ["q", "status"]) if (form.get(name)) next.set(name, form.get(name));
  return `/sites/${siteId}/content?${next}`;
}

function pager(link, href) {
  if (href) { link.href = href; link.removeAttribute("aria-disabled"); link.hidden = false; }
  else { link.removeAttribute("href"); link.hidden = true; }
}
