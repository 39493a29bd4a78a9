// The "API Key" window: the Key ID and the Key Secret, shown once, with Copy buttons.
// Done (or Escape) removes the secret from the page; until the secret was copied, it asks
// first, since a secret closed unseen is lost for good.

import { confirmAction } from "./confirm-dialog.js";
import { $, formatMoment, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";

const dialog = $("secret-dialog");
const keyId = $("secret-key-id");
const keySecret = $("secret-key-secret");
const error = $("secret-error");
const COPIED_FOR_MS = 4000;
let secretCopied = false;

async function copy(value, status) {
  try {
    await navigator.clipboard.writeText(value.textContent);
    if (value === keySecret) secretCopied = true;
    say(error, "");
    status.textContent = "Copied";
    setTimeout(() => {
      if (status.textContent === "Copied") status.textContent = "";
    }, COPIED_FOR_MS);
  } catch {
    say(error, "The browser did not allow copying: select the value and copy it by hand.");
  }
}

/** Done or Escape: close, after asking when the secret was never copied. */
function requestClose() {
  if (secretCopied) {
    closeModal(dialog);
    return;
  }
  confirmAction({
    title: "Close Without Copying?",
    text: "Close without copying the Key Secret? It is shown only this once: once closed, it cannot be shown again.",
    danger: true,
    opener: $("secret-done"),
    onYes: () => ({ after: () => closeModal(dialog) }),
  });
}

function forget() {
  secretCopied = false;
  keyId.textContent = "";
  keySecret.textContent = "";
  $("copy-key-id-status").textContent = "";
  $("copy-key-secret-status").textContent = "";
  say($("secret-grace"), "");
  say(error, "");
}

export function setUpSecretDialog() {
  setUpModal(dialog, forget);
  $("copy-key-id").addEventListener("click", () => copy(keyId, $("copy-key-id-status")));
  $("copy-key-secret").addEventListener("click", () =>
    copy(keySecret, $("copy-key-secret-status")),
  );
  $("secret-done").addEventListener("click", requestClose);
  // Escape asks too: its default (closing the dialog) waits for the answer.
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || secretCopied) return;
    event.preventDefault();
    requestClose();
  });
  dialog.addEventListener("cancel", (event) => {
    if (!secretCopied) event.preventDefault();
  });
}

/** Show a key's ID and its new secret (an ApiKeyWithSecret); `opener` gets focus after. */
export function showSecret({ apiKey, keySecret: secret }, opener) {
  forget();
  keyId.textContent = apiKey.id;
  keySecret.textContent = secret;
  // After a regenerate with a grace period: until when clients may still use the old secret.
  const until = apiKey.previousSecretExpiresAt;
  say(
    $("secret-grace"),
    until
      ? `The old Key Secret keeps working until ${formatMoment(until)}: update your clients before then.`
      : "",
  );
  openModal(dialog, { opener, focus: $("copy-key-secret") });
}
