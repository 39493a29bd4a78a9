// Settings > Webhooks: the organization's endpoints, adding one (its signing secret shown
// once, with Copy), sending a test event, and each endpoint's recent deliveries.

import { describeError, gql } from "./api.js";
import { showFieldError } from "./access-fields.js";
import { $, formatMoment, h, say } from "./dom.js";

const LIST = `query WebhookEndpoints {
  webhookEndpoints { id url events enabled description disabledReason }
}`;
const CREATE = `mutation CreateWebhookEndpoint($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url } }
}`;
const TEST = `mutation SendTestWebhook($id: ID!) { sendTestWebhook(id: $id) { id } }`;
const DELIVERIES = `query WebhookDeliveries($id: ID!) {
  webhookDeliveries(endpointId: $id, first: 20) {
    nodes { id eventType status responseCode durationMs error nextRetryAt createdAt }
  }
}`;
const COPIED_FOR_MS = 4000;

const section = $("webhooks");
const body = $("webhooks-body");
const status = $("webhooks-status");
const error = $("webhooks-error");
const form = $("webhook-form");
const url = $("webhook-url");
const urlError = $("webhook-url-error");
const description = $("webhook-description");
const add = $("webhook-add");
const secretBox = $("webhook-secret");
const secretValue = $("webhook-secret-value");
const secretStatus = $("webhook-secret-status");
const deliveries = $("webhook-deliveries");
const deliveriesTitle = $("webhook-deliveries-title");
const deliveriesBody = $("webhook-deliveries-body");

function endpointRow(endpoint) {
  const state = endpoint.enabled ? "Enabled" : "Disabled";
  const test = h("button", { type: "button", class: "button", "data-action": "test" }, "Send test");
  const recent = h("button", { type: "button", class: "button", "data-action": "deliveries" }, "Deliveries");
  test.addEventListener("click", () => sendTest(endpoint, test));
  recent.addEventListener("click", () => showDeliveries(endpoint));
  return h(
    "tr",
    { "data-endpoint": endpoint.id },
    h("td", {}, h("code", { class: "endpoint-url" }, endpoint.url), endpoint.description ? h("div", { class: "muted" }, endpoint.description) : null),
    h("td", {}, endpoint.events.length ? endpoint.events.join(", ") : "All events"),
    h(
      "td",
      {},
      h("span", { class: `badge ${endpoint.enabled ? "active" : "disabled"}` }, state),
      endpoint.disabledReason ? h("div", { class: "field-error" }, endpoint.disabledReason) : null,
    ),
    h("td", { class: "actions-cell" }, test, recent),
  );
}

async function load() {
  const { webhookEndpoints } = await gql(LIST);
  body.replaceChildren(...webhookEndpoints.map(endpointRow));
  if (!webhookEndpoints.length) {
    body.append(h("tr", {}, h("td", { colspan: "4", class: "muted" }, "No endpoints yet.")));
  }
}

async function sendTest(endpoint, button) {
  say(error, "");
  button.disabled = true;
  try {
    await gql(TEST, { id: endpoint.id });
    status.textContent = `A test event is on its way to ${endpoint.url}.`;
  } catch (problem) {
    say(error, describeError(problem));
  } finally {
    button.disabled = false;
  }
}

function deliveryRow(delivery) {
  const response = delivery.responseCode ?? delivery.error ?? "";
  return h(
    "tr",
    { "data-delivery": delivery.id },
    h("td", {}, delivery.eventType),
    h("td", {}, h("span", { class: `badge delivery-${delivery.status}` }, delivery.status)),
    h("td", {}, String(response)),
    h("td", {}, `${formatMoment(delivery.createdAt)} (${delivery.durationMs} ms)`),
    h("td", {}, delivery.nextRetryAt ? formatMoment(delivery.nextRetryAt) : ""),
  );
}

async function showDeliveries(endpoint) {
  say(error, "");
  try {
    const { webhookDeliveries } = await gql(DELIVERIES, { id: endpoint.id });
    deliveriesTitle.textContent = `Recent deliveries to ${endpoint.url}`;
    const rows = webhookDeliveries.nodes.map(deliveryRow);
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "Nothing delivered yet.")));
    deliveriesBody.replaceChildren(...rows);
    deliveries.hidden = false;
  } catch (problem) {
    say(error, describeError(problem));
  }
}

async function create(event) {
  event.preventDefault();
  showFieldError(url, urlError, "");
  say(error, "");
  add.disabled = true;
  try {
    const { createWebhookEndpoint } = await gql(CREATE, {
      input: { url: url.value.trim(), description: description.value.trim() || null },
    });
    secretValue.textContent = createWebhookEndpoint.secret;
    secretBox.hidden = false;
    form.reset();
    status.textContent = `${createWebhookEndpoint.endpoint.url} was added.`;
    await load();
  } catch (problem) {
    if (problem.code === "BAD_USER_INPUT" && problem.field === "input.url") {
      showFieldError(url, urlError, problem.message);
      url.focus();
    } else {
      say(error, describeError(problem));
    }
  } finally {
    add.disabled = false;
  }
}

async function copySecret() {
  try {
    await navigator.clipboard.writeText(secretValue.textContent);
    secretStatus.textContent = "Copied";
    setTimeout(() => {
      if (secretStatus.textContent === "Copied") secretStatus.textContent = "";
    }, COPIED_FOR_MS);
  } catch {
    say(error, "The browser did not allow copying: select the secret and copy it by hand.");
  }
}

function forgetSecret() {
  // The secret leaves the page: it cannot be shown again.
  secretValue.textContent = "";
  secretStatus.textContent = "";
  secretBox.hidden = true;
}

export function setUpWebhooks() {
  form.addEventListener("submit", create);
  $("webhook-secret-copy").addEventListener("click", copySecret);
  $("webhook-secret-done").addEventListener("click", forgetSecret);
}

/** Show the section to an admin of a subscribed organization. */
export async function showWebhooks(me) {
  const allowed = me.role === "ADMIN" && me.organization.hasWorkflowAutomation;
  section.hidden = !allowed;
  forgetSecret();
  deliveries.hidden = true;
  status.textContent = "";
  say(error, "");
  if (!allowed) return;
  try {
    await load();
  } catch (problem) {
    say(error, describeError(problem));
  }
}
