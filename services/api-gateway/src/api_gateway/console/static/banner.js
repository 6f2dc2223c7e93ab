// A banner at the top of every page of the console while an endpoint of the account is
// disabled (by a 410 answer, 5 days of failures, or by hand), with the reason for each.
import { get } from "./api.js";
import { $, fill, h, when } from "./dom.js";

const LISTED = 5;

export async function showDisabledWebhooks() {
  const banner = $("webhook-banner");
  const page = await get("/webhooks", { enabled: false, limit: LISTED }).catch(() => null);
  if (!banner || !page) return;
  banner.hidden = page.total === 0;
  fill(banner, page.total === 0 ? [] : [
    h("strong", {}, page.total === 1 ? "A webhook endpoint is disabled."
      : `${page.total} webhook endpoints are disabled.`),
    h("ul", {}, page.items.map((e) => h("li", {},
      `${e.url}: ${e.disabled_reason || "disabled"} (${when(e.disabled_at)})`))),
    page.total > LISTED ? h("p", {}, `and ${page.total - LISTED} more`) : null,
    h("a", { href: "/webhooks" }, "Open webhooks to enable or delete them"),
  ]);
}
