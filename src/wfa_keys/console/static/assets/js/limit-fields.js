// A key's rate limit and quota as form fields, shared by the Create and the Edit windows:
// "Rate limit" (requests per seconds) and "Quota" (requests per day or month). Both empty:
// none. The server checks the ranges; its BAD_USER_INPUT shows beside the field.

import { showFieldError } from "./access-fields.js";

/** Put a copy of index.html's #limits-template in place of `#${prefix}-limits`. */
function instantiate(prefix) {
  const copy = document.getElementById("limits-template").content.cloneNode(true);
  for (const element of copy.querySelectorAll("[data-ref]")) {
    element.id = `${prefix}-${element.dataset.ref}`;
  }
  for (const element of copy.querySelectorAll("[for], [aria-describedby]")) {
    for (const name of ["for", "aria-describedby"]) {
      const value = element.getAttribute(name);
      if (value) element.setAttribute(name, value.replaceAll("@", `${prefix}-`));
    }
  }
  document.getElementById(`${prefix}-limits`).replaceWith(copy);
}

const whole = (text) => /^\d+$/.test(text.trim());

/** The fields of one form (`prefix` "create" or "edit"). */
export function limitFields(prefix) {
  instantiate(prefix);
  const get = (ref) => document.getElementById(`${prefix}-${ref}`);
  const rateRequests = get("rate-requests");
  const ratePer = get("rate-per");
  const rateError = get("rate-error");
  const quotaRequests = get("quota-requests");
  const quotaPeriod = get("quota-period");
  const quotaError = get("quota-error");

  // extensions.field of a BAD_USER_INPUT error -> [input, its error element]
  const FIELDS = {
    "input.rateLimit.requests": [rateRequests, rateError],
    "input.rateLimit.perSeconds": [ratePer, rateError],
    "input.quota.requests": [quotaRequests, quotaError],
    "input.quota.period": [quotaPeriod, quotaError],
  };

  return {
    clearErrors() {
      for (const [input, element] of Object.values(FIELDS)) showFieldError(input, element, "");
    },

    reset() {
      rateRequests.value = "";
      ratePer.value = "";
      quotaRequests.value = "";
      quotaPeriod.value = "DAY";
      this.clearErrors();
    },

    /** Show the key's current limits. */
    set(key) {
      rateRequests.value = key.rateLimit ? String(key.rateLimit.requests) : "";
      ratePer.value = key.rateLimit ? String(key.rateLimit.perSeconds) : "";
      quotaRequests.value = key.quota ? String(key.quota.requests) : "";
      quotaPeriod.value = key.quota ? key.quota.period : "DAY";
    },

    /**
     * { rateLimit, quota } (each null for none), or null after explaining what is wrong
     * and focusing it.
     */
    read() {
      const result = { rateLimit: null, quota: null };
      let firstBad = null;
      const requests = rateRequests.value.trim();
      const per = ratePer.value.trim();
      if (requests || per) {
        if (!whole(requests) || !whole(per)) {
          showFieldError(whole(requests) ? ratePer : rateRequests, rateError,
            "Enter whole numbers for both the requests and the seconds, or leave both empty.");
          firstBad = whole(requests) ? ratePer : rateRequests;
        } else {
          result.rateLimit = { requests: Number(requests), perSeconds: Number(per) };
        }
      }
      const quota = quotaRequests.value.trim();
      if (quota) {
        if (!whole(quota)) {
          showFieldError(quotaRequests, quotaError, "Enter a whole number of requests, or leave it empty.");
          firstBad ??= quotaRequests;
        } else {
          result.quota = { requests: Number(quota), period: quotaPeriod.value };
        }
      }
      firstBad?.focus();
      return firstBad ? null : result;
    },

    /** Show a BAD_USER_INPUT about a limit beside its field; false when it is not one. */
    explain(field, message) {
      const target = FIELDS[field];
      if (!target) return false;
      showFieldError(target[0], target[1], message);
      target[0].focus();
      return true;
    },
  };
}
