/* Sources page: add a source, pause or resume one (POST /v1/sources, admin), then reload. */
"use strict";
(function () {
  function send(uri, paused, status) {
    status.textContent = "saving…";
    return fetch("/v1/sources", {
      method: "POST",
      headers: { "X-TL-Console": "1", "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ uri: uri, paused: paused })
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) {
          status.textContent = "refused: " + ((body.error || {}).message || r.status);
          return;
        }
        window.location.reload();
      });
    }).catch(function () { status.textContent = "failed (network)"; });
  }
  document.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      button.disabled = true;
      send(button.dataset.uri, button.dataset.paused === "true", button.nextElementSibling);
    });
  });
  const form = document.getElementById("add-source");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      send(form.elements.uri.value.trim(), false, document.getElementById("add-status"));
    });
  }
})();
