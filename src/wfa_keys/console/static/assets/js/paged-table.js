// A table filled page by page from a GraphQL connection, with "Load more" and its states:
// loading, empty, error. The keys list and the audit log are both one of these.

import { describeError } from "./api.js";
import { say } from "./dom.js";

/**
 * `fetchPage(after)` resolves to a connection ({ nodes, pageInfo, totalCount });
 * `row(node)` makes a <tr>; `summary(shown, total)` is the status line; `explain(problem)`
 * may show an error beside a filter and return true (the table is emptied, not left stale).
 */
export function pagedTable({ body, status, error, more, fetchPage, row, summary, explain = () => false }) {
  let cursor = null;
  let generation = 0;

  async function load(append) {
    const mine = ++generation;
    say(error, "");
    status.textContent = "Loading…";
    more.hidden = true;
    try {
      const page = await fetchPage(append ? cursor : null);
      if (mine !== generation) return; // a newer load (e.g. a new search) wins
      if (!append) body.replaceChildren();
      body.append(...page.nodes.map(row));
      cursor = page.pageInfo.endCursor;
      more.hidden = !page.pageInfo.hasNextPage;
      status.textContent = summary(body.children.length, page.totalCount);
    } catch (problem) {
      if (mine !== generation) return;
      status.textContent = "";
      if (explain(problem)) {
        clear();
        return;
      }
      say(error, describeError(problem));
    }
  }

  /** No rows (the filters are wrong): `why` in the status line, nothing pending. */
  function clear(why = "Nothing is shown until the filter is corrected.") {
    generation += 1;
    body.replaceChildren();
    more.hidden = true;
    say(error, "");
    status.textContent = why;
  }

  more.addEventListener("click", async () => {
    const before = body.children.length;
    await load(true);
    // Keep the keyboard where reading goes on: the first new row's first control.
    body.children[before]?.querySelector("button, a")?.focus();
  });
  return { reload: () => load(false), clear };
}
