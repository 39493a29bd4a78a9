// The console's entry point: who is signed in, and which view shows (from the URL's hash,
// which holds only the view's name: #/api-keys, #/audit-log or #/settings).

import { describeError, gql, onSessionEnded } from "./api.js";
import { $ } from "./dom.js";
import { closeAllModals } from "./modal.js";
import { showAuditPage } from "./audit.js";
import { setUpConfirmDialog } from "./confirm-dialog.js";
import { setUpKeysPage, showKeysPage } from "./keys.js";
import { setUpSecretDialog } from "./secret-dialog.js";
import { setUpSettingsPage, showSettingsPage } from "./settings.js";
import { setUpSignIn, showSignIn } from "./signin.js";

const ME = `query Me { me { id email role organization { name hasWorkflowAutomation } } }`;
const VIEWS = { "#/api-keys": "keys", "#/audit-log": "audit", "#/settings": "settings" };
const TITLES = { keys: "API Keys", audit: "Audit Log", settings: "Settings" };
const SHOW = { keys: showKeysPage, audit: showAuditPage, settings: showSettingsPage };

let me = null;

function show(view) {
  $("boot").hidden = true;
  for (const name of ["signin", "keys", "audit", "settings"]) $(`${name}-view`).hidden = name !== view;
  $("nav").hidden = view === "signin";
  $("account").hidden = view === "signin";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route({ moveFocus }) {
  if (!me) return;
  const view = VIEWS[location.hash] ?? "keys";
  show(view);
  SHOW[view](me);
  document.title = `${TITLES[view]} · Workflow Automation`;
  if (moveFocus) $(`${view}-title`).focus();
}

function signedOut(notice) {
  me = null;
  closeAllModals();
  show("signin");
  document.title = "Sign in · Workflow Automation";
  showSignIn(notice);
}

async function signedIn() {
  const data = await gql(ME);
  if (!data.me) {
    signedOut("");
    return;
  }
  me = data.me;
  $("account-email").textContent = me.email;
  $("account-email").title = me.email;
  route({ moveFocus: true });
}

async function start() {
  setUpSecretDialog();
  setUpConfirmDialog();
  setUpKeysPage();
  setUpSettingsPage();
  setUpSignIn({ signedIn, signedOut });
  onSessionEnded(() => {
    if (me) signedOut("Your session has ended. Sign in again.");
  });
  window.addEventListener("hashchange", () => {
    // Only "#/..." names a view; "#main" is the skip link's target.
    if (location.hash.startsWith("#/")) route({ moveFocus: true });
  });
  let notice = "";
  try {
    me = (await gql(ME)).me;
  } catch (error) {
    me = null;
    notice = describeError(error);
  }
  if (me) {
    $("account-email").textContent = me.email;
    $("account-email").title = me.email;
    route({ moveFocus: false });
  } else {
    signedOut(notice);
  }
}

start();
