// Keys about to expire, in sight: the banner above the list ("3 keys expire within 7 days",
// with a button that filters them) and the "Expires in 2 days" badge of a row.

import { gql } from "./api.js";
import { $, dateCell, h, say } from "./dom.js";

/** How far ahead a key counts as expiring soon: the banner's and the badges' window. */
export const SOON_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;
const COUNT = `query ExpiringApiKeys($days: Int!) {
  apiKeys(first: 1, status: ACTIVE, expiringWithinDays: $days) { totalCount }
}`;

const exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** "Expires in 2 days" for a key that expires within SOON_DAYS from now, else null. */
export function soonText(expiresAt, now = Date.now()) {
  if (!expiresAt) return null;
  const left = new Date(expiresAt).getTime() - now;
  if (left <= 0 || left > SOON_DAYS * DAY_MS) return null;
  if (left < DAY_MS) return "Expires within a day";
  const days = Math.ceil(left / DAY_MS);
  return `Expires in ${days} day${days === 1 ? "" : "s"}`;
}

/** The Expires cell: the date, or the badge when it is soon (the date on hover and read out). */
export function expiresCell(key) {
  const soon = key.status === "ACTIVE" ? soonText(key.expiresAt) : null;
  if (!soon) return dateCell(key.expiresAt);
  const date = new Date(key.expiresAt);
  return h(
    "time",
    {
      class: "badge soon",
      datetime: date.toISOString(),
      // Within 7 days of its expiry a key gets expiry reminders (webhooks, 7 days and 1 day
      // before): the badge marks it.
      "data-reminder": "expiring",
      title: `${exactFormat.format(date)}. Expiry reminders go to webhooks 7 days and 1 day before.`,
    },
    soon,
    h("span", { class: "visually-hidden" }, `, ${dateFormat.format(date)}`),
  );
}

/**
 * Ask how many enabled keys expire within SOON_DAYS and show or hide the banner; `show`
 * runs when its button is pressed. A failure hides the banner (the list says what failed).
 */
export async function refreshExpiringBanner() {
  const banner = $("keys-expiring-banner");
  try {
    const { apiKeys } = await gql(COUNT, { days: SOON_DAYS });
    const n = apiKeys.totalCount;
    say(
      $("keys-expiring-text"),
      n === 1
        ? `1 key expires within ${SOON_DAYS} days.`
        : `${n} keys expire within ${SOON_DAYS} days.`,
    );
    banner.hidden = n === 0;
  } catch {
    banner.hidden = true;
  }
}

export function setUpExpiringBanner(show) {
  $("keys-expiring-show").addEventListener("click", () => show(SOON_DAYS));
}
