// The Audit Log view: the organization's events, newest first, with the date and time in
// the browser's locale, filtered by event and by Key ID.

import { ApiError, gql, inputMessage } from "./api.js";
import { showFieldError } from "./access-fields.js";
import { pagedTable } from "./paged-table.js";
import { $, h, momentCell, say } from "./dom.js";

const PAGE_SIZE = 50;
const TYPING_DELAY_MS = 250;
const LIST = `query AuditEvents($first: Int, $after: String, $keyId: ID, $action: AuditAction) {
  auditEvents(first: $first, after: $after, keyId: $keyId, action: $action) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id action keyId actorEmail clientIp createdAt }
  }
}`;

const ACTIONS = {
  KEY_CREATED: "Key created",
  KEY_ENABLED: "Key enabled",
  KEY_DISABLED: "Key disabled",
  KEY_REGENERATED: "Secret regenerated",
  KEY_DELETED: "Key deleted",
  KEY_UPDATED: "Key updated",
  PREVIOUS_SECRET_REVOKED: "Old secret revoked",
  KEY_AUTO_DISABLED: "Key disabled for inactivity",
  WEBHOOK_CREATED: "Webhook endpoint added",
  WEBHOOK_UPDATED: "Webhook endpoint changed",
  WEBHOOK_ENABLED: "Webhook endpoint enabled",
  WEBHOOK_DISABLED: "Webhook endpoint disabled",
  WEBHOOK_AUTO_DISABLED: "Webhook endpoint disabled: failing for days",
  WEBHOOK_SECRET_ROTATED: "Webhook signing secret rotated",
  WEBHOOK_DELETED: "Webhook endpoint deleted",
  WEBHOOK_TESTED: "Webhook test sent",
  LOGIN_SUCCEEDED: "Signed in",
  LOGIN_FAILED: "Sign-in failed",
  LOGIN_THROTTLED: "Sign-in refused (too many attempts)",
  LOGOUT: "Signed out",
  USER_CREATED: "User created",
  USER_ACTIVATED: "User activated",
  USER_DEACTIVATED: "User deactivated",
  PASSWORD_SET: "Password set",
  ROLE_CHANGED: "Role changed",
  SUBSCRIPTION_CHANGED: "Subscription changed",
};

const actionFilter = $("audit-action");
const keyFilter = $("audit-key");
const keyError = $("audit-key-error");
let typingTimer = null;

function row(event) {
  const cells = [
    ["When", momentCell(event.createdAt)],
    ["Event", ACTIONS[event.action] ?? event.action],
    ["Key ID", event.keyId ? h("code", { class: "key-id" }, event.keyId) : "—"],
    ["Who", event.actorEmail ?? "—"],
    ["Client IP", event.clientIp ?? "—"],
  ];
  return h("tr", { role: "row" }, cells.map(([label, value]) => h("td", { role: "cell", "data-label": label }, value)));
}

const table = pagedTable({
  body: $("audit-body"),
  status: $("audit-status"),
  error: $("audit-error"),
  more: $("audit-more"),
  row,
  fetchPage: async (after) => (await gql(LIST, { first: PAGE_SIZE, after, ...filters() })).auditEvents,
  summary: (shown, total) => {
    if (total > 0) return `Showing ${shown} of ${total} events.`;
    return actionFilter.value || keyFilter.value.trim() ? "No event matches these filters." : "No events yet.";
  },
  // A Key ID the server refuses: said beside the field, the table emptied.
  explain: (problem) => {
    if (!(problem instanceof ApiError) || problem.field !== "keyId") return false;
    showFieldError(keyFilter, keyError, inputMessage(problem));
    return true;
  },
});

function filters() {
  return { action: actionFilter.value || null, keyId: keyFilter.value.trim() || null };
}

function reload() {
  clearTimeout(typingTimer);
  showFieldError(keyFilter, keyError, "");
  return table.reload();
}

function setUp() {
  actionFilter.append(...Object.entries(ACTIONS).map(([value, text]) => h("option", { value }, text)));
  actionFilter.addEventListener("change", reload);
  keyFilter.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(reload, TYPING_DELAY_MS);
  });
  keyFilter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") reload();
  });
}

setUp();

export function showAuditPage(me) {
  const allowed = me.role === "ADMIN" && me.organization.hasWorkflowAutomation;
  $("audit-content").hidden = !allowed;
  if (!me.organization.hasWorkflowAutomation) {
    say($("audit-notice"), "API Management requires a subscription to Workflow Automation.");
  } else if (!allowed) {
    say($("audit-notice"), "Only admins see the audit log.");
  } else {
    say($("audit-notice"), "");
    reload();
  }
}
