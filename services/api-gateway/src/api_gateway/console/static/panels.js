// The site page's panels: the review count, keyword import, configuration.
import { ApiError, api, get } from "./api.js";
import { $, fill, h, say } from "./dom.js";

// How many articles wait for review; the review view (review.js) reads and decides them.
export async function loadReview(siteId) {
  const { total } = await get("/review_queue", { site_id: siteId, limit: 1 });
  $("review-summary").textContent = total === 0 ? "Nothing is waiting for review."
    : `${total} ${total === 1 ? "article waits" : "articles wait"} for review.`;
}

export async function importKeywords(siteId, file) {
  const out = $("import-result");
  try {
    const result = await api("POST", "/keywords/import", {
      params: { site_id: siteId }, text: await file.text(), type: "text/csv",
    });
    fill(out, h("p", { id: "import-summary" },
      `Added ${result.added}, duplicates ${result.duplicates}, errors ${result.invalid}` +
      (result.errors_truncated ? ` (the first ${result.errors.length} are listed).` : ".")),
    result.errors.length ? h("ul", { class: "errors" }, result.errors.map((e) => h("li", {}, e)))
      : null);
    return true;
  } catch (error) {
    fill(out, h("p", { class: "error", role: "alert" }, error.message));
    return false;
  }
}

const FIELDS = [
  ["is_enabled", "Scheduled runs enabled", "checkbox"],
  ["frequency", "Frequency", ["daily", "weekly", "monthly"]],
  ["scheduled_time", "Time (HH:MM)", "text"],
  ["timezone", "Time zone", "text"],
  ...[1, 2, 3, 4, 5, 6].map((n) => [`stage_${n}_batch_size`, `Stage ${n} batch size`, "number"]),
  ["within_stage_delay", "Delay within a stage (s)", "number"],
  ["between_stage_delay", "Delay between stages (s)", "number"],
  ["stage_concurrency", "Concurrency (batches in flight)", "number"],
  ["start_check", "A start needs 1.2 × the", ["pending", "projected"]],
  ["resume_when_funded", "Resume a run paused for credits once they are added", "checkbox"],
];

function field([name, label, kind], value) {
  const id = `cfg-${name}`;
  const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const common = { id, name, "aria-describedby": `${id}-error` };
  let input;
  if (kind === "checkbox") input = h("input", { ...common, type: "checkbox", checked: value });
  else if (Array.isArray(kind)) {
    input = h("select", common, kind.map((o) => h("option", { value: o, selected: o === value }, o)));
  } else {
    input = h("input", { ...common, type: kind === "number" ? "number" : "text",
      inputmode: kind === "number" ? "numeric" : undefined, value });
  }
  return h("div", { class: `field${kind === "checkbox" ? " check" : ""}` },
    h("label", { for: id }, label), input, error);
}

export async function loadConfig(siteId) {
  const config = await get("/config", { site_id: siteId });
  fill($("config-fields"), FIELDS.map((f) => field(f, config[f[0]])),
    h("p", { class: "muted wide" }, `Next scheduled run: ${config.next_run_at || "none"}`));
  return config;
}

export async function saveConfig(siteId) {
  const change = {};
  for (const [name, , kind] of FIELDS) {
    const input = $(`cfg-${name}`);
    $(`cfg-${name}-error`).textContent = "";
    input.removeAttribute("aria-invalid");
    if (kind === "checkbox") change[name] = input.checked;
    else if (kind === "number") change[name] = input.value === "" ? null : Number(input.value);
    else change[name] = input.value;
  }
  try {
    await api("PUT", "/update_config", { params: { site_id: siteId }, json: change });
    say($("config-message"), "Saved.");
    return await loadConfig(siteId);
  } catch (error) {
    const name = error instanceof ApiError && error.field;
    if (name && $(`cfg-${name}`)) {
      $(`cfg-${name}-error`).textContent = error.message;
      $(`cfg-${name}`).setAttribute("aria-invalid", "true");
      $(`cfg-${name}`).focus();
    }
    say($("config-message"), `Not saved: ${error.message}`, "error");
  }
}
