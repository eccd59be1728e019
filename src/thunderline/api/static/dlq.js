/* The DLQ page: Replay (retryable groups: POST /v1/dlq/groups/{id}/replay, then follow the
   replays live) and Dismiss (POST /v1/dlq/groups/{id}/dismiss?reason=...). */
"use strict";
(function () {
  function post(url) {
    return fetch(url, {
      method: "POST", headers: { "X-TL-Console": "1" }, credentials: "same-origin"
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    });
  }
  function statusOf(row) { return row.querySelector(".status"); }
  function refused(res) { return "refused: " + ((res.body.error || {}).message || res.status); }

  document.querySelectorAll("button.replay").forEach(function (button) {
    button.addEventListener("click", function () {
      const row = button.closest("tr");
      const status = statusOf(row);
      button.disabled = true;
      status.textContent = "replaying…";
      post("/v1/dlq/groups/" + encodeURIComponent(button.dataset.groupId) + "/replay").then(function (res) {
        if (!res.ok) { status.textContent = refused(res); button.disabled = false; return; }
        const sent = res.body.replayed || [];
        if (!sent.length) { status.textContent = "nothing replayed"; return; }
        const waiting = {};
        sent.forEach(function (r) { waiting[r.correlation_id] = true; });
        let stored = 0, failed = 0, voxel = null, why = "?";
        status.textContent = "replayed " + sent.length + ", waiting for the outcome…";
        const source = window.tlEvents(function (event) {
          if (!waiting[event.correlationid]) return;
          if (event.type === "system.voxel.created") {
            stored += 1; voxel = (event.data.voxel || {}).id;
          } else if (event.type.indexOf("system.dlq.") === 0) {
            failed += 1; why = event.data.reason || "?";
          } else { return; }
          delete waiting[event.correlationid];
          if (Object.keys(waiting).length) return;
          source.close();
          status.textContent = "";
          if (failed) {
            status.textContent = "replayed: dead-lettered again (" + why + ")" +
              (stored ? ", " + stored + " stored" : "");
          } else {
            const a = document.createElement("a");
            a.href = "/voxels/" + encodeURIComponent(voxel);
            a.textContent = "replayed: voxel stored" + (stored > 1 ? " (" + stored + ")" : "");
            status.appendChild(a);
          }
        }, null, sent.length === 1 ? sent[0].correlation_id : null);
      }).catch(function () { status.textContent = "replay failed (network)"; button.disabled = false; });
    });
  });

  document.querySelectorAll("form.dismiss").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const row = form.closest("tr");
      const status = statusOf(row);
      const reason = form.elements.reason.value.trim();
      if (!reason) { status.textContent = "say why"; return; }
      const button = form.querySelector("button");
      button.disabled = true;
      post("/v1/dlq/groups/" + encodeURIComponent(form.dataset.groupId) + "/dismiss?reason=" +
           encodeURIComponent(reason)).then(function (res) {
        if (!res.ok) { status.textContent = refused(res); button.disabled = false; return; }
        const n = (res.body.dismissed || []).length;
        form.remove();
        const replay = row.querySelector("button.replay");
        if (replay) replay.remove();
        status.textContent = "dismissed " + n;
      }).catch(function () { status.textContent = "dismiss failed (network)"; button.disabled = false; });
    });
  });
})();
