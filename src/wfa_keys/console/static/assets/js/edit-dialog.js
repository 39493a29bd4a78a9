// The "Edit API Key" window: Name, Scopes, Allowed networks, Save, Cancel.
// Only what changed is sent (`updateApiKey` leaves absent fields as they are), so saving an
// unchanged key asks nothing of the server and records no audit event.

import { describeError, gql, inputMessage } from "./api.js";
import { accessFields, showFieldError } from "./access-fields.js";
import { limitFields } from "./limit-fields.js";
import { $, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";

const dialog = $("edit-dialog");
const form = $("edit-form");
const name = $("edit-name");
const nameError = $("edit-name-error");
const save = $("edit-save");
const access = accessFields("edit");
const limits = limitFields("edit");

let editing = null; // { key, onSaved }
let fields = ""; // the key fields the list shows, asked back from the mutation

const sameSet = (a, b) => a.length === b.length && a.every((value) => b.includes(value));

function clearErrors() {
  showFieldError(name, nameError, "");
  access.clearErrors();
  limits.clearErrors();
  say($("edit-error"), "");
}

/** The changed fields of UpdateApiKeyInput, or null after explaining what is wrong. */
function readChanges(key) {
  const changes = {};
  const newName = name.value.trim();
  if (!newName) {
    showFieldError(name, nameError, "Enter a name for the key.");
    name.focus();
    return null;
  }
  if (newName !== key.name) changes.name = newName;
  const scopes = access.scopes();
  if (!sameSet(scopes, key.scopes)) changes.scopes = scopes;
  const cidrs = access.cidrs();
  if (!sameSet(cidrs, key.allowedCidrs)) changes.allowedCidrs = cidrs;
  const chosen = limits.read();
  if (!chosen) return null;
  // null removes a limit; an unchanged one is left out (absent: unchanged).
  if (JSON.stringify(chosen.rateLimit) !== JSON.stringify(key.rateLimit ?? null)) {
    changes.rateLimit = chosen.rateLimit;
  }
  const quota = key.quota ? { requests: key.quota.requests, period: key.quota.period } : null;
  if (JSON.stringify(chosen.quota) !== JSON.stringify(quota)) changes.quota = chosen.quota;
  return changes;
}

async function submit(event) {
  event.preventDefault();
  if (!editing) return;
  clearErrors();
  const { key, onSaved } = editing;
  const changes = readChanges(key);
  if (!changes) return;
  if (Object.keys(changes).length === 0) {
    closeModal(dialog);
    return;
  }
  save.disabled = true;
  try {
    const { updateApiKey } = await gql(
      `mutation UpdateApiKey($id: ID!, $input: UpdateApiKeyInput!) {
        updateApiKey(id: $id, input: $input) { ${fields} }
      }`,
      { id: key.id, input: changes },
    );
    closeModal(dialog, { opener: null });
    onSaved(updateApiKey);
  } catch (error) {
    const field = error.field?.replace(/^input\./, "");
    if (error.code === "BAD_USER_INPUT" && field === "name") {
      showFieldError(name, nameError, inputMessage(error));
      name.focus();
    } else if (error.code === "BAD_USER_INPUT" && access.explain(error.field, inputMessage(error))) {
      // shown beside Scopes or Allowed networks
    } else if (error.code === "BAD_USER_INPUT" && limits.explain(error.field, error.message)) {
      // shown beside Rate limit or Quota
    } else if (dialog.open) {
      say($("edit-error"), describeError(error));
      if (error.code === "NOT_FOUND") editing.onGone?.();
    }
  } finally {
    save.disabled = false;
  }
}

/** `keyFields`: the selection of ApiKey the list shows (the mutation answers with it). */
export function setUpEditDialog(keyFields) {
  fields = keyFields;
  setUpModal(dialog, () => {
    editing = null;
    form.reset();
    access.reset();
    limits.reset();
    clearErrors();
  });
  $("edit-cancel").addEventListener("click", () => closeModal(dialog));
  form.addEventListener("submit", submit);
}

/**
 * Edit `key` (an ApiKey as listed); `onSaved(updatedKey)` runs after a save and takes focus
 * itself; `onGone()` when the key no longer exists.
 */
export async function openEditDialog(key, opener, { onSaved, onGone }) {
  clearErrors();
  editing = { key, onSaved, onGone };
  $("edit-key-id").textContent = key.id;
  name.value = key.name;
  access.setCidrs(key.allowedCidrs);
  limits.set(key);
  save.disabled = true;
  openModal(dialog, { opener, focus: name });
  try {
    await access.render(key.scopes);
    save.disabled = false;
  } catch (error) {
    if (dialog.open) say($("edit-error"), describeError(error));
  }
}
