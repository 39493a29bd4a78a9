// The Yes/No pop-up before a regenerate, a delete or a revoke. A question may show extra
// fields (the grace period of a regenerate): `body`, an element of the dialog, unhidden while
// the question is open.

import { describeError } from "./api.js";
import { $, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";

const dialog = $("confirm-dialog");
const yes = $("confirm-yes");
let pending = null;
let body = null;

export function setUpConfirmDialog() {
  setUpModal(dialog, () => {
    pending = null;
    if (body) body.hidden = true;
    body = null;
    yes.disabled = false;
  });
  $("confirm-no").addEventListener("click", () => closeModal(dialog));
  yes.addEventListener("click", async () => {
    if (!pending) return;
    yes.disabled = true;
    say($("confirm-error"), "");
    try {
      // `onYes` does the work and may say what comes next: `{ opener }`, where focus goes
      // (default: back to the opener), `{ after }`, a step that takes focus itself, or
      // `{ stay: true }` when it explained a problem in `body` and the question stays open.
      const next = (await pending()) ?? {};
      if (next.stay) {
        yes.disabled = false;
      } else if (next.after) {
        closeModal(dialog, { opener: null });
        next.after();
      } else {
        closeModal(dialog, "opener" in next ? { opener: next.opener } : {});
      }
    } catch (error) {
      if (dialog.open) say($("confirm-error"), describeError(error));
      yes.disabled = false;
    }
  });
}

/**
 * Ask `question`; on Yes run `onYes()` (async); on No or Escape nothing happens.
 * `danger`: Yes destroys something (it shows in the danger colour).
 */
export function confirmAction({ title, text, onYes, opener, extra = null, danger = false }) {
  yes.classList.toggle("danger", danger);
  yes.classList.toggle("primary", !danger);
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  say($("confirm-error"), "");
  pending = onYes;
  if (body && body !== extra) body.hidden = true;
  body = extra;
  if (body) body.hidden = false;
  openModal(dialog, { opener, focus: $("confirm-no") });
}
