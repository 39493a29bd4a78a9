// Sign-in and sign-out. The password goes only into the body of a POST to /graphql.

import { describeError, gql } from "./api.js";
import { $, say } from "./dom.js";

const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { id }
}`;
const LOGOUT = "mutation Logout { logout }";

const form = $("signin-form");
const email = $("signin-email");
const password = $("signin-password");
const error = $("signin-error");

export function setUpSignIn({ signedIn, signedOut }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    if (!email.value.trim() || !password.value) {
      say(error, "Enter your email and your password.");
      (email.value.trim() ? password : email).focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await gql(LOGIN, { email: email.value.trim(), password: password.value }, { signIn: true });
      password.value = "";
      say($("signin-notice"), "");
      await signedIn();
    } catch (problem) {
      password.value = "";
      say(
        error,
        problem.code === "UNAUTHENTICATED"
          ? "The email or the password is wrong."
          : describeError(problem),
      );
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await gql(LOGOUT);
    } finally {
      signedOut("You signed out.");
    }
  });
}

/** Show the sign-in form, with `notice` (e.g. why the session ended) above it. */
export function showSignIn(notice = "") {
  say($("signin-notice"), notice);
  say(error, "");
  password.value = "";
  email.focus();
}
