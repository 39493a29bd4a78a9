// The "API Key" window: the Key ID and the Key Secret, shown once, with Copy buttons.
// Done (or Escape) removes the secret from the page.

import { $, formatMoment, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";

const dialog = $("secret-dialog");
const keyId = $("secret-key-id");
const keySecret = $("secret-key-secret");
const error = $("secret-error");
const COPIED_FOR_MS = 4000;

async function copy(value, status) {
  try {
    await navigator.clipboard.writeText(value.textContent);
    say(error, "");
    status.textContent = "Copied";
    setTimeout(() => {
      if (status.textContent === "Copied") status.textContent = "";
    }, COPIED_FOR_MS);
  } catch {
    say(error, "The browser did not allow copying: select the value and copy it by hand.");
  }
}

function forget() {
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
  $("secret-done").addEventListener("click", () => closeModal(dialog));
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
