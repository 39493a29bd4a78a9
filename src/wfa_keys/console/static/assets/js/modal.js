// Modal dialogs on <dialog>: showModal() makes the page behind inert; this adds a focus
// trap that wraps Tab and Shift+Tab, Escape to close, and focus back where it came from.

const FOCUSABLE =
  'button:not([disabled]), input:not([disabled]), [href], select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(dialog) {
  return [...dialog.querySelectorAll(FOCUSABLE)].filter(
    (element) => !element.closest("[hidden]") && element.getClientRects().length > 0,
  );
}

function trapTab(event) {
  if (event.key !== "Tab") return;
  const items = focusables(event.currentTarget);
  if (items.length === 0) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

/** Install the trap once per dialog; `onClose` runs when it closes, however it closed. */
export function setUpModal(dialog, onClose) {
  dialog.addEventListener("keydown", trapTab);
  // Run at once by closeModal (the close event comes a task later), and again on Escape.
  dialog.cleanUp = onClose;
  dialog.addEventListener("close", () => {
    // The event comes a task after the close: the dialog may be open again by then (Escape,
    // then Enter on its opener at once), and must not lose what it shows now.
    if (dialog.open) return;
    onClose?.();
    const opener = dialog.opener;
    dialog.opener = null;
    // null: whoever closed the dialog moves focus itself (e.g. to the next dialog).
    if (opener !== null) restoreFocus(opener);
  });
}

/** Open `dialog`, remembering `opener` (default: the focused element) for the way back. */
export function openModal(dialog, { opener = document.activeElement, focus = null } = {}) {
  dialog.opener = opener ?? undefined;
  if (!dialog.open) dialog.showModal();
  (focus ?? focusables(dialog)[0])?.focus();
}

/** Close `dialog`; focus goes back to what opened it, or `opener` when given. */
export function closeModal(dialog, { opener } = {}) {
  if (opener !== undefined) dialog.opener = opener;
  dialog.cleanUp?.();
  if (dialog.open) dialog.close();
  // Focus goes back now, not in the close event a task later: by then the person may have
  // moved on to another control, and the late restore would pull focus away from it.
  const target = dialog.opener;
  dialog.opener = null;
  if (target !== null) restoreFocus(target);
}

/** Focus `target`; if it left the page (a list refresh), its replacement or the page title. */
export function restoreFocus(target) {
  if (target?.isConnected) {
    target.focus();
    return;
  }
  const selector = target?.dataset?.focusKey;
  const replacement = selector ? document.querySelector(`[data-focus-key="${CSS.escape(selector)}"]`) : null;
  (replacement ?? document.querySelector("section:not([hidden]) h1"))?.focus();
}

/** Close every open dialog, without returning focus (the page changes underneath). */
export function closeAllModals() {
  for (const dialog of document.querySelectorAll("dialog[open]")) {
    dialog.opener = null;
    dialog.close();
  }
}
