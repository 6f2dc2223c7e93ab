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

// One input per field of update_config, made from the server's vocabulary (kind, bounds,
// choices): a list becomes a select, a number an input with its bounds; a field with a hint
// (the AI mode) shows that line under it.
function field(f, value) {
  const id = `cfg-${f.name}`;
  const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const hint = f.hint ? h("span", { class: "field-hint muted", id: `${id}-hint` }, f.hint) : null;
  const described = hint ? `${id}-hint ${id}-error` : `${id}-error`;
  const common = { id, name: f.name, "aria-describedby": described };
  let input;
  if (f.kind === "boolean") input = h("input", { ...common, type: "checkbox", checked: value });
  else if (f.choices) {
    input = h("select", common,
      f.choices.map((o) => h("option", { value: o, selected: o === value }, o)));
  } else if (f.kind === "integer") {
    input = h("input", { ...common, type: "number", inputmode: "numeric", value,
      min: f.minimum, max: f.maximum });
  } else input = h("input", { ...common, type: "text", value, pattern: f.pattern });
  return h("div", { class: `field${f.kind === "boolean" ? " check" : ""}` },
    h("label", { for: id }, f.label), input, hint, error);
}

export async function loadConfig(siteId, vocabulary) {
  const config = await get("/config", { site_id: siteId });
  fill($("config-fields"), vocabulary.config_fields.map((f) => field(f, config[f.name])),
    h("p", { class: "muted wide" }, `Next scheduled run: ${config.next_run_at || "none"}`));
  return config;
}

export async function saveConfig(siteId, vocabulary) {
  const change = {};
  for (const { name, kind } of vocabulary.config_fields) {
    const input = $(`cfg-${name}`);
    $(`cfg-${name}-error`).textContent = "";
    input.removeAttribute("aria-invalid");
    if (kind === "boolean") change[name] = input.checked;
    else if (kind === "integer") change[name] = input.value === "" ? null : Number(input.value);
    else change[name] = input.value;
  }
  try {
    await api("PUT", "/update_config", { params: { site_id: siteId }, json: change });
    say($("config-message"), "Saved.");
    return await loadConfig(siteId, vocabulary);
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
