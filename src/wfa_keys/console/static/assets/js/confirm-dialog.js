// The Yes/No pop-up before a regenerate or a delete.

import { describeError } from "./api.js";
import { $, say } from "./dom.js";
import { closeModal, openModal, setUpModal } from "./modal.js";

const dialog = $("confirm-dialog");
const yes = $("confirm-yes");
let pending = null;

export function setUpConfirmDialog() {
  setUpModal(dialog, () => {
    pending = null;
    yes.disabled = false;
  });
  $("confirm-no").addEventListener("click", () => closeModal(dialog));
  yes.addEventListener("click", async () => {
    if (!pending) return;
    yes.disabled = true;
    say($("confirm-error"), "");
    try {
      // `onYes` does the work and may say what comes next: `{ opener }`, where focus goes
      // (default: back to the opener), or `{ after }`, a step that takes focus itself.
      const next = (await pending()) ?? {};
      if (next.after) {
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

/** Ask `question`; on Yes run `onYes()` (async); on No or Escape nothing happens. */
export function confirmAction({ title, text, onYes, opener }) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  say($("confirm-error"), "");
  pending = onYes;
  openModal(dialog, { opener, focus: $("confirm-no") });
}
