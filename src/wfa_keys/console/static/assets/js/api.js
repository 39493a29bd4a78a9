// The console's only way to the server: JSON POSTs to the public GraphQL API, same origin,
// with the session cookie. Nothing here ever puts a value into a URL or into storage.

const ENDPOINT = "graphql";

/** An error the API answered with; `code` is its `extensions.code`. */
export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.extensions = extensions;
  }

  /** The field a BAD_USER_INPUT error is about, e.g. "input.name" (or null). */
  get field() {
    return this.extensions.field ?? null;
  }
}

const sessionEndedListeners = new Set();

/** `listener()` runs whenever a request finds the session gone (UNAUTHENTICATED). */
export function onSessionEnded(listener) {
  sessionEndedListeners.add(listener);
}

/**
 * Run one GraphQL operation; resolve to its `data`, or reject with an ApiError.
 * `signIn: true` marks the sign-in itself, whose UNAUTHENTICATED means wrong credentials.
 */
export async function gql(query, variables = {}, { signIn = false } = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("NETWORK", "The service cannot be reached. Check the connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body?.errors?.[0];
  if (error) {
    const extensions = error.extensions ?? {};
    const apiError = new ApiError(extensions.code ?? "ERROR", error.message, extensions);
    if (apiError.code === "UNAUTHENTICATED" && !signIn) {
      sessionEndedListeners.forEach((listener) => listener());
    }
    throw apiError;
  }
  if (!response.ok || !body?.data) {
    throw new ApiError(
      `HTTP_${response.status}`,
      response.status === 503
        ? "The service is unavailable right now. Try again in a moment."
        : "Something went wrong on the server. Try again.",
    );
  }
  return body.data;
}

// The console's own words for the fields a person types into: the API's messages speak to
// programmers ("…or null").
const INPUT_MESSAGES = {
  lifetimeDays: "Enter a whole number of days from 1 to 3650.",
  keyInactivityDays: "Enter a whole number of days from 1 to 3650, or leave it empty for never.",
  expiringWithinDays: "Enter a whole number of days from 1 to 3650, or leave it empty.",
  gracePeriodMinutes: "Enter a whole number of minutes from 0 to 10080.",
  keyId: "This is not a Key ID: Key IDs start with wfak_, as in the API Keys list.",
};

/** A BAD_USER_INPUT error about a field, in the console's words. */
export function inputMessage(error) {
  const name = (error.field ?? "").split(".").pop();
  return INPUT_MESSAGES[name] ?? error.message;
}

/** A sentence for a person, for any error `gql` rejects with. */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return "Something went wrong. Reload the page and try again.";
  }
  switch (error.code) {
    case "RATE_LIMITED": {
      const seconds = Number(error.extensions.retryAfter);
      return Number.isFinite(seconds) && seconds > 0
        ? `Too many attempts. Try again in ${Math.ceil(seconds)} seconds.`
        : "Too many attempts. Try again later.";
    }
    case "FORBIDDEN":
      return "Only admins manage API keys. Ask an admin of your organization.";
    case "SUBSCRIPTION_REQUIRED":
      return "API Management requires a subscription to Workflow Automation.";
    case "NOT_FOUND":
      return "This API key no longer exists. The list has been refreshed.";
    case "INTERNAL_SERVER_ERROR":
      return "Something went wrong on the server. Try again.";
    case "BAD_USER_INPUT":
      return inputMessage(error);
    default:
      return error.message;
  }
}
