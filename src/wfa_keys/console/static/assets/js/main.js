// The console's entry point: who is signed in, and which view shows (from the URL's hash,
// which holds only the view's name: #/api-keys or #/audit-log).

import { describeError, gql, onSessionEnded } from "./api.js";
import { $ } from "./dom.js";
import { closeAllModals } from "./modal.js";
import { showAuditPage } from "./audit.js";
import { setUpConfirmDialog } from "./confirm-dialog.js";
import { setUpKeysPage, showKeysPage } from "./keys.js";
import { setUpSecretDialog } from "./secret-dialog.js";
import { setUpSignIn, showSignIn } from "./signin.js";

const ME = `query Me { me { id email role organization { name hasWorkflowAutomation } } }`;
const VIEWS = { "#/api-keys": "keys", "#/audit-log": "audit" };

let me = null;

function show(view) {
  $("boot").hidden = true;
  for (const name of ["signin", "keys", "audit"]) $(`${name}-view`).hidden = name !== view;
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
  if (view === "audit") showAuditPage(me);
  else showKeysPage(me);
  document.title = `${view === "audit" ? "Audit Log" : "API Keys"} · Workflow Automation`;
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
  route({ moveFocus: true });
}

async function start() {
  setUpSecretDialog();
  setUpConfirmDialog();
  setUpKeysPage();
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
    route({ moveFocus: false });
  } else {
    signedOut(notice);
  }
}

start();
