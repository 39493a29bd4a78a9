// What a key may do, as form fields: the "Scopes" checkboxes and the "Allowed networks"
// textarea, shared by the Create and the Edit windows. The scopes come from the API
// (`apiScopes`), so a scope added on the server shows here without a change to the console.

import { gql } from "./api.js";
import { h, say } from "./dom.js";

const SCOPES = "query ApiScopes { apiScopes { name description grantedByDefault } }";

let known = null;

/** The known scopes ({ name, description }), asked once per page load. */
export async function knownScopes() {
  known ??= gql(SCOPES).then(
    (data) => data.apiScopes,
    (problem) => {
      known = null; // ask again next time
      throw problem;
    },
  );
  return known;
}

/** Mark `input` invalid with `message` in `element`, or clear both for "". */
export function showFieldError(input, element, message) {
  say(element, message);
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** Put a copy of index.html's #access-template in place of `#${prefix}-access`. */
function instantiate(prefix) {
  const copy = document.getElementById("access-template").content.cloneNode(true);
  for (const element of copy.querySelectorAll("[data-ref]")) {
    element.id = `${prefix}-${element.dataset.ref}`;
  }
  for (const element of copy.querySelectorAll("[for], [aria-describedby]")) {
    for (const name of ["for", "aria-describedby"]) {
      const value = element.getAttribute(name);
      if (value) element.setAttribute(name, value.replaceAll("@", `${prefix}-`));
    }
  }
  document.getElementById(`${prefix}-access`).replaceWith(copy);
}

/**
 * The fields of one form: `prefix` is "create" or "edit"; the elements get ids
 * `${prefix}-scopes`, `${prefix}-scope-list`, `${prefix}-networks`, ... (see index.html).
 */
export function accessFields(prefix) {
  instantiate(prefix);
  const list = document.getElementById(`${prefix}-scope-list`);
  const group = document.getElementById(`${prefix}-scopes`);
  const networks = document.getElementById(`${prefix}-networks`);
  const scopesError = document.getElementById(`${prefix}-scopes-error`);
  const networksError = document.getElementById(`${prefix}-networks-error`);

  function boxes() {
    return [...list.querySelectorAll("input[type=checkbox]")];
  }

  return {
    networks,

    /** Draw one checkbox per known scope; `checked` names the ones to tick (null: the ones
     * the API grants by default, so never keys:verify unless asked for). */
    async render(checked = null) {
      const scopes = await knownScopes();
      list.replaceChildren(
        ...scopes.map((scope) => {
          const id = `${prefix}-scope-${scope.name.replace(/[^a-z0-9]/gi, "-")}`;
          return h(
            "div",
            { class: "scope" },
            h("input", {
              type: "checkbox",
              id,
              value: scope.name,
              checked: checked === null ? scope.grantedByDefault : checked.includes(scope.name),
              "aria-describedby": `${id}-description`,
            }),
            h("label", { for: id }, h("code", {}, scope.name)),
            h("span", { class: "hint", id: `${id}-description` }, scope.description),
          );
        }),
      );
    },

    /** The ticked scope names, in the order the API lists them. */
    scopes() {
      return boxes()
        .filter((box) => box.checked)
        .map((box) => box.value);
    },

    /** The networks, one per non-empty line, trimmed (the server checks each). */
    cidrs() {
      return networks.value
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "");
    },

    setCidrs(values) {
      networks.value = values.join("\n");
    },

    /** Show a BAD_USER_INPUT about `field` beside its input; false when it is not ours. */
    explain(field, message) {
      const name = field?.replace(/^input\./, "");
      if (name === "scopes") {
        showFieldError(group, scopesError, message);
        boxes()[0]?.focus();
        return true;
      }
      if (name === "allowedCidrs") {
        showFieldError(networks, networksError, message);
        networks.focus();
        return true;
      }
      return false;
    },

    clearErrors() {
      showFieldError(group, scopesError, "");
      showFieldError(networks, networksError, "");
    },

    reset() {
      list.replaceChildren();
      networks.value = "";
      this.clearErrors();
    },
  };
}
