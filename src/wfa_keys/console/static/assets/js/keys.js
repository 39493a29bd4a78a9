// The API Keys page: the searchable list, Load more, and each row's Action cell.
// New columns go in COLUMNS (a header in index.html, a cell function here).

import { describeError, gql } from "./api.js";
import { pagedTable } from "./paged-table.js";
import { $, ICONS, dateCell, h, icon, say } from "./dom.js";
import { confirmAction } from "./confirm-dialog.js";
import { openCreateDialog, setUpCreateDialog } from "./create-dialog.js";
import { showSecret } from "./secret-dialog.js";

const PAGE_SIZE = 25;
const SEARCH_DELAY_MS = 250;
const KEY_FIELDS = "id name enabled status createdAt expiresAt lastUsedAt owner { email }";

const LIST = `query ApiKeys($first: Int, $after: String, $search: String) {
  apiKeys(first: $first, after: $after, search: $search) {
    totalCount pageInfo { hasNextPage endCursor } nodes { ${KEY_FIELDS} }
  }
}`;
const SET_ENABLED = `mutation SetApiKeyEnabled($id: ID!, $enabled: Boolean!) {
  setApiKeyEnabled(id: $id, enabled: $enabled) { ${KEY_FIELDS} }
}`;
const REGENERATE = `mutation RegenerateApiKey($id: ID!) {
  regenerateApiKey(id: $id) { keySecret apiKey { ${KEY_FIELDS} } }
}`;
const DELETE = `mutation DeleteApiKey($id: ID!) { deleteApiKey(id: $id) { id } }`;

const STATUS_TEXT = { ACTIVE: "Active", DISABLED: "Disabled", EXPIRED: "Expired" };

const COLUMNS = [
  ["Name", (key, nameId) => h("span", { id: nameId, class: "key-name" }, key.name)],
  ["Key ID", (key) => h("code", { class: "key-id" }, key.id)],
  ["Status", (key) => h("span", { class: `badge ${key.status.toLowerCase()}` }, STATUS_TEXT[key.status] ?? key.status)],
  ["Created", (key) => dateCell(key.createdAt)],
  ["Expires", (key) => dateCell(key.expiresAt)],
  ["Last Used", (key) => dateCell(key.lastUsedAt)],
  ["Owner", (key) => key.owner.email],
  ["Action", (key, nameId) => actions(key, nameId)],
];

const body = $("keys-body");
const status = $("keys-status");
const error = $("keys-error");
const more = $("keys-more");
const search = $("keys-search");
let searchTimer = null;

function actions(key, nameId) {
  const toggle = h(
    "button",
    {
      type: "button",
      class: "switch",
      role: "switch",
      "aria-checked": String(key.enabled),
      "aria-describedby": nameId,
      "data-focus-key": `${key.id}:enabled`,
    },
    h("span", { class: "knob" }),
    h("span", { class: "visually-hidden" }, "Enabled"),
  );
  toggle.addEventListener("click", () => setEnabled(key, toggle));
  const regenerate = iconButton(key, nameId, "Regenerate", "", askRegenerate);
  const remove = iconButton(key, nameId, "Delete", "danger", askDelete);
  return h("div", { class: "row-actions" }, toggle, regenerate, remove);
}

/** A row's icon button: its name is `label`, its description the key's name. */
function iconButton(key, nameId, label, variant, onClick) {
  const button = h(
    "button",
    {
      type: "button",
      class: `icon-button ${variant}`.trim(),
      "aria-describedby": nameId,
      "data-focus-key": `${key.id}:${label.toLowerCase()}`,
    },
    icon(ICONS[label.toLowerCase()]),
    h("span", { class: "visually-hidden" }, label),
  );
  button.addEventListener("click", () => onClick(key, button));
  return button;
}

function row(key) {
  const nameId = `key-name-${key.id}`;
  return h(
    "tr",
    { role: "row", "aria-labelledby": nameId, "data-key-id": key.id },
    COLUMNS.map(([label, cell]) => h("td", { role: "cell", "data-label": label }, cell(key, nameId))),
  );
}

function replaceRow(key) {
  const old = body.querySelector(`tr[data-key-id="${CSS.escape(key.id)}"]`);
  old?.replaceWith(row(key));
}

async function setEnabled(key, toggle) {
  toggle.disabled = true;
  say(error, "");
  try {
    const { setApiKeyEnabled } = await gql(SET_ENABLED, { id: key.id, enabled: !key.enabled });
    replaceRow(setApiKeyEnabled);
    body.querySelector(`[data-focus-key="${CSS.escape(`${key.id}:enabled`)}"]`)?.focus();
    status.textContent = `${setApiKeyEnabled.name} is ${setApiKeyEnabled.enabled ? "enabled" : "disabled"}.`;
  } catch (problem) {
    toggle.disabled = false;
    say(error, describeError(problem));
    if (problem.code === "NOT_FOUND") await reload();
  }
}

function askRegenerate(key, opener) {
  confirmAction({
    title: "Regenerate API Key",
    text: `Regenerate the Key Secret of “${key.name}”? The current secret stops working at once; the Key ID stays.`,
    opener,
    onYes: async () => {
      try {
        const { regenerateApiKey } = await gql(REGENERATE, { id: key.id });
        replaceRow(regenerateApiKey.apiKey);
        // The API Key window takes focus, and gives it back to the row's Regenerate button.
        return { after: () => showSecret(regenerateApiKey, opener) };
      } catch (problem) {
        if (problem.code === "NOT_FOUND") await reload();
        throw problem;
      }
    },
  });
}

function askDelete(key, opener) {
  confirmAction({
    title: "Delete API Key",
    text: `Delete “${key.name}” (${key.id}) permanently? Calls with it are refused from now on.`,
    opener,
    onYes: async () => {
      try {
        await gql(DELETE, { id: key.id });
      } catch (problem) {
        if (problem.code !== "NOT_FOUND") throw problem;
      }
      await reload();
      status.textContent = `${key.name} was deleted.`;
      return { opener: $("keys-title") };
    },
  });
}

const table = pagedTable({
  body,
  status,
  error,
  more,
  row,
  fetchPage: async (after) => {
    const { apiKeys } = await gql(LIST, {
      first: PAGE_SIZE,
      after,
      search: search.value.trim() || null,
    });
    return apiKeys;
  },
  summary: (shown, total) => {
    if (total > 0) return `Showing ${shown} of ${total} API keys.`;
    return search.value.trim()
      ? "No API key matches this search."
      : "No API keys yet. Click Add More to create one.";
  },
});

/** Load the first page again (after a change, or when the page opens). */
export function reload() {
  return table.reload();
}

export function setUpKeysPage() {
  setUpCreateDialog(() => reload());
  $("add-more").addEventListener("click", (event) => openCreateDialog(event.currentTarget));
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(reload, SEARCH_DELAY_MS);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(searchTimer);
      reload();
    }
  });
}

/** Show the page for `me`: the list for an admin, or why there is none. */
export function showKeysPage(me) {
  const notice = $("keys-notice");
  const admin = me.role === "ADMIN";
  const subscribed = me.organization.hasWorkflowAutomation;
  $("add-more").hidden = !(admin && subscribed);
  $("keys-content").hidden = !(admin && subscribed);
  if (!subscribed) {
    say(notice, `API Management requires a subscription to Workflow Automation. ${me.organization.name} does not have one.`);
  } else if (!admin) {
    say(notice, "Only admins manage API keys. Ask an admin of your organization for a key.");
  } else {
    say(notice, "");
    reload();
  }
}
