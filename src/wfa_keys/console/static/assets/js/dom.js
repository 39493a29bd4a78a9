// Small DOM helpers. Text always goes in through textContent, never as HTML.

export const $ = (id) => document.getElementById(id);

/** Create `<tag>` with attributes (`class`, `aria-*`, `data-*`, ...) and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Show `message` in `element`, or hide the element when `message` is empty. */
export function say(element, message) {
  element.textContent = message ?? "";
  element.hidden = !message;
}

/**
 * `text` on one line, cut with an ellipsis when its column is narrow: the whole text stays
 * in the page for screen readers and shows on hover (title).
 */
export function truncated(text, attributes = {}) {
  const cls = attributes.class ? `truncate ${attributes.class}` : "truncate";
  return h("span", { ...attributes, class: cls, title: text }, text);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const exactFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "full",
  timeStyle: "long",
});

/** A `<time>`: the date in the browser's locale, the exact time on hover; "Never" if null. */
export function dateCell(iso, never = "Never") {
  if (!iso) return h("span", { class: "muted" }, never);
  const date = new Date(iso);
  return h(
    "time",
    { datetime: date.toISOString(), title: exactFormat.format(date) },
    dateFormat.format(date),
  );
}

const momentFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A date and time in the browser's locale, as text ("Dec 1, 2026, 3:04 PM"). */
export function formatMoment(iso) {
  return momentFormat.format(new Date(iso));
}

/** A `<time>` with the date and the time of day (for moments within days, like a grace end). */
export function momentCell(iso) {
  const date = new Date(iso);
  return h("time", { datetime: date.toISOString(), title: exactFormat.format(date) }, momentFormat.format(date));
}

/** An SVG icon from a path, hidden from assistive technology (the button has a name). */
export function icon(path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon");
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("d", path);
  svg.append(shape);
  return svg;
}

export const ICONS = {
  regenerate: "M17.65 6.35A7.96 7.96 0 0 0 12 4a8 8 0 1 0 7.73 10h-2.08A6 6 0 1 1 12 6c1.66 0 3.14.69 4.22 1.78L13 11h7V4l-2.35 2.35z",
  edit: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  delete: "M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z",
};
