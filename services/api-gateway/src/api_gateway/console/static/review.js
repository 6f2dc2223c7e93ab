// A site's review view, at /sites/{id}/review (the queue: one request per page, bulk approve or
// reject) and /sites/{id}/review/{content_id} (one article: its body as the server rendered it,
// edited on the version read, approved, or rejected with a reason; then on to the next one).
// Keys, outside text fields: j/k next/previous, a approve, r reject, e edit, Escape closes.
import { ApiError, api, get, post } from "./api.js";
import { showDisabledWebhooks } from "./banner.js";
import { $, fill, h, say, when } from "./dom.js";

const { siteId, siteName } = JSON.parse($("console").dataset.boot);
const BASE = `/sites/${siteId}/review`;
const PAGE = 50;
const queue = { offset: 0, total: 0, items: [] };
let article = null;   // ContentDetail of the open article
let rejecting = null; // the ids the reason is for (bulk), or null for the open article
let shown = 0;        // counts show(): one still loading gives way to a later one
let waiting = false;  // an article loads or a decision is sent: keys wait for what they act on

const message = (text, kind) => say($("review-message"), text, kind);
const articleUrl = (id) => `${BASE}/${id}`;
const ifMatch = (a) => ({ "If-Match": `"${a.version}"` });
const chips = (words) => words.map((word) => h("li", { class: "tag" }, word));

function addressed() {
  const found = window.location.pathname.match(/\/review\/(\d+)$/);
  return found ? Number(found[1]) : null;
}

// ---- the queue -------------------------------------------------------------------------

async function loadQueue() {
  const page = await get("/review_queue", { site_id: siteId, limit: PAGE, offset: queue.offset });
  if (!page.items.length && queue.offset > 0) { // the last page emptied by decisions
    queue.offset = Math.max(0, queue.offset - PAGE);
    return loadQueue();
  }
  Object.assign(queue, { total: page.total, items: page.items });
  $("review-all").checked = false;
  fill($("queue"), page.items.length ? page.items.map(queueItem)
    : h("li", { class: "muted", id: "queue-empty" }, "Nothing is waiting for review."));
  const last = queue.offset + page.items.length;
  $("queue-count").textContent = page.total ? `${queue.offset + 1}–${last} of ${page.total}` : "";
  $("page-newer").disabled = queue.offset === 0;
  $("page-older").disabled = last >= page.total;
}

function queueItem(c) {
  const box = `pick-${c.id}`;
  const images = c.images.filter((i) => i.url);
  return h("li", { class: "review-item", "data-content": c.id },
    h("div", { class: "review-head" },
      h("input", { type: "checkbox", id: box, value: c.id, class: "review-pick" }),
      h("label", { for: box, class: "visually-hidden" }, `Select ${c.title}`),
      h("a", { href: articleUrl(c.id), class: "review-open", onclick: follow }, c.title),
      h("span", { class: "muted" }, `${c.word_count} words`)),
    h("p", { class: "excerpt" }, c.excerpt),
    c.keywords.length ? h("ul", { class: "chips", "aria-label": "Keywords" }, chips(c.keywords))
      : null,
    images.length ? h("div", { class: "thumbs" }, images.map((i) => h("img", {
      src: i.url, alt: `${i.kind} image: ${i.prompt}`, width: 120, height: 90, loading: "lazy",
    }))) : null);
}

// Approves or rejects many at once, on whatever version is current (no If-Match).
async function bulk(ids, verdict, json) {
  if (!ids.length) return message("Select at least one article first.", "error");
  const outcomes = await Promise.allSettled(
    ids.map((id) => post(`/content/${id}/${verdict}`, {}, json ? { json } : {})));
  const refused = outcomes.filter((o) => o.status === "rejected").map((o) => o.reason.message);
  const verb = verdict === "approve" ? "Approved" : "Rejected";
  message(`${verb} ${ids.length - refused.length} of ${ids.length}.`
    + (refused.length ? ` ${refused.join("; ")}` : ""), refused.length ? "error" : "ok");
  await loadQueue();
  $("queue-h").focus();
}

const selected = () => [...document.querySelectorAll(".review-pick:checked")].map((b) => +b.value);

// ---- one article -----------------------------------------------------------------------

const position = () => (article ? queue.items.findIndex((c) => c.id === article.id) : -1);

function neighbour(by) {
  const at = position();
  return at < 0 ? (by > 0 ? queue.items[0] : undefined) : queue.items[at + by];
}

function pointAt(link, item) {
  if (item) link.setAttribute("href", articleUrl(item.id));
  else link.removeAttribute("href");
  link.setAttribute("aria-disabled", item ? "false" : "true");
}

async function openArticle(id, mine) {
  if (!queue.items.length) await loadQueue(); // opened by its address: next/previous need it
  let found;
  try {
    found = await get(`/content/${id}`);
  } catch (error) {
    message(error.message, "error");
    return go(BASE, { replace: true });
  }
  if (mine !== shown) return;
  article = found;
  renderArticle();
  $("article-h").focus();
}

function renderArticle() {
  const a = article;
  const decided = a.status !== "review";
  document.title = `${a.title} · Review`;
  $("article-h").textContent = a.title;
  fill($("article-meta"), `${a.word_count} words · version ${a.version} · made by run `,
    h("code", {}, a.run_id || "unknown"),
    a.edited_at ? ` · edited by user ${a.edited_by} at ${when(a.edited_at)}` : "",
    decided ? ` · ${a.status}` : "", a.reject_reason ? `: ${a.reject_reason}` : "");
  fill($("article-keywords"), chips(a.keywords));
  $("article-body").innerHTML = a.body_html; // made safe by the server (api_gateway/article_html.py)
  $("original").hidden = a.original_body === null;
  $("original-title").textContent = `Title: ${a.original_title || a.title}`;
  $("original-body").textContent = a.original_body || "";
  const at = position();
  $("position").textContent = at < 0 ? "not in this page of the queue"
    : `${queue.offset + at + 1} of ${queue.total}`;
  pointAt($("to-previous"), neighbour(-1));
  pointAt($("to-next"), neighbour(1));
  for (const id of ["approve", "reject", "edit"]) $(id).disabled = decided;
  closeEdit(false);
  fill($("edit-message"));
}

function step(by) {
  const target = neighbour(by);
  if (target) go(articleUrl(target.id));
}

// A refusal: a 409 (changed meanwhile, or decided by someone else) overwrites nothing and
// offers the article as it is now.
function refused(error) {
  if (!(error instanceof ApiError && error.status === 409)) {
    return say($("edit-message"), error.message, "error");
  }
  fill($("edit-message"),
    h("p", { class: "error" }, `It changed since you opened it, so nothing was done: `
      + `${error.message}.`),
    h("button", { type: "button", id: "reload", class: "secondary", onclick: reload },
      "Reload the article"));
  $("reload").focus();
}

async function reload() {
  article = await get(`/content/${article.id}`);
  renderArticle();
  $("article-h").focus();
}

// After a decision the article leaves the queue; the next one opens (or the queue, if none).
async function decide(send, verb) {
  const at = position();
  const { id, title } = article;
  waiting = true;
  try {
    await send();
  } catch (error) {
    waiting = false;
    return refused(error);
  }
  message(`${verb} “${title}”.`);
  queue.items = queue.items.filter((c) => c.id !== id);
  queue.total -= 1;
  if (!queue.items.length) await loadQueue();
  const next = queue.items[Math.min(Math.max(at, 0), queue.items.length - 1)];
  await go(next ? articleUrl(next.id) : BASE, { replace: true });
}

const approve = () => decide(
  () => post(`/content/${article.id}/approve`, {}, { headers: ifMatch(article) }), "Approved");

function openEdit() {
  if (article.status !== "review") return;
  $("edit-title").value = article.title;
  $("edit-body").value = article.body;
  $("edit-form").hidden = false;
  $("article-body").hidden = true;
  $("edit-title").focus();
}

function closeEdit(focus) {
  $("edit-form").hidden = true;
  $("article-body").hidden = false;
  if (focus) $("edit").focus();
}

async function save() {
  const change = { version: article.version };
  const title = $("edit-title").value.trim();
  const body = $("edit-body").value;
  if (title !== article.title) change.title = title;
  if (body !== article.body) change.body = body;
  if (change.title === undefined && change.body === undefined) return closeEdit(true);
  try {
    article = await api("PATCH", `/content/${article.id}`, { json: change, headers: ifMatch(article) });
  } catch (error) {
    return refused(error);
  }
  renderArticle();
  message(`Saved “${article.title}” as version ${article.version}.`);
  $("article-h").focus();
}

// ---- the reason dialog -----------------------------------------------------------------

function openReject(ids) {
  rejecting = ids;
  $("reject-h").textContent = ids ? `Reject ${ids.length} selected` : `Reject “${article.title}”`;
  $("reject-reason").value = "";
  $("reject-reason").removeAttribute("aria-invalid");
  $("reject-reason-error").textContent = "";
  $("reject-dialog").showModal();
  $("reject-reason").focus();
}

async function confirmReject() {
  const reason = $("reject-reason").value.trim();
  if (!reason) {
    $("reject-reason-error").textContent = "Say why: the reason is kept with the article.";
    $("reject-reason").setAttribute("aria-invalid", "true");
    return $("reject-reason").focus();
  }
  const ids = rejecting;
  rejecting = undefined; // decided: the dialog's close leaves the focus to what comes next
  $("reject-dialog").close();
  if (ids) return bulk(ids, "reject", { reason });
  return decide(() => post(`/content/${article.id}/reject`, {}, {
    json: { reason }, headers: ifMatch(article),
  }), "Rejected");
}

function rejectClosed() {
  if (rejecting === undefined) return;
  $(rejecting ? "reject-selected" : "reject").focus();
  rejecting = undefined;
}

// ---- addresses, history and keys -------------------------------------------------------

function follow(event) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (event.currentTarget.hasAttribute("href")) go(event.currentTarget.getAttribute("href"));
}

async function go(url, { replace = false } = {}) {
  if (url !== window.location.pathname) {
    window.history[replace ? "replaceState" : "pushState"](null, "", url);
  }
  await show(true);
}

// Shows what the address names; back from an article puts the focus on its line in the queue.
async function show(moved = false) {
  const mine = ++shown;
  waiting = true;
  try {
    await showAddressed(mine, moved);
  } finally {
    if (mine === shown) waiting = false;
  }
}

async function showAddressed(mine, moved) {
  const id = addressed();
  const left = article;
  $("queue-view").hidden = id !== null;
  $("article-view").hidden = id === null;
  if (id !== null) return openArticle(id, mine);
  article = null;
  document.title = `Review · ${siteName}`;
  await loadQueue();
  if (mine !== shown) return;
  const line = left && document.querySelector(`.review-item[data-content="${left.id}"] a`);
  if (line) line.focus();
  else if (moved) $("queue-h").focus();
}

function moveInQueue(by) {
  const links = [...document.querySelectorAll(".review-open")];
  const here = document.activeElement.closest(".review-item");
  const at = links.findIndex((link) => here && here.contains(link));
  const next = links[Math.min(links.length - 1, Math.max(0, at + by))];
  if (next) next.focus();
}

const QUEUE_KEYS = { j: () => moveInQueue(1), k: () => moveInQueue(-1) };
const ARTICLE_KEYS = {
  j: () => step(1), k: () => step(-1), ArrowRight: () => step(1), ArrowLeft: () => step(-1),
  a: () => !$("approve").disabled && approve(),
  r: () => !$("reject").disabled && openReject(null),
  e: openEdit,
};
const TYPING = "textarea, select, [contenteditable], input:not([type=checkbox]):not([type=radio])";

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("reject-dialog").open) return; // the dialog handles its own keys, Escape included
  if (event.key === "Escape") {
    if (!$("edit-form").hidden) closeEdit(true);
    else if (article) go(BASE);
    return;
  }
  if (event.target.matches(TYPING)) return;
  const action = (article ? ARTICLE_KEYS : QUEUE_KEYS)[event.key];
  if (!action) return;
  event.preventDefault();
  if (!waiting) action();
}

function wire() {
  for (const id of ["to-queue", "to-previous", "to-next"]) $(id).addEventListener("click", follow);
  $("approve").addEventListener("click", approve);
  $("reject").addEventListener("click", () => openReject(null));
  $("edit").addEventListener("click", openEdit);
  $("edit-cancel").addEventListener("click", () => closeEdit(true));
  $("edit-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
  $("reject-form").addEventListener("submit", (e) => { e.preventDefault(); confirmReject(); });
  $("reject-cancel").addEventListener("click", () => $("reject-dialog").close());
  $("reject-dialog").addEventListener("close", rejectClosed);
  $("approve-selected").addEventListener("click", () => bulk(selected(), "approve"));
  $("reject-selected").addEventListener("click", () => {
    if (selected().length) openReject(selected());
    else message("Select at least one article first.", "error");
  });
  $("review-all").addEventListener("change", (e) => {
    for (const box of document.querySelectorAll(".review-pick")) box.checked = e.target.checked;
  });
  $("page-newer").addEventListener("click", () => { queue.offset -= PAGE; loadQueue(); });
  $("page-older").addEventListener("click", () => { queue.offset += PAGE; loadQueue(); });
  window.addEventListener("popstate", () => show(true));
  document.addEventListener("keydown", onKey);
}

wire();
show().catch((error) => message(error.message, "error"));
showDisabledWebhooks();
