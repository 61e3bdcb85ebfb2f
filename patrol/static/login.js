"use strict";
// The login form: JSON to /api/v1/session, then the overview.
document.addEventListener("DOMContentLoaded", () => {
  const t = JSON.parse(document.body.dataset.strings);
  const form = document.getElementById("login-form");
  const err = document.getElementById("login-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const body = {
      name: document.getElementById("name").value,
      password: document.getElementById("password").value,
    };
    const r = await fetch("/api/v1/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (r.ok) {
      window.location.assign("/");
      return;
    }
    err.textContent = r.status === 429 ? t.login_locked : t.login_failed;
  });
});
