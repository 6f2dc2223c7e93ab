// The webhooks page: the account's endpoints (test, rotate the secret, enable or disable,
// delete), a form for a new one, the secret shown once when it is made, and an endpoint's
// delivery log with each delivery's attempts and Redeliver.
import { ApiError, api, get, post } from "./api.js";
import { showDisabledWebhooks } from "./banner.js";
import { $, fill, h, say, when } from "./dom.js";

const { sites } = JSON.parse($("console").dataset.boot);
const LOG_PAGE = 20;
const STATUS_TAG = { pending: "status-active", delivered: "status-done", failed: "status-failed" };
const FIELDS = ["url", "event_types", "site_ids", "description"];
const log = { endpoint: null, offset: 0, total: 0 };

const message = (text, kind) => say($("hooks-message"), text, kind);
const siteNames = (ids) => ids === null ? "every site"
  : ids.map((id) => (sites.find((s) => s.id === id) || { name: `site ${id}` }).name).join(", ");

// ---- endpoints -------------------------------------------------------------------------

async function loadEndpoints() {
  const page = await get("/webhooks", { limit: 500 });
  fill($("endpoints"), page.items.length ? page.items.map(endpointCard)
    : h("li", { class: "muted" }, "No endpoints yet."));
  showDisabledWebhooks();
}

function endpointCard(e) {
  const button = (text, work, extra = {}) => h("button", {
    type: "button", class: "secondary", "aria-label": `${text}: ${e.url}`, ...extra,
    onclick: (event) => act(event.currentTarget, work),
  }, text);
  return h("li", { class: "endpoint", "data-endpoint": e.id },
    h("div", { class: "review-head" },
      h("strong", { class: "url" }, e.url),
      h("span", { class: `tag ${e.enabled ? "status-done" : "status-failed"}` },
        e.enabled ? "enabled" : "disabled")),
    e.description ? h("p", {}, e.description) : null,
    !e.enabled ? h("p", { class: "reason" },
      `Disabled ${when(e.disabled_at)}: ${e.disabled_reason}`) : null,
    e.enabled && e.failing_since ? h("p", { class: "reason" },
      `Failing since ${when(e.failing_since)}; 5 days of it disable the endpoint.`) : null,
    h("p", { class: "muted" }, `${e.event_types.join(", ")} · ${siteNames(e.site_ids)}`),
    h("div", { class: "controls" },
      button("Send test", () => sendTest(e), { disabled: !e.enabled }),
      button("Rotate secret", () => rotate(e)),
      button(e.enabled ? "Disable" : "Enable", () => setEnabled(e, !e.enabled)),
      button("Delivery log", () => openLog(e)),
      button("Delete", () => remove(e), { class: "danger" })));
}

// Runs one action of a card; the answer, or the server's refusal, goes to the message line.
async function act(button, work) {
  button.disabled = true;
  try {
    const text = await work();
    if (text) message(text);
  } catch (error) {
    message(error.message, "error");
  } finally {
    button.disabled = false;
  }
}

async function sendTest(e) {
  const sent = await post(`/webhooks/${e.id}/test`);
  if (log.endpoint && log.endpoint.id === e.id) await loadLog();
  return `Test event ${sent.id} queued for ${e.url}.`;
}

async function rotate(e) {
  const secret = await post(`/webhooks/${e.id}/rotate_secret`);
  showSecret(e.url, secret.secret, secret.previous_expires_at
    ? `The previous secret also signs until ${when(secret.previous_expires_at)}.` : "");
  return "";
}

async function setEnabled(e, enabled) {
  await api("PATCH", `/webhooks/${e.id}`, { json: { enabled } });
  await loadEndpoints();
  if (log.endpoint && log.endpoint.id === e.id) await loadLog(); // disabling fails what waits
  return `${e.url} is ${enabled ? "enabled" : "disabled"}.`;
}

async function remove(e) {
  if (!window.confirm(`Delete ${e.url} with its delivery log?`)) return "";
  await api("DELETE", `/webhooks/${e.id}`);
  if (log.endpoint && log.endpoint.id === e.id) closeLog();
  await loadEndpoints();
  $("endpoints-h").focus();
  return `${e.url} is deleted.`;
}

// The secret, shown here once (the API's GET .../secret shows it again to the owner).
function showSecret(url, secret, note) {
  fill($("secret-box"), h("section", { class: "card secret", "aria-labelledby": "secret-h" },
    h("h2", { id: "secret-h", tabindex: "-1" }, `Signing secret of ${url}`),
    h("p", {}, "Copy it now: receivers verify the webhook-signature header with it."),
    h("code", { id: "secret-value" }, secret),
    note ? h("p", { class: "muted" }, note) : null,
    h("button", { type: "button", class: "secondary", onclick: () => fill($("secret-box")) },
      "Hide")));
  $("secret-h").focus();
}

// ---- the form --------------------------------------------------------------------------

const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)];

async function create(form) {
  for (const name of FIELDS) {
    const error = $(`hook-${name}-error`);
    if (error) error.textContent = "";
  }
  const sitesChosen = checked("site_ids").map((box) => Number(box.value));
  const body = {
    url: $("hook-url").value.trim(),
    event_types: checked("event_types").map((box) => box.value),
    site_ids: sitesChosen.length ? sitesChosen : null,
    description: $("hook-description").value,
  };
  try {
    const made = await post("/webhooks", {}, { json: body });
    form.reset();
    message(`${made.url} is added.`);
    await loadEndpoints();
    showSecret(made.url, made.secret, "");
  } catch (error) {
    const name = error instanceof ApiError && error.field && error.field.split(".")[0];
    const place = name && $(`hook-${name}-error`);
    if (place) place.textContent = error.message;
    message(`Not added: ${error.message}`, "error");
    if (name === "url" || name === "description") $(`hook-${name}`).focus();
  }
}

// ---- the delivery log ------------------------------------------------------------------

function openLog(e) {
  Object.assign(log, { endpoint: e, offset: 0 });
  $("log-section").hidden = false;
  $("log-endpoint").textContent = e.url;
  return loadLog().then(() => { $("log-h").focus(); return ""; });
}

function closeLog() {
  log.endpoint = null;
  $("log-section").hidden = true;
  fill($("delivery-detail"));
}

async function loadLog() {
  const status = $("log-status").value;
  const page = await get(`/webhooks/${log.endpoint.id}/deliveries`, {
    limit: LOG_PAGE, offset: log.offset, ...(status ? { status } : {}),
  });
  log.total = page.total;
  fill($("deliveries").tBodies[0], page.items.length ? page.items.map(deliveryRow)
    : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No deliveries.")));
  const last = Math.min(log.offset + page.items.length, page.total);
  $("log-count").textContent = page.total ? `${log.offset + 1}–${last} of ${page.total}` : "";
  $("log-newer").disabled = log.offset === 0;
  $("log-older").disabled = last >= page.total;
}

function lastAnswer(d) {
  if (!d.last_attempt_at) return "—";
  const answer = d.last_status ? `HTTP ${d.last_status}` : "no answer";
  const error = d.last_error ? ` · ${d.last_error}` : "";
  return `${answer} in ${d.last_latency_ms} ms${error}`;
}

function deliveryRow(d) {
  return h("tr", { "data-delivery": d.id },
    h("td", {}, when(d.created_at)),
    h("td", {}, d.event_type),
    h("td", {}, h("span", { class: `tag ${STATUS_TAG[d.status]}` },
      d.in_flight ? "sending" : d.status)),
    h("td", {}, d.attempts),
    h("td", { class: "wrap" }, lastAnswer(d)),
    h("td", {}, d.status === "pending" ? when(d.next_attempt_at) : "—"),
    h("td", {}, h("div", { class: "controls" },
      h("button", { type: "button", class: "link", "aria-label": `Attempts of ${d.id}`,
        onclick: () => openDelivery(d.id) }, "Attempts"),
      h("button", { type: "button", class: "link", "aria-label": `Redeliver ${d.id}`,
        onclick: () => redeliver(d.id) }, "Redeliver"))));
}

async function openDelivery(id) {
  const d = await get(`/webhooks/${log.endpoint.id}/deliveries/${id}`);
  const columns = ["#", "At", "Outcome", "Status", "Latency", "Error", "Answer"];
  fill($("delivery-detail"), h("article", { class: "detail", "aria-labelledby": "delivery-h" },
    h("h3", { id: "delivery-h", tabindex: "-1" }, `Delivery ${d.id} (${d.event_type})`),
    h("pre", { class: "log", tabindex: "0", "aria-label": "Body" }, d.body),
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Delivery attempts" }, h("table", { id: "attempts" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, d.attempt_log.length ? d.attempt_log.map((a) => h("tr", {},
        h("td", {}, a.attempt), h("td", {}, when(a.at)), h("td", {}, a.outcome),
        h("td", {}, a.status ?? "—"), h("td", {}, `${a.latency_ms} ms`),
        h("td", { class: "wrap" }, a.error || ""), h("td", { class: "wrap" }, a.response || "")))
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No attempt yet.")))))));
  $("delivery-h").focus();
}

async function redeliver(id) {
  try {
    await post(`/webhooks/${log.endpoint.id}/deliveries/${id}/redeliver`);
    say($("log-message"), `Delivery ${id} will be sent again with the same webhook-id.`);
    await loadLog();
  } catch (error) {
    say($("log-message"), error.message, "error");
  }
}

// ---- wiring ----------------------------------------------------------------------------

$("endpoint-form").addEventListener("submit", (event) => {
  event.preventDefault();
  create(event.currentTarget);
});
$("log-status").addEventListener("change", () => { log.offset = 0; loadLog(); });
$("log-close").addEventListener("click", () => { closeLog(); $("endpoints-h").focus(); });
$("log-newer").addEventListener("click", () => {
  log.offset = Math.max(0, log.offset - LOG_PAGE);
  loadLog();
});
$("log-older").addEventListener("click", () => { log.offset += LOG_PAGE; loadLog(); });
loadEndpoints().catch((error) => message(error.message, "error"));
