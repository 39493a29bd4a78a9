// Usage by outcome as a stacked bar chart, drawn here as inline SVG (no library, no CDN),
// with the same numbers in a table: the chart is a picture for the eye (aria-hidden), the
// table is what screen readers and keyboards use.

import { h } from "./dom.js";

/** The outcomes of a UsageBucket, in the order they are stacked, with their names. */
export const OUTCOMES = [
  ["success", "Success"],
  ["rateLimited", "Rate limited"],
  ["quotaExceeded", "Quota exceeded"],
  ["insufficientScope", "Insufficient scope"],
  ["ipNotAllowed", "IP not allowed"],
  ["disabled", "Disabled"],
  ["expired", "Expired"],
  ["invalidSecret", "Invalid secret"],
];
export const BUCKET_FIELDS = `start total ${OUTCOMES.map(([field]) => field).join(" ")}`;

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 200;
const PAD = { left: 44, right: 8, top: 8, bottom: 22 };

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

const hourFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric" });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** A bucket's start as text: the hour for hourly buckets, the date for daily ones. */
export function bucketLabel(iso, hourly) {
  return (hourly ? hourFormat : dayFormat).format(new Date(iso));
}

/** The chart of `buckets` (UsageBucket objects), one stacked bar per bucket. */
export function usageChart(buckets, { hourly }) {
  const most = Math.max(1, ...buckets.map((bucket) => bucket.total));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / Math.max(1, buckets.length);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "usage-chart",
    "aria-hidden": "true",
    focusable: "false",
  });
  chart.append(
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left - 6, y: PAD.top + 10, class: "tick", "text-anchor": "end" }, String(most)),
    svg("text", { x: PAD.left - 6, y: HEIGHT - PAD.bottom, class: "tick", "text-anchor": "end" }, "0"),
  );
  buckets.forEach((bucket, index) => {
    let top = HEIGHT - PAD.bottom;
    const x = PAD.left + index * step + step * 0.1;
    const group = svg("g", { "data-start": bucket.start, "data-total": bucket.total });
    for (const [field] of OUTCOMES) {
      const count = bucket[field];
      if (!count) continue;
      const height = (count / most) * plotHeight;
      top -= height;
      group.append(
        svg("rect", {
          x: x.toFixed(2),
          y: top.toFixed(2),
          width: Math.max(1, step * 0.8).toFixed(2),
          height: height.toFixed(2),
          class: `bar ${field}`,
          "data-outcome": field,
          "data-count": count,
        }),
      );
    }
    chart.append(group);
  });
  // A few labels along the bottom: the first, the middle and the last bucket.
  const marks = new Set([0, Math.floor((buckets.length - 1) / 2), buckets.length - 1]);
  for (const index of marks) {
    if (!buckets[index]) continue;
    chart.append(
      svg(
        "text",
        { x: (PAD.left + (index + 0.5) * step).toFixed(2), y: HEIGHT - 6, class: "tick", "text-anchor": "middle" },
        bucketLabel(buckets[index].start, hourly),
      ),
    );
  }
  const legend = h(
    "ul",
    { class: "legend", "aria-hidden": "true" },
    OUTCOMES.map(([field, label]) => h("li", {}, h("span", { class: `swatch ${field}` }), label)),
  );
  return h("div", { class: "chart" }, chart, legend);
}

/** The same numbers as a table: a row per bucket with a call in it, and the totals. */
export function usageTable(buckets, { hourly, caption }) {
  const used = buckets.filter((bucket) => bucket.total > 0);
  const totals = Object.fromEntries(OUTCOMES.map(([field]) => [field, 0]));
  let total = 0;
  for (const bucket of buckets) {
    total += bucket.total;
    for (const [field] of OUTCOMES) totals[field] += bucket[field];
  }
  const header = h(
    "tr",
    {},
    h("th", { scope: "col" }, hourly ? "Hour" : "Day"),
    h("th", { scope: "col" }, "Total"),
    OUTCOMES.map(([, label]) => h("th", { scope: "col" }, label)),
  );
  const rows = used.map((bucket) =>
    h(
      "tr",
      { "data-start": bucket.start },
      h("th", { scope: "row" }, h("time", { datetime: bucket.start }, bucketLabel(bucket.start, hourly))),
      h("td", {}, String(bucket.total)),
      OUTCOMES.map(([field]) => h("td", { "data-outcome": field }, String(bucket[field]))),
    ),
  );
  const footer = h(
    "tr",
    { class: "totals" },
    h("th", { scope: "row" }, "All"),
    h("td", { "data-total": "" }, String(total)),
    OUTCOMES.map(([field]) => h("td", { "data-outcome": field }, String(totals[field]))),
  );
  return h(
    "table",
    { class: "grid usage-table" },
    h("caption", {}, caption),
    h("thead", {}, header),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: OUTCOMES.length + 2 }, "No calls."))]),
    h("tfoot", {}, footer),
  );
}
