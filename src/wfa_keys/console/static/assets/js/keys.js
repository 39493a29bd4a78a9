// The API Keys page: the list with its filters (Search, Status, Expiring within), Load more,
// and each row's Action cell. New columns go in COLUMNS (a header in index.html, a cell
// function here). On a phone each row is a card: name, status, Key ID and actions, the rest
// behind its Details button (console.css).

import { ApiError, describeError, gql, inputMessage } from "./api.js";
import { knownScopes, showFieldError } from "./access-fields.js";
import { pagedTable } from "./paged-table.js";
import { $, ICONS, dateCell, h, icon, momentCell, say, truncated } from "./dom.js";
import { expiresCell, refreshExpiringBanner, setUpExpiringBanner } from "./expiring.js";
import { confirmAction } from "./confirm-dialog.js";
import { openCreateDialog, setUpCreateDialog } from "./create-dialog.js";
import { openEditDialog, setUpEditDialog } from "./edit-dialog.js";
import {
  explainGracePeriod,
  readGracePeriod,
  resetGracePeriod,
  setUpGracePeriod,
} from "./grace-period.js";
import { showSecret } from "./secret-dialog.js";
import { showOrganizationUsage } from "./org-usage.js";
import { openUsageDialog, setUpUsageDialog } from "./usage-dialog.js";

const PAGE_SIZE = 25;
const SEARCH_DELAY_MS = 250;
const KEY_FIELDS = `id name enabled status createdAt expiresAt lastUsedAt lastUsedIp
  scopes allowedCidrs previousSecretExpiresAt owner { email }
  rateLimit { requests perSeconds } quota { requests period used resetsAt }`;

const LIST = `query ApiKeys($first: Int, $after: String, $search: String, $status: ApiKeyStatus,
    $expiringWithinDays: Int) {
  apiKeys(first: $first, after: $after, search: $search, status: $status,
      expiringWithinDays: $expiringWithinDays) {
    totalCount pageInfo { hasNextPage endCursor } nodes { ${KEY_FIELDS} }
  }
}`;
const SET_ENABLED = `mutation SetApiKeyEnabled($id: ID!, $enabled: Boolean!) {
  setApiKeyEnabled(id: $id, enabled: $enabled) { ${KEY_FIELDS} }
}`;
const REGENERATE = `mutation RegenerateApiKey($id: ID!, $gracePeriodMinutes: Int!) {
  regenerateApiKey(id: $id, gracePeriodMinutes: $gracePeriodMinutes) {
    keySecret apiKey { ${KEY_FIELDS} }
  }
}`;
const REVOKE_PREVIOUS = `mutation RevokePreviousSecret($id: ID!) {
  revokePreviousSecret(id: $id) { ${KEY_FIELDS} }
}`;
const DELETE = `mutation DeleteApiKey($id: ID!) { deleteApiKey(id: $id) { id } }`;

const STATUS_TEXT = { ACTIVE: "Active", DISABLED: "Disabled", EXPIRED: "Expired" };

const COLUMNS = [
  ["Name", (key, nameId) => truncated(key.name, { id: nameId, class: "key-name" })],
  ["Key ID", (key) => h("code", { class: "key-id" }, key.id)],
  ["Status", (key, nameId) => statusCell(key, nameId)],
  ["Created", (key) => dateCell(key.createdAt)],
  ["Expires", (key) => expiresCell(key)],
  ["Last Used", (key) => lastUsedCell(key)],
  ["Scopes", (key) => accessCell(key)],
  ["Owner", (key) => truncated(key.owner.email, { class: "owner" })],
  ["Usage", (key, nameId) => usageCell(key, nameId)],
  ["Action", (key, nameId) => actions(key, nameId)],
];

const body = $("keys-body");
const status = $("keys-status");
const error = $("keys-error");
const more = $("keys-more");
const search = $("keys-search");
const statusFilter = $("keys-status-filter");
const expiring = $("keys-expiring");
const expiringError = $("keys-expiring-error");
const MAX_DAYS = 3650;
let searchTimer = null;

/** Badge; during a grace period, until when the old secret works and a way to end it now. */
function statusCell(key, nameId) {
  const badge = h("span", { class: `badge ${key.status.toLowerCase()}` }, STATUS_TEXT[key.status] ?? key.status);
  if (!key.previousSecretExpiresAt) return badge;
  const revoke = h(
    "button",
    {
      type: "button",
      class: "link-button",
      "aria-describedby": nameId,
      "data-focus-key": `${key.id}:revoke-old`,
    },
    "Revoke old secret",
  );
  revoke.addEventListener("click", () => askRevokePrevious(key, revoke));
  return h(
    "div",
    { class: "stack" },
    badge,
    h("span", { class: "grace-note" }, "Old secret valid until ", momentCell(key.previousSecretExpiresAt)),
    revoke,
  );
}

/** When, and from which address (a small second line), the key was last used. */
function lastUsedCell(key) {
  const when = dateCell(key.lastUsedAt);
  if (!key.lastUsedIp) return when;
  return h("span", { class: "stack" }, when, truncated(`from ${key.lastUsedIp}`, { class: "muted small" }));
}

/** The scopes on one line, and the networks when the key is limited to some. */
function accessCell(key) {
  const scopes = key.scopes.length ? key.scopes.join(", ") : "None (whoami only)";
  const networks = key.allowedCidrs.length ? `Only from ${key.allowedCidrs.join(", ")}` : null;
  return h(
    "span",
    { class: "stack" },
    truncated(scopes, { class: key.scopes.length ? "scopes-text" : "scopes-text muted" }),
    networks ? truncated(networks, { class: "muted small" }) : null,
  );
}

const PERIOD_TEXT = { DAY: "today", MONTH: "this month" };

/** The quota used as a bar (where there is a quota), the rate limit, and Usage. */
function usageCell(key, nameId) {
  const parts = [];
  if (key.quota) {
    const { used, requests, period } = key.quota;
    parts.push(
      h("meter", {
        class: "quota-bar",
        min: 0,
        max: requests,
        value: Math.min(used, requests),
        high: Math.ceil(requests * 0.9),
        "aria-label": "Quota used",
        "aria-describedby": nameId,
      }),
      h("span", { class: "muted small quota-text" }, `${used} of ${requests} ${PERIOD_TEXT[period] ?? ""}`.trim()),
    );
  }
  if (key.rateLimit) {
    parts.push(
      h("span", { class: "muted small" }, `At most ${key.rateLimit.requests} per ${key.rateLimit.perSeconds} s`),
    );
  }
  const open = h(
    "button",
    { type: "button", class: "link-button", "aria-describedby": nameId, "data-focus-key": `${key.id}:usage` },
    "Usage",
  );
  open.addEventListener("click", () => openUsageDialog(key, open));
  parts.push(open);
  return h("div", { class: "stack" }, parts);
}

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
  const edit = iconButton(key, nameId, "Edit", "", startEdit);
  const regenerate = iconButton(key, nameId, "Regenerate", "", askRegenerate);
  const remove = iconButton(key, nameId, "Delete", "danger", askDelete);
  // Shown on narrow screens only, where a row is a card with its details folded away.
  const details = h(
    "button",
    {
      type: "button",
      class: "button details-toggle",
      "aria-expanded": "false",
      "aria-describedby": nameId,
      "data-focus-key": `${key.id}:details`,
    },
    "Details",
  );
  details.addEventListener("click", () => {
    const open = details.getAttribute("aria-expanded") !== "true";
    details.setAttribute("aria-expanded", String(open));
    details.closest("tr")?.classList.toggle("open", open);
  });
  return h("div", { class: "row-actions" }, toggle, edit, regenerate, remove, details);
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

const rowOf = (key) => body.querySelector(`tr[data-key-id="${CSS.escape(key.id)}"]`);
const errorRowOf = (key) => body.querySelector(`tr[data-error-for="${CSS.escape(key.id)}"]`);

function replaceRow(key) {
  errorRowOf(key)?.remove();
  const old = rowOf(key);
  const open = old?.classList.contains("open");
  const fresh = row(key);
  old?.replaceWith(fresh);
  if (open) fresh.querySelector(".details-toggle")?.click();
}

/** Say what went wrong with a row's action right under the row, announced, kept in view. */
function showRowError(key, message) {
  errorRowOf(key)?.remove();
  const target = rowOf(key);
  if (!target) {
    say(error, message);
    return;
  }
  const alert = h("div", { class: "error row-error-text", role: "alert" }, message);
  const line = h(
    "tr",
    { class: "row-error", role: "row", "data-error-for": key.id },
    h("td", { role: "cell", colspan: String(COLUMNS.length) }, alert),
  );
  target.after(line);
  line.scrollIntoView({ block: "nearest" });
}

/** The row's control named by `what` ("edit", "regenerate", ...), after a replaceRow. */
function rowControl(key, what) {
  return body.querySelector(`[data-focus-key="${CSS.escape(`${key.id}:${what}`)}"]`);
}

function startEdit(key, opener) {
  openEditDialog(key, opener, {
    onSaved: (saved) => {
      replaceRow(saved);
      status.textContent = `${saved.name} is saved.`;
      rowControl(saved, "edit")?.focus();
    },
    onGone: () => reload(),
  });
}

async function setEnabled(key, toggle) {
  toggle.disabled = true;
  say(error, "");
  errorRowOf(key)?.remove();
  try {
    const { setApiKeyEnabled } = await gql(SET_ENABLED, { id: key.id, enabled: !key.enabled });
    replaceRow(setApiKeyEnabled);
    rowControl(key, "enabled")?.focus();
    status.textContent = `${setApiKeyEnabled.name} is ${setApiKeyEnabled.enabled ? "enabled" : "disabled"}.`;
    refreshExpiringBanner();
  } catch (problem) {
    toggle.disabled = false;
    if (problem.code === "NOT_FOUND") {
      await reload();
      say(error, describeError(problem));
    } else {
      showRowError(key, `${key.enabled ? "Disabling" : "Enabling"} “${key.name}” failed: ${describeError(problem)}`);
      toggle.focus();
    }
  }
}

function askRegenerate(key, opener) {
  confirmAction({
    title: "Regenerate API Key",
    text: `Regenerate the Key Secret of “${key.name}”? The Key ID stays; choose how long the current secret keeps working.`,
    opener,
    extra: resetGracePeriod(),
    onYes: async () => {
      const gracePeriodMinutes = readGracePeriod();
      if (gracePeriodMinutes === null) return { stay: true };
      try {
        const { regenerateApiKey } = await gql(REGENERATE, { id: key.id, gracePeriodMinutes });
        replaceRow(regenerateApiKey.apiKey);
        // The API Key window takes focus, and gives it back to the row's Regenerate button.
        return { after: () => showSecret(regenerateApiKey, opener) };
      } catch (problem) {
        if (problem.code === "NOT_FOUND") await reload();
        if (problem instanceof ApiError && problem.field === "gracePeriodMinutes") {
          explainGracePeriod(inputMessage(problem));
          return { stay: true };
        }
        throw problem;
      }
    },
  });
}

function askRevokePrevious(key, opener) {
  confirmAction({
    title: "Revoke Old Secret",
    danger: true,
    text: `Stop the old Key Secret of “${key.name}” working now? Clients still using it are refused from their next call; the current secret keeps working.`,
    opener,
    onYes: async () => {
      try {
        const { revokePreviousSecret } = await gql(REVOKE_PREVIOUS, { id: key.id });
        replaceRow(revokePreviousSecret);
        status.textContent = `The old secret of ${revokePreviousSecret.name} no longer works.`;
        // The button is gone with the grace period: focus goes to the row's Regenerate.
        return { opener: rowControl(key, "regenerate") ?? $("keys-title") };
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
    danger: true,
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
    const { apiKeys } = await gql(LIST, { first: PAGE_SIZE, after, ...filters() });
    return apiKeys;
  },
  // The server refused a filter: say why beside it (the table is emptied).
  explain: (problem) => {
    if (!(problem instanceof ApiError) || problem.code !== "BAD_USER_INPUT") return false;
    if (problem.field === "expiringWithinDays") {
      showFieldError(expiring, expiringError, inputMessage(problem));
      return true;
    }
    return false;
  },
  summary: (shown, total) => {
    if (total > 0) return `Showing ${shown} of ${total} API keys.`;
    const { search: text, status: state, expiringWithinDays } = filters();
    if (state || expiringWithinDays) return "No API key matches these filters.";
    return text ? "No API key matches this search." : "No API keys yet. Click Add More to create one.";
  },
});

/** The list's filters as apiKeys arguments (checked first by filterProblem). */
function filters() {
  const days = expiring.value.trim();
  return {
    search: search.value.trim() || null,
    status: statusFilter.value || null,
    expiringWithinDays: days === "" ? null : Number(days),
  };
}

/** Why the filters cannot be asked for, in words, or null when they can. */
function filterProblem() {
  const days = expiring.value.trim();
  // A number input whose text is not a number has an empty value and badInput.
  if (expiring.validity.badInput || (days !== "" && !/^\d+$/.test(days))) {
    return `Enter a whole number of days from 1 to ${MAX_DAYS}, or leave it empty.`;
  }
  if (days !== "" && (Number(days) < 1 || Number(days) > MAX_DAYS)) {
    return `Enter a whole number of days from 1 to ${MAX_DAYS}, or leave it empty.`;
  }
  return null;
}

function reloadSoon() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(reload, SEARCH_DELAY_MS);
}

/** Load the first page again (after a change, or when the page opens). Invalid filters
 * empty the list and say why beside their field instead. */
export function reload() {
  refreshExpiringBanner();
  const problem = filterProblem();
  showFieldError(expiring, expiringError, problem ?? "");
  if (problem) {
    table.clear();
    return Promise.resolve();
  }
  return table.reload();
}

/** The banner's button: the enabled keys that expire within `days`. */
function showExpiring(days) {
  clearTimeout(searchTimer);
  search.value = "";
  statusFilter.value = "ACTIVE";
  expiring.value = String(days);
  reload();
}

export function setUpKeysPage() {
  setUpCreateDialog(() => reload());
  setUpEditDialog(KEY_FIELDS);
  setUpGracePeriod();
  setUpUsageDialog();
  setUpExpiringBanner(showExpiring);
  $("add-more").addEventListener("click", (event) => openCreateDialog(event.currentTarget));
  for (const field of [search, expiring]) {
    field.addEventListener("input", reloadSoon);
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        clearTimeout(searchTimer);
        reload();
      }
    });
  }
  statusFilter.addEventListener("change", () => {
    clearTimeout(searchTimer);
    reload();
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
    // Asked now, so that the Create window shows its scopes as it opens (and a keyboard
    // user tabbing through it at once meets them); the window asks again if this fails.
    knownScopes().catch(() => {});
    reload();
    showOrganizationUsage();
  }
}
