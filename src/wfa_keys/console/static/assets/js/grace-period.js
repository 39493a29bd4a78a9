// "Keep the old secret working for": the grace period of a regenerate, shown inside the
// Yes/No question (index.html, #grace-fields). None is the default, as in the API: the old
// secret stops working when the new one is made.

import { showFieldError } from "./access-fields.js";
import { $ } from "./dom.js";

export const MAX_GRACE_MINUTES = 10080;

const fields = $("grace-fields");
const minutes = $("grace-minutes");
const minutesError = $("grace-minutes-error");

function chosen() {
  return fields.querySelector("input[name=grace]:checked")?.value ?? "0";
}

function sync() {
  const other = chosen() === "other";
  minutes.disabled = !other;
  if (!other) showFieldError(minutes, minutesError, "");
}

export function setUpGracePeriod() {
  fields.addEventListener("change", sync);
}

/** Back to None, ready for the next question; returns the fieldset for confirmAction. */
export function resetGracePeriod() {
  fields.querySelector("input[name=grace][value='0']").checked = true;
  minutes.value = "";
  sync();
  return fields;
}

/** The minutes chosen, or null after explaining (beside Minutes) what is wrong. */
export function readGracePeriod() {
  showFieldError(minutes, minutesError, "");
  const value = chosen();
  if (value !== "other") return Number(value);
  const number = Number(minutes.value);
  if (minutes.value.trim() === "" || !Number.isInteger(number) || number < 0 || number > MAX_GRACE_MINUTES) {
    explainGracePeriod(`Enter a whole number of minutes from 0 to ${MAX_GRACE_MINUTES}.`);
    return null;
  }
  return number;
}

/** Show the server's (or our) message about the grace period beside Minutes. */
export function explainGracePeriod(message) {
  fields.querySelector("#grace-other").checked = true;
  sync();
  showFieldError(minutes, minutesError, message);
  minutes.focus();
}
