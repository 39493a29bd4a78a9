// The "Usage" window of one key: its calls by outcome over the last 24 hours, 7 days or
// 30 days, as a chart and as a table with the same numbers.

import { describeError, gql } from "./api.js";
import { $, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";
import { BUCKET_FIELDS, usageChart, usageTable } from "./usage-chart.js";

const USAGE = `query KeyUsage($id: ID!, $since: DateTime!, $granularity: UsageGranularity) {
  apiKey(id: $id) { id name usage(since: $since, granularity: $granularity) { ${BUCKET_FIELDS} } }
}`;
// Each range: how far back, and the width of its buckets.
const RANGES = {
  day: { hours: 23, granularity: "HOUR", text: "the last 24 hours" },
  week: { hours: 24 * 6, granularity: "DAY", text: "the last 7 days" },
  month: { hours: 24 * 29, granularity: "DAY", text: "the last 30 days" },
};

const dialog = $("usage-dialog");
let current = null; // the key shown
let request = 0;

function since(range) {
  const start = new Date();
  start.setUTCMinutes(0, 0, 0);
  if (range.granularity === "DAY") start.setUTCHours(0);
  return new Date(start.getTime() - range.hours * 3600 * 1000).toISOString();
}

async function show(name) {
  const range = RANGES[name];
  for (const button of dialog.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === name));
  }
  const mine = ++request;
  say($("usage-error"), "");
  $("usage-status").textContent = `Loading the calls of ${range.text}…`;
  try {
    const { apiKey } = await gql(USAGE, { id: current.id, since: since(range), granularity: range.granularity });
    if (mine !== request) return;
    if (!apiKey) {
      say($("usage-error"), "This API key no longer exists.");
      return;
    }
    const hourly = range.granularity === "HOUR";
    const total = apiKey.usage.reduce((sum, bucket) => sum + bucket.total, 0);
    $("usage-chart").replaceChildren(usageChart(apiKey.usage, { hourly }));
    $("usage-table").replaceChildren(
      usageTable(apiKey.usage, { hourly, caption: `Calls of ${apiKey.name} in ${range.text}, by outcome` }),
    );
    $("usage-status").textContent = `${total} calls in ${range.text}.`;
  } catch (error) {
    if (mine === request) {
      $("usage-status").textContent = "";
      say($("usage-error"), describeError(error));
    }
  }
}

export function setUpUsageDialog() {
  setUpModal(dialog, () => {
    current = null;
    $("usage-chart").replaceChildren();
    $("usage-table").replaceChildren();
  });
  for (const button of dialog.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => show(button.dataset.range));
  }
  $("usage-close").addEventListener("click", () => closeModal(dialog));
}

/** Open the usage of `key` (an ApiKey as listed), the last 24 hours first. */
export function openUsageDialog(key, opener) {
  current = key;
  $("usage-title").textContent = `Usage of ${key.name}`;
  openModal(dialog, { opener, focus: dialog.querySelector('[data-range="day"]') });
  show("day");
}
