"use strict";
// The inspection workflow's buttons: start an inspection, record findings, complete it, issue
// a notice from a problem, accept or send back the mall's answer. Each calls the JSON API with
// the session's CSRF token and reloads the page (rendered on the server) when it succeeded;
// a page waiting for the mall looks again every second and a half.
(() => {
  const lang = document.body.dataset.lang;
  let csrf = "";

  const showError = (body) => {
    const box = document.getElementById("error");
    if (!box) return;
    const zh = body && body.message_zh;
    box.textContent = (lang === "en" ? body && body.message : zh || (body && body.message)) || "error";
  };

  async function call(method, path, body) {
    const r = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401) {
      window.location.assign("/login");
      return null;
    }
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      data = null;
    }
    if (!r.ok) {
      showError(data);
      return null;
    }
    return data;
  }

  const enc = encodeURIComponent;

  function watch(path, key, now) {
    // Reload once what the page shows has changed (the hub answered, a step arrived).
    setInterval(async () => {
      const r = await fetch(path, { credentials: "same-origin" });
      if (!r.ok) return;
      const got = (await r.json())[key];
      if (JSON.stringify(now(got)) !== document.body.dataset.seen) window.location.reload();
    }, 1500);
  }

  function inspectionPage(main) {
    const id = main.dataset.inspection;
    const base = `/api/v1/inspections/${enc(id)}`;
    const pending = (i) =>
      i.items.filter((x) => x.status === "snapshot" && !x.has_picture && !x.picture_error).length;
    if (main.dataset.state === "waiting" || main.dataset.pictures !== "0") {
      // The hub's answer, then the pictures fetched from its URLs, arrive after the page.
      document.body.dataset.seen = JSON.stringify([main.dataset.state, Number(main.dataset.pictures)]);
      watch(base, "inspection", (i) => [i.state, pending(i)]);
    }
    for (const tr of document.querySelectorAll("#items tbody tr[data-item]")) {
      const item = tr.dataset.item;
      const note = tr.querySelector("input.note");
      for (const finding of ["pass", "problem"]) {
        const b = tr.querySelector(`button.${finding}`);
        if (!b) continue;
        b.addEventListener("click", async () => {
          b.disabled = true;
          const ok = await call("PUT", `${base}/items/${enc(item)}`, {
            finding,
            note: note ? note.value : "",
          });
          if (ok) window.location.reload();
          b.disabled = false;
        });
      }
      const issue = tr.querySelector("button.issue-notice");
      if (issue) {
        issue.addEventListener("click", async () => {
          issue.disabled = true;
          const local = tr.querySelector("input.deadline").value; // China time
          const ok = await call("POST", "/api/v1/notices", {
            inspection_id: id,
            item_id: item,
            finding: tr.querySelector("input.notice-text").value,
            deadline: local ? `${local.length === 16 ? `${local}:00` : local}+08:00` : "",
          });
          if (ok) window.location.reload();
          issue.disabled = false;
        });
      }
    }
    const complete = document.getElementById("complete");
    if (complete) {
      complete.addEventListener("click", async () => {
        complete.disabled = true;
        const rest = document.getElementById("rest-pass").checked ? "pass" : undefined;
        const ok = await call("POST", `${base}/complete`, rest ? { rest } : {});
        if (ok) window.location.reload();
        complete.disabled = false;
      });
    }
  }

  function noticePage(main) {
    const id = main.dataset.notice;
    const base = `/api/v1/notices/${enc(id)}`;
    const waiting = (n) => n.evidence.filter((p) => !p.has_picture && !p.picture_error).length;
    const state = (n) => [n.state, n.version, n.pending, n.overdue, waiting(n)];
    // The server rendered the page for data-seen; anything newer reloads it.
    document.body.dataset.seen = main.dataset.seen;
    const final = main.dataset.state === "closed" || main.dataset.state === "refused";
    if (!final || JSON.parse(main.dataset.seen)[4] > 0) {
      watch(base, "notice", state);
    }
    const accept = document.getElementById("accept");
    if (accept) {
      accept.addEventListener("click", async () => {
        accept.disabled = true;
        const note = document.getElementById("accept-note").value;
        const ok = await call("POST", `${base}/accept`, note ? { note } : {});
        if (ok) window.location.reload();
        accept.disabled = false;
      });
    }
    const reject = document.getElementById("reject");
    if (reject) {
      reject.addEventListener("click", async () => {
        reject.disabled = true;
        const reason = document.getElementById("reject-reason").value;
        const ok = await call("POST", `${base}/reject`, { reason });
        if (ok) window.location.reload();
        reject.disabled = false;
      });
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const me = await fetch("/api/v1/me", { credentials: "same-origin" });
    if (!me.ok) {
      window.location.assign("/login");
      return;
    }
    csrf = (await me.json()).csrf_token;
    const form = document.getElementById("start-form");
    if (form) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const site = document.getElementById("site").value;
        const got = await call("POST", "/api/v1/inspections", { site_id: site });
        if (got) window.location.assign(`/inspections/${enc(got.inspection.inspection_id)}`);
      });
    }
    const insp = document.getElementById("inspection");
    if (insp) inspectionPage(insp);
    const notice = document.getElementById("notice");
    if (notice) noticePage(notice);
    document.body.dataset.ready = "1";
  });
})();
