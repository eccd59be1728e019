/* Replay buttons of the DLQ page: POST /v1/dlq/{id}/replay, then follow the replay live. */
"use strict";
(function () {
  document.querySelectorAll("button.replay").forEach(function (button) {
    button.addEventListener("click", function () {
      const status = button.nextElementSibling;
      button.disabled = true;
      status.textContent = "replaying…";
      fetch("/v1/dlq/" + encodeURIComponent(button.dataset.dlqId) + "/replay", {
        method: "POST", headers: { "X-TL-Console": "1" }, credentials: "same-origin"
      }).then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
      }).then(function (res) {
        if (!res.ok) {
          status.textContent = "refused: " + ((res.body.error || {}).message || res.status);
          button.disabled = false;
          return;
        }
        status.textContent = "replayed, waiting for the outcome…";
        const source = window.tlEvents(function (event) {
          if (event.type === "system.voxel.created") {
            const id = (event.data.voxel || {}).id;
            status.textContent = "";
            const a = document.createElement("a");
            a.href = "/voxels/" + encodeURIComponent(id);
            a.textContent = "replayed: voxel stored";
            status.appendChild(a);
            source.close();
          } else if (event.type.indexOf("system.dlq.") === 0) {
            status.textContent = "replayed: dead-lettered again (" + (event.data.reason || "?") + ")";
            source.close();
          }
        }, null, res.body.correlation_id);
      }).catch(function () { status.textContent = "replay failed (network)"; button.disabled = false; });
    });
  });
})();
