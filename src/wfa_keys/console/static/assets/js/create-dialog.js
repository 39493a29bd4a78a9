// The "Create API Key" window: Name, Expiration Time, Lifetime (days), Scopes, Allowed
// networks, Submit, Cancel. New fields go here: add the input to index.html, read it in
// `readInput`, map its BAD_USER_INPUT field in FIELD_ERRORS.

import { describeError, gql, inputMessage } from "./api.js";
import { accessFields, showFieldError } from "./access-fields.js";
import { limitFields } from "./limit-fields.js";
import { $, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";
import { showSecret } from "./secret-dialog.js";

const CREATE = `mutation CreateApiKey($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { keySecret apiKey { id name } }
}`;

const dialog = $("create-dialog");
const form = $("create-form");
const name = $("create-name");
const expires = $("create-expires");
const lifetime = $("create-lifetime");
const submit = $("create-submit");
const access = accessFields("create");
const limits = limitFields("create");

// extensions.field of a BAD_USER_INPUT error -> [input, its error element]
const FIELD_ERRORS = {
  "input.name": [name, $("create-name-error")],
  "input.lifetimeDays": [lifetime, $("create-lifetime-error")],
};

let onCreated = null;

const MAX_DAYS = 3650;

function setExpires(on) {
  expires.setAttribute("aria-checked", String(on));
  $("create-expires-hint").textContent = on
    ? "On: the key stops working after the lifetime below."
    : "Off: the key never expires.";
  lifetime.disabled = !on;
  if (on && !lifetime.value) lifetime.value = "90";
  if (!on) showFieldError(lifetime, $("create-lifetime-error"), "");
}

function clearErrors() {
  for (const [input, element] of Object.values(FIELD_ERRORS)) showFieldError(input, element, "");
  access.clearErrors();
  limits.clearErrors();
  say($("create-error"), "");
}

/** The mutation's input, or null after explaining what is wrong. */
function readInput() {
  const input = {
    name: name.value.trim(),
    lifetimeDays: null,
    scopes: access.scopes(),
    allowedCidrs: access.cidrs(),
  };
  let firstBad = null;
  if (!input.name) {
    showFieldError(name, $("create-name-error"), "Enter a name for the key.");
    firstBad ??= name;
  }
  if (expires.getAttribute("aria-checked") === "true") {
    const days = Number(lifetime.value);
    if (lifetime.value.trim() === "" || !Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
      showFieldError(lifetime, $("create-lifetime-error"), `Enter a whole number of days from 1 to ${MAX_DAYS}.`);
      firstBad ??= lifetime;
    } else {
      input.lifetimeDays = days;
    }
  }
  firstBad?.focus();
  if (firstBad) return null;
  const chosen = limits.read();
  return chosen ? { ...input, ...chosen } : null;
}

async function create(event) {
  event.preventDefault();
  clearErrors();
  const input = readInput();
  if (!input) return;
  submit.disabled = true;
  try {
    const { createApiKey } = await gql(CREATE, { input });
    const opener = dialog.opener;
    closeModal(dialog, { opener: null });
    await onCreated?.(createApiKey);
    showSecret(createApiKey, opener);
  } catch (error) {
    const target = FIELD_ERRORS[error.field];
    if (error.code === "BAD_USER_INPUT" && target) {
      showFieldError(target[0], target[1], inputMessage(error));
      target[0].focus();
    } else if (error.code === "BAD_USER_INPUT" && access.explain(error.field, inputMessage(error))) {
      // shown beside Scopes or Allowed networks
    } else if (error.code === "BAD_USER_INPUT" && limits.explain(error.field, error.message)) {
      // shown beside Rate limit or Quota
    } else if (dialog.open) {
      say($("create-error"), describeError(error));
    }
  } finally {
    submit.disabled = false;
  }
}

export function setUpCreateDialog(created) {
  onCreated = created;
  setUpModal(dialog, () => {
    form.reset();
    setExpires(false);
    access.reset();
    limits.reset();
    clearErrors();
  });
  expires.addEventListener("click", () =>
    setExpires(expires.getAttribute("aria-checked") !== "true"),
  );
  $("create-cancel").addEventListener("click", () => closeModal(dialog));
  form.addEventListener("submit", create);
}

export async function openCreateDialog(opener) {
  say($("create-error"), "");
  submit.disabled = true;
  openModal(dialog, { opener, focus: name });
  try {
    await access.render(); // the default scopes ticked, as the API grants them
    submit.disabled = false;
  } catch (error) {
    if (dialog.open) say($("create-error"), describeError(error));
  }
}
