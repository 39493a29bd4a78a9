// API Management's summary: the organization's calls of the last 7 days by day and outcome
// (chart and table) and its top keys.

import { describeError, gql } from "./api.js";
import { $, h, say } from "./dom.js";
import { BUCKET_FIELDS, usageChart, usageTable } from "./usage-chart.js";

const ORG_USAGE = `query OrganizationUsage($since: DateTime!) {
  organizationUsage(since: $since, granularity: DAY, top: 5) {
    buckets { ${BUCKET_FIELDS} }
    topKeys { keyId total success apiKey { id name } }
  }
}`;

/** Load and show the last 7 days (today and the 6 days before, UTC). */
export async function showOrganizationUsage() {
  const section = $("org-usage");
  section.hidden = false;
  const start = new Date();
  start.setUTCHours(0, 0, 0, 0);
  const since = new Date(start.getTime() - 6 * 86400 * 1000).toISOString();
  say($("org-usage-error"), "");
  try {
    const { organizationUsage } = await gql(ORG_USAGE, { since });
    const total = organizationUsage.buckets.reduce((sum, bucket) => sum + bucket.total, 0);
    $("org-usage-total").textContent = `${total}`;
    $("org-usage-chart").replaceChildren(
      usageChart(organizationUsage.buckets, { hourly: false }),
      usageTable(organizationUsage.buckets, { hourly: false, caption: "Calls of the organization in the last 7 days, by outcome" }),
    );
    const rows = organizationUsage.topKeys.map((top) =>
      h(
        "tr",
        { "data-key-id": top.keyId },
        h("th", { scope: "row" }, top.apiKey ? top.apiKey.name : h("span", { class: "muted" }, "Deleted key")),
        h("td", {}, h("code", { class: "key-id" }, top.keyId)),
        h("td", {}, String(top.total)),
        h("td", {}, String(top.success)),
      ),
    );
    $("org-usage-top").replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 4 }, "No calls in the last 7 days."))]),
    );
  } catch (error) {
    say($("org-usage-error"), describeError(error));
  }
}
