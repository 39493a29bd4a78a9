// The Settings view: the organization's "Disable keys unused for (days)" (null: never).

import { describeError, gql, inputMessage } from "./api.js";
import { showFieldError } from "./access-fields.js";
import { $, say } from "./dom.js";
import { setUpWebhooks, showWebhooks } from "./webhooks.js";

const READ = "query OrganizationSettings { me { organization { keyInactivityDays } } }";
const SAVE = `mutation SetOrganizationSettings($input: OrganizationSettingsInput!) {
  setOrganizationSettings(input: $input) { keyInactivityDays }
}`;
const MAX_DAYS = 3650;

const form = $("settings-form");
const days = $("settings-inactivity");
const daysError = $("settings-inactivity-error");
const error = $("settings-error");
const saved = $("settings-status");
const save = $("settings-save");

function clear() {
  showFieldError(days, daysError, "");
  say(error, "");
  saved.textContent = "";
}

const daysInWords = (n) => `${n} day${n === 1 ? "" : "s"}`;

function show(value) {
  days.value = value === null || value === undefined ? "" : String(value);
}

/** The input's days: a number, null for never, or undefined after explaining the problem. */
function readDays() {
  const text = days.value.trim();
  if (text === "") return null;
  const number = Number(text);
  if (!Number.isInteger(number) || number < 1 || number > MAX_DAYS) {
    showFieldError(days, daysError, `Enter a whole number of days from 1 to ${MAX_DAYS}, or leave it empty for never.`);
    days.focus();
    return undefined;
  }
  return number;
}

async function submit(event) {
  event.preventDefault();
  clear();
  const keyInactivityDays = readDays();
  if (keyInactivityDays === undefined) return;
  save.disabled = true;
  try {
    const { setOrganizationSettings } = await gql(SAVE, { input: { keyInactivityDays } });
    show(setOrganizationSettings.keyInactivityDays);
    saved.textContent =
      setOrganizationSettings.keyInactivityDays === null
        ? "Saved: keys are never disabled for inactivity."
        : `Saved: keys unused for ${daysInWords(setOrganizationSettings.keyInactivityDays)} are disabled.`;
  } catch (problem) {
    if (problem.code === "BAD_USER_INPUT" && problem.field?.endsWith("keyInactivityDays")) {
      showFieldError(days, daysError, inputMessage(problem));
      days.focus();
    } else {
      say(error, describeError(problem));
    }
  } finally {
    save.disabled = false;
  }
}

export function setUpSettingsPage() {
  form.addEventListener("submit", submit);
  setUpWebhooks();
}

/** Show the view for `me`: the current value for an admin, or why there is none. */
export async function showSettingsPage(me) {
  const notice = $("settings-notice");
  const subscribed = me.organization.hasWorkflowAutomation;
  const allowed = me.role === "ADMIN" && subscribed;
  form.hidden = !allowed;
  clear();
  showWebhooks(me);
  if (!subscribed) {
    say(notice, "API Management requires a subscription to Workflow Automation.");
    return;
  }
  if (!allowed) {
    say(notice, "Only admins change the organization's settings.");
    return;
  }
  say(notice, "");
  // Until the current value arrives, nothing can be typed that it would then overwrite.
  save.disabled = true;
  days.disabled = true;
  try {
    const { me: current } = await gql(READ);
    show(current?.organization.keyInactivityDays ?? null);
    days.disabled = false;
    save.disabled = false;
  } catch (problem) {
    say(error, describeError(problem));
  }
}
